"""The workshop's settings: one frozen object built from notebook parameters and the environment."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ConfigError

TARGETS = ("local", "aws")
LOCAL_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_REGION = "us-east-1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# One short lower-case prefix must make a valid stack name ([a-zA-Z][-a-zA-Z0-9]*), memory and runtime name
# ([a-zA-Z][a-zA-Z0-9_]{0,47}, with "-" turned into "_"), SSM parameter path and ECR repository name
# (lower case only), and leave room for the names it is put in front of.
PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
PREFIX_MAX = 20


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything a helper needs to know about where it runs. Build it with `load()`."""

    target: str
    region: str
    stack_name: str = "claude-code-agent-memory-stack"
    memory_name: str = "ClaudeCodeAgentMemory"
    memory_id_parameter: str = "/claude-code-agent/memory-id"
    runtime_name: str = "claude_code_agent_runtime"
    model_id: str = "local-stand-in"
    endpoint_url: str | None = None
    state_dir: Path = PROJECT_ROOT / ".workshop"
    prefix: str | None = None  # WORKSHOP_PREFIX: the attendee's own names in a shared account

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def summary(self) -> list[tuple[str, str]]:
        """(what, value) pairs a person checks before running anything: where, and under which names."""
        where = f"local (the emulator at {self.endpoint_url})" if self.is_local else "aws (your account)"
        rows = [("target", where), ("region", self.region), ("stack", self.stack_name),
                ("memory", f"{self.memory_name} (its id in SSM {self.memory_id_parameter})"),
                ("runtime", self.runtime_name), ("model", self.model_id), ("local state", str(self.state_dir))]
        if self.prefix:
            rows.append(("name prefix", self.prefix))
        return rows

    def __repr__(self) -> str:
        # Short, for a terminal and a log: the full picture is summary() (and the notebook's table).
        where = f"local {self.endpoint_url}" if self.is_local else "aws"
        return f"<Settings {where}, region {self.region}, stack {self.stack_name}>"

    def __str__(self) -> str:
        width = max(len(what) for what, _ in self.summary())
        return "\n".join(f"{what:<{width}}  {value}" for what, value in self.summary())

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<tr><th style='{_CELL};font-weight:bold'>{html.escape(what)}</th>"
                       f"<td style='{_CELL}'>{html.escape(value)}</td></tr>" for what, value in self.summary())
        return f"<table style='border-collapse:collapse;width:auto;max-width:100%'>{rows}</table>"


# The look of helpers.tables, without importing pandas for six rows.
_CELL = "text-align:left;vertical-align:top;padding:1px 8px;white-space:pre-wrap;overflow-wrap:anywhere"


# Claude through a cross-region inference profile: its id starts with the region's geography.
_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
_GEOGRAPHIES = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}


def default_model_id(region: str) -> str:
    """The inference profile of Claude Sonnet 4.5 for `region` (us., eu. or apac.; else global.)."""
    return f"{_GEOGRAPHIES.get(region.split('-', 1)[0], 'global')}.{_MODEL}"


def prefixed_names(prefix: str) -> dict[str, str]:
    """The stack, memory, SSM parameter and runtime names of one attendee, each valid for its pattern."""
    if not isinstance(prefix, str) or len(prefix) > PREFIX_MAX or not PREFIX_PATTERN.fullmatch(prefix):
        raise ConfigError(
            f"WORKSHOP_PREFIX={prefix!r} cannot prefix the workshop's names.",
            hint=f"Use up to {PREFIX_MAX} lower-case letters, digits and single hyphens, starting with a letter "
                 "(e.g. 'alice' or 'team-2').")
    underscored = prefix.replace("-", "_")
    return {
        "stack_name": f"{prefix}-{Settings.stack_name}",
        "memory_name": f"{underscored}_{Settings.memory_name}",
        "memory_id_parameter": f"/{prefix}{Settings.memory_id_parameter}",
        "runtime_name": f"{underscored}_{Settings.runtime_name}",
    }


def load(target: str | None = None, region: str | None = None, **overrides) -> Settings:
    """Settings from explicit arguments (notebook parameters) first, then the environment.

    TARGET is `local` (the emulator; the default) or `aws`. On aws a region must be given or set
    in AWS_REGION / AWS_DEFAULT_REGION: it is never guessed. A name is, in order: the argument, its own
    variable (WORKSHOP_STACK_NAME, ...), derived from WORKSHOP_PREFIX (or `prefix=`), the default.
    """
    target = (target or os.environ.get("WORKSHOP_TARGET") or "local").strip().lower()
    if target not in TARGETS:
        raise ConfigError(
            f"TARGET={target!r} is not a workshop target.",
            hint="Set TARGET (or WORKSHOP_TARGET) to 'local' for the emulator or 'aws' for your account.",
        )
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if target == "local":
        region = region or LOCAL_REGION
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or LOCAL_ENDPOINT
    else:
        if not region:
            raise ConfigError(
                "TARGET='aws' needs a region and none is set.",
                hint="Set REGION in the notebook's parameters cell, or AWS_REGION in the environment.",
            )
        endpoint = None
    env_names = {
        "stack_name": "WORKSHOP_STACK_NAME",
        "memory_name": "WORKSHOP_MEMORY_NAME",
        "memory_id_parameter": "WORKSHOP_MEMORY_ID_PARAMETER",
        "runtime_name": "WORKSHOP_RUNTIME_NAME",
        "model_id": "ANTHROPIC_MODEL",
    }
    values = {}
    prefix = overrides.pop("prefix", None) or os.environ.get("WORKSHOP_PREFIX") or None
    if prefix:
        values["prefix"] = prefix
        values.update(prefixed_names(prefix))
    for field, env in env_names.items():
        value = overrides.pop(field, None) or os.environ.get(env)
        if value:
            values[field] = value
    if target == "aws" and "model_id" not in values:
        values["model_id"] = default_model_id(region)
    if target == "local" and "model_id" not in values and os.environ.get("WORKSHOP_MODEL_UPSTREAM_MODEL"):
        # The emulator forwards to a real model (WORKSHOP_MODEL_UPSTREAM): name it, not the stand-in.
        values["model_id"] = os.environ["WORKSHOP_MODEL_UPSTREAM_MODEL"]
    state_dir = overrides.pop("state_dir", None) or os.environ.get("WORKSHOP_STATE_DIR")
    if state_dir:
        values["state_dir"] = Path(state_dir).resolve()
    if overrides:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(overrides))}.",
                          hint="See helpers.config.Settings for the names it takes.")
    return Settings(target=target, region=region, endpoint_url=endpoint, **values)
