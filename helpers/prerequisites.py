"""What the workshop needs before it starts: Python and packages, and a target it can reach."""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata

from .config import PROJECT_ROOT, Settings
from .errors import ConfigError, WorkshopError

MIN_PYTHON = (3, 11)
# The packages the notebooks import, with the pins of requirements.txt when it is beside helpers/.
PACKAGES = ("boto3", "botocore", "pandas", "ipywidgets", "ipykernel", "papermill", "jupyterlab")


@dataclass(frozen=True)
class TargetExplanation:
    """Which target this run uses, where that is, and why."""

    target: str
    where: str
    why: str

    def __repr__(self) -> str:
        return f"Target: {self.target}, {self.where}.\nWhy: {self.why}."


def explain_target(settings: Settings, requested: str | None = None) -> TargetExplanation:
    """Say which target runs and why: the notebook's TARGET parameter, WORKSHOP_TARGET, or the default."""
    env = os.environ.get("WORKSHOP_TARGET")
    if requested:
        why = f"the notebook's TARGET parameter is {requested!r}"
        if env and env != requested:
            why += f" (it wins over WORKSHOP_TARGET={env!r} in the environment)"
        elif env:
            why += f" (WORKSHOP_TARGET={env!r} in the environment agrees)"
    elif env:
        why = f"WORKSHOP_TARGET={env!r} is set in the environment"
    else:
        why = "nothing chose a target, and 'local' is the default"
    if settings.is_local:
        source = "AWS_ENDPOINT_URL" if os.environ.get("AWS_ENDPOINT_URL") else "the default endpoint"
        where = (f"the local emulator at {settings.endpoint_url} (from {source}); no AWS account is used, "
                 f"and the emulator is started when none answers")
    else:
        where = f"your AWS account in {settings.region}, with the normal boto3 credential chain"
    return TargetExplanation(settings.target, where, why)


def _pins() -> dict[str, str]:
    pins = {}
    path = PROJECT_ROOT / "requirements.txt"
    if path.exists():
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)", line)
            if m:
                pins[m.group(1).lower()] = m.group(2)
    return pins


def _node_version() -> str | None:
    node = shutil.which("node")
    if not node:
        return None
    try:
        return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions_df():
    """Python, the packages the notebooks use and Node, with what the workshop pins; `ok` says if they match.

    A Python older than 3.11 or a missing package is a ConfigError (the notebooks would fail later).
    """
    import pandas as pd

    pins = _pins()
    py = platform.python_version()
    rows = [("python", py, f">={MIN_PYTHON[0]}.{MIN_PYTHON[1]}", sys.version_info[:2] >= MIN_PYTHON)]
    missing = []
    for name in PACKAGES:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
            missing.append(name)
        pinned = pins.get(name)
        rows.append((name, installed or "missing", pinned or "", installed is not None and
                     (pinned is None or installed == pinned)))
    node = _node_version()
    rows.append(("node (optional)", node or "not found", "20 or later", node is not None))
    if sys.version_info[:2] < MIN_PYTHON:
        raise ConfigError(f"Python {py} is too old: the workshop needs {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or later.",
                          hint="Create the venv with python3.11 (`make workshop` does).")
    if missing:
        raise ConfigError(f"Missing packages: {', '.join(missing)}.",
                          hint="Install the pinned requirements: `make workshop`, or pip install -r requirements.txt.")
    return pd.DataFrame(rows, columns=["component", "installed", "workshop wants", "ok"])


def check_target(settings: Settings):
    """Reach the target: on local the emulator (started if needed), on aws the caller's identity.

    Returns a table of what was checked; an unreachable target is a one-line WorkshopError.
    """
    import pandas as pd

    from . import aws

    if settings.is_local:
        health = aws.ensure_emulator(settings)
        identity = aws.client("sts", settings).get_caller_identity()
        rows = [
            ("endpoint", settings.endpoint_url),
            ("emulator pid", str(health.get("pid"))),
            ("state dir", str(health.get("state_dir"))),
            ("services", ", ".join(health.get("services", []))),
            ("account (emulated)", identity["Account"]),
            ("region", settings.region),
        ]
        return pd.DataFrame(rows, columns=["check", "result"])
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        identity = aws.client("sts", settings).get_caller_identity()
    except NoCredentialsError as exc:
        raise WorkshopError("No AWS credentials were found for TARGET='aws'.",
                            hint="Configure them (aws configure, AWS_PROFILE or a role), or use TARGET='local'.") from exc
    except (ClientError, BotoCoreError) as exc:
        raise WorkshopError(f"AWS rejected the credentials: {exc}",
                            hint="Refresh them (e.g. aws sso login), or use TARGET='local'.") from exc
    rows = [("account", identity["Account"]), ("caller", identity["Arn"]), ("region", settings.region)]
    return pd.DataFrame(rows, columns=["check", "result"])
