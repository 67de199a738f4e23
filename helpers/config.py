"""The workshop's settings: one frozen object built from notebook parameters and the environment."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ConfigError

TARGETS = ("local", "aws")
LOCAL_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_REGION = "us-east-1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
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

    @property
    def is_local(self) -> bool:
        return self.target == "local"

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


# Claude through a cross-region inference profile: its id starts with the region's geography.
_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
_GEOGRAPHIES = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}


def default_model_id(region: str) -> str:
    """The inference profile of Claude Sonnet 4.5 for `region` (us., eu. or apac.; else global.)."""
    return f"{_GEOGRAPHIES.get(region.split('-', 1)[0], 'global')}.{_MODEL}"


def load(target: str | None = None, region: str | None = None, **overrides) -> Settings:
    """Settings from explicit arguments (notebook parameters) first, then the environment.

    TARGET is `local` (the emulator; the default) or `aws`. On aws a region must be given or set
    in AWS_REGION / AWS_DEFAULT_REGION: it is never guessed.
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
    for field, env in env_names.items():
        value = overrides.pop(field, None) or os.environ.get(env)
        if value:
            values[field] = value
    if target == "aws" and "model_id" not in values:
        values["model_id"] = default_model_id(region)
    state_dir = overrides.pop("state_dir", None) or os.environ.get("WORKSHOP_STATE_DIR")
    if state_dir:
        values["state_dir"] = Path(state_dir).resolve()
    if overrides:
        raise ConfigError(f"Unknown setting(s): {', '.join(sorted(overrides))}.",
                          hint="See helpers.config.Settings for the names it takes.")
    return Settings(target=target, region=region, endpoint_url=endpoint, **values)
