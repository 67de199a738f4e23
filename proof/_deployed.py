"""The workshop deployed as the notebooks deploy it, on an emulator of its own, for proof sections using the agent.

An emulator process on a free port, then stack, memory, image (method local) and runtime through helpers, with
the helpers' environment (WORKSHOP_TARGET, AWS_ENDPOINT_URL, WORKSHOP_STATE_DIR) pointed at it while the section
runs and put back after. Leaving stops the runtime's sessions and the emulator.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from helpers import config, image, memory, runtime, stack
from helpers.image import CONTAINER_DIR
from tests.support.emulator import EmulatorProcess

SCRIPT_PATH = "/_emulator/bedrock/script"


@dataclass
class Deployed:
    emulator: EmulatorProcess
    settings: config.Settings
    outputs: dict

    @property
    def invocation_log(self) -> Path:
        return self.emulator.state_dir / "bedrock" / "invocations.jsonl"

    def invocations(self) -> list[dict]:
        if not self.invocation_log.exists():
            return []
        return [json.loads(line) for line in self.invocation_log.read_text().splitlines() if line.strip()]

    def script(self, method: str, doc: dict | None = None) -> dict:
        """The emulator's Bedrock script route (emulator/bedrock/script.py); its JSON answer."""
        req = urllib.request.Request(self.emulator.endpoint + SCRIPT_PATH, method=method,
                                     data=json.dumps(doc).encode() if doc is not None else None,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:
            with err:
                raise RuntimeError(f"{method} {SCRIPT_PATH} answered {err.code}: {err.read()[:500]!r}") from None


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def deployed(name: str, environment: dict | None = None, emulator_env: dict | None = None) -> Iterator[Deployed]:
    """A running emulator with the workshop deployed on it; the runtime's agents get `environment` on top."""
    root = Path(tempfile.mkdtemp(prefix=f"proof-{name}-"))
    # Runtimes settle in 0.2 s rather than the emulator's default 1 s: the proof is about the agent, not the wait.
    emu = EmulatorProcess(root / "emulator", env={"EMULATOR_EXTRACTION_DELAY": "0.3",
                                                  "EMULATOR_RUNTIME_TRANSITION": "0.2", **(emulator_env or {})})
    try:
        emu.start()
        with _environment({"WORKSHOP_TARGET": "local", "AWS_ENDPOINT_URL": emu.endpoint,
                           "WORKSHOP_STATE_DIR": str(root / "workshop")}):
            tag = uuid.uuid4().hex[:8]
            settings = config.load(stack_name=f"proof-{tag}", runtime_name=f"proof_{tag}",
                                   memory_name=f"Proof_{tag}", memory_id_parameter=f"/proof-{tag}/memory-id")
            outputs = stack.deploy_stack(settings, progress=False).outputs
            memory.get_or_create_memory(settings, progress=False)
            built = image.build_and_push(settings, "local", context_dir=CONTAINER_DIR,
                                         repository_uri=outputs["RepositoryUri"], bucket=outputs["BucketName"],
                                         progress=False)
            runtime.get_or_create_runtime(settings, built.image_uri, role_arn=outputs["ExecutionRoleArn"],
                                          bucket=outputs["BucketName"], environment=environment, progress=False)
            try:
                yield Deployed(emu, settings, outputs)
            finally:
                runtime.delete_runtime(settings, progress=False)  # stops the sessions' agents
    finally:
        if emu.proc is not None:  # also when it never became healthy: it must not be left running
            emu.stop()
        shutil.rmtree(root, ignore_errors=True)
