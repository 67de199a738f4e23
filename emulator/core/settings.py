"""The emulator's settings: one frozen object, from command-line flags and the environment.

This is the only module of the emulator that reads its settings from the environment; services get them
from the Settings object they are built with. (The supervisor's allowlist of what an agent process inherits
from the emulator's environment is not a setting: it copies variables through, and stays there.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"emulator: {name}={raw!r} is not a number of seconds") from None


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"emulator: {name}={raw!r} is not a whole number") from None


def _path_env(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw) if raw else None


def _switch_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "on", "true", "yes"):
        return True
    if raw in ("0", "off", "false", "no"):
        return False
    raise SystemExit(f"emulator: {name}={raw!r} must be on or off")


@dataclass(frozen=True)
class ModelUpstream:
    """An Anthropic Messages API endpoint that answers Bedrock's InvokeModel calls instead of the stand-in."""

    url: str
    model: str
    api_key: str | None = None  # sent as x-api-key (Anthropic, LiteLLM)
    auth_token: str | None = None  # sent as Authorization: Bearer (Ollama's cloud, gateways)
    timeout: float = 600.0

    @property
    def messages_url(self) -> str:
        # Anthropic's clients take the base URL and add /v1/messages; accept that and the full path alike.
        base = self.url.rstrip("/")
        if base.endswith("/v1/messages"):
            return base
        if base.endswith("/v1"):
            return base + "/messages"
        return base + "/v1/messages"


def _model_upstream() -> ModelUpstream | None:
    url = os.environ.get("WORKSHOP_MODEL_UPSTREAM", "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"emulator: WORKSHOP_MODEL_UPSTREAM={url!r} must be an http:// or https:// URL, "
                         "e.g. https://api.anthropic.com or http://localhost:11434")
    model = os.environ.get("WORKSHOP_MODEL_UPSTREAM_MODEL", "").strip()
    if not model:
        raise SystemExit("emulator: WORKSHOP_MODEL_UPSTREAM is set but WORKSHOP_MODEL_UPSTREAM_MODEL is not: name "
                         "the model the upstream serves (e.g. claude-sonnet-4-5 on Anthropic, qwen3-coder on Ollama)")
    return ModelUpstream(url=url, model=model,
                         api_key=os.environ.get("WORKSHOP_MODEL_UPSTREAM_API_KEY") or None,
                         auth_token=os.environ.get("WORKSHOP_MODEL_UPSTREAM_AUTH_TOKEN") or None,
                         timeout=_float_env("WORKSHOP_MODEL_UPSTREAM_TIMEOUT", 600.0))


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 4566
    account_id: str = DEFAULT_ACCOUNT_ID
    # Seconds between events arriving and long-term records being extracted (AWS takes minutes).
    extraction_delay: float = field(default_factory=lambda: _float_env("EMULATOR_EXTRACTION_DELAY", 1.0))
    # Seconds a runtime session's agent may sit idle before it is stopped (AWS: 900).
    idle_timeout: float = field(default_factory=lambda: _float_env("EMULATOR_IDLE_TIMEOUT", 900.0))
    # Seconds an agent process gets to answer /ping after it starts.
    agent_start_timeout: float = field(default_factory=lambda: _float_env("EMULATOR_AGENT_START_TIMEOUT", 60.0))
    # Seconds a session stopped by StopRuntimeSession stays "terminating": calls to it meanwhile get 409
    # RetryableConflictException, as on AWS, where tearing a microVM down takes up to 15 s (devguide,
    # runtime-lifecycle-settings). Short by default so the notebooks stay quick; tests set it.
    session_termination: float = field(default_factory=lambda: _float_env("EMULATOR_SESSION_TERMINATION", 2.0))
    # Requests signed with a runtime role's credentials are judged against the role's policies (off: all pass).
    iam_enforcement: bool = field(default_factory=lambda: _switch_env("EMULATOR_IAM_ENFORCEMENT", True))
    # Lifetime of each set of role credentials an agent gets (AssumeRole's default is one hour).
    role_credential_seconds: float = field(
        default_factory=lambda: _float_env("EMULATOR_ROLE_CREDENTIAL_SECONDS", 3600.0))
    # Bedrock's InvokeModel* forwarded to an Anthropic-compatible endpoint (WORKSHOP_MODEL_UPSTREAM); None: the
    # deterministic stand-in answers, as in tests and CI.
    model_upstream: ModelUpstream | None = field(default_factory=_model_upstream)

    # Seconds a new memory stays CREATING (AWS: a few minutes) and a deleted one DELETING, so that waiting
    # code really waits.
    memory_activation_delay: float = field(
        default_factory=lambda: _float_env("EMULATOR_MEMORY_ACTIVATION_DELAY", 1.0))
    memory_deletion_delay: float = field(default_factory=lambda: _float_env("EMULATOR_MEMORY_DELETION_DELAY", 0.5))
    # Memories per account and region before CreateMemory answers ServiceQuotaExceededException.
    max_memories: int = field(default_factory=lambda: _int_env("EMULATOR_MAX_MEMORIES", 150))
    # How long a CreateMemory clientToken is remembered after its memory is gone. botocore's model says of
    # CreateMemory's clientToken: "If this token matches a previous request, Amazon Bedrock ignores the request
    # but does not return an error" -- even when that memory has since been deleted. AgentCore documents no
    # window; EC2's idempotency guide says a token stays valid "at least 24 hours", which is used here.
    idempotency_window: float = field(
        default_factory=lambda: _float_env("EMULATOR_IDEMPOTENCY_WINDOW", 24 * 3600.0))
    # Records whose similarity to the query is below this are not relevant enough to return.
    memory_min_score: float = field(default_factory=lambda: _float_env("EMULATOR_MEMORY_MIN_SCORE", 0.05))
    # Seconds a runtime or endpoint stays CREATING/UPDATING/DELETING (AWS: tens of seconds).
    runtime_transition: float = field(default_factory=lambda: _float_env("EMULATOR_RUNTIME_TRANSITION", 1.0))
    # Keep the full bodies of Bedrock requests (50-90 KB each) in the invocation log: for debugging only.
    bedrock_dump_requests: bool = field(
        default_factory=lambda: _switch_env("EMULATOR_BEDROCK_DUMP_REQUESTS", False))
    # A file that gets one JSON line for every response breaking botocore's output or error shapes
    # (emulator/core/conformance.py); None: responses are not checked.
    check_responses: Path | None = field(default_factory=lambda: _path_env("EMULATOR_CHECK_RESPONSES"))

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"
