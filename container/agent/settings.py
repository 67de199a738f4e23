"""The agent's settings, all from environment variables, read in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

# Claude Code's own tool names (not another agent's): what `allowed_tools` may name.
KNOWN_TOOLS = frozenset({
    "Bash", "BashOutput", "KillShell", "Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Glob",
    "Grep", "LS", "WebFetch", "WebSearch", "TodoWrite", "Task", "ExitPlanMode",
})
# Safe defaults: file work and a shell inside the agent's own microVM; no web access.
DEFAULT_ALLOWED_TOOLS = ("Read", "Write", "Edit", "Glob", "Grep", "Bash", "TodoWrite")
# bypassPermissions is refused by Claude Code when running as root, so acceptEdits (writes in the
# workspace, listed tools only) is the default that works both as root and as the image's user.
PERMISSION_MODES = ("acceptEdits", "default", "plan", "bypassPermissions")
DEFAULT_PERMISSION_MODE = "acceptEdits"


class SettingsError(ValueError):
    """An environment variable holds a value the agent cannot use."""


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} is below the minimum {minimum}")
    return value


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None


def _choice(env: dict, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name) or default
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class AgentSettings:
    output_bucket: str | None
    memory_id_parameter: str = "/claude-code-agent/memory-id"
    memory_max_turns: int = 3
    memory_top_k: int = 5
    region: str = "us-east-1"
    model: str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    max_output_tokens: int = 4096
    max_thinking_tokens: int = 1024
    run_timeout: float = 600.0
    max_turns: int = 30
    workspace_root: Path = field(default_factory=lambda: Path("/tmp/agent-workspaces"))
    max_prompt_chars: int = 100_000
    # Timeouts for AWS calls: memory and S3 trouble must cost seconds, not the whole invocation. They
    # bound one attempt; after one that timed out, the invocation skips that service (agent/dependencies.py).
    aws_connect_timeout: float = 3.0
    aws_read_timeout: float = 10.0
    aws_max_attempts: int = 2
    cli_path: str | None = None
    # "once": restore a session from S3 at its first invocation in this process, then trust the
    # manifest (AgentCore gives a session one microVM, so the agent is the prefix's only writer
    # meanwhile, and later invocations cost nothing per unchanged file). "always": list the
    # prefix on every invocation, to pick up files dropped into S3 mid-session.
    workspace_restore: str = "once"
    # Seconds of silence after which the event stream sends a comment line.
    sse_keepalive: float = 15.0
    # AgentCore's managed session storage (preview), where the runtime mounts it: the workspace and
    # Claude Code's own state then live there and survive the microVM; S3 stays the fallback.
    session_storage: Path | None = None
    # Where Claude Code keeps its state (CLAUDE_CONFIG_DIR); None: its default, ~/.claude.
    claude_config_dir: Path | None = None
    # Bash in a mount namespace that shows it only the caller's workspace (agent/workspace.py):
    # "auto" where the machine allows it (else a warning), "namespace" to refuse Bash without it, "off".
    bash_isolation: str = "auto"
    # Refuse invocations that carry no caller identity (bearer JWT or runtime user id header), so no
    # caller can fall back to naming an actor in the payload (agent/identity.py).
    require_identity: bool = False

    @classmethod
    def from_env(cls, env: dict | None = None) -> "AgentSettings":
        env = dict(os.environ if env is None else env)
        return cls(
            output_bucket=env.get("OUTPUT_BUCKET_NAME") or None,
            memory_id_parameter=env.get("MEMORY_ID_PARAMETER") or "/claude-code-agent/memory-id",
            memory_max_turns=_int(env, "MEMORY_MAX_TURNS", 3),
            memory_top_k=_int(env, "MEMORY_TOP_K", 5, 1),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            model=env.get("ANTHROPIC_MODEL") or cls.model,
            max_output_tokens=_int(env, "CLAUDE_CODE_MAX_OUTPUT_TOKENS", 4096, 1),
            max_thinking_tokens=_int(env, "MAX_THINKING_TOKENS", 1024),
            run_timeout=_float(env, "AGENT_RUN_TIMEOUT_SECONDS", 600.0),
            max_turns=_int(env, "AGENT_MAX_TURNS", 30, 1),
            workspace_root=Path(env.get("WORKSPACE_ROOT") or "/tmp/agent-workspaces"),
            max_prompt_chars=_int(env, "MAX_PROMPT_CHARS", 100_000, 1),
            aws_connect_timeout=_float(env, "AGENT_AWS_CONNECT_TIMEOUT", 3.0),
            aws_read_timeout=_float(env, "AGENT_AWS_READ_TIMEOUT", 10.0),
            aws_max_attempts=_int(env, "AGENT_AWS_MAX_ATTEMPTS", 2, 1),
            cli_path=env.get("CLAUDE_CLI_PATH") or None,
            sse_keepalive=_float(env, "SSE_KEEPALIVE_SECONDS", 15.0),
            workspace_restore=_choice(env, "WORKSPACE_RESTORE", ("once", "always"), "once"),
            # The runtime's sessionStorage mountPath (helpers.runtime sets both); AgentCore checks its pattern.
            session_storage=Path(env["SESSION_STORAGE_PATH"]) if env.get("SESSION_STORAGE_PATH") else None,
            claude_config_dir=Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else None,
            bash_isolation=_choice(env, "AGENT_BASH_ISOLATION", ("auto", "namespace", "off"), "auto"),
            require_identity=_choice(env, "AGENT_REQUIRE_IDENTITY", ("0", "1"), "0") == "1",
        )

    def with_session_storage(self) -> tuple["AgentSettings", str | None]:
        """These settings with the workspace and Claude Code's state on session storage, when it is mounted.

        The second value says why session storage is not used although it was asked for (None otherwise).
        """
        if self.session_storage is None:
            return self, None
        mount = self.session_storage
        if not mount.is_dir() or not os.access(mount, os.W_OK | os.X_OK):
            return self, (f"SESSION_STORAGE_PATH={mount} is not a writable mount (session storage is a preview "
                          "feature, not offered in every region, and needs filesystemConfigurations on the "
                          "runtime): the workspace is kept in S3 only")
        return replace(self, workspace_root=mount / "workspaces", claude_config_dir=mount / "claude"), None

    def claude_env(self) -> dict[str, str]:
        """What Claude Code needs beyond the inherited environment (Bedrock mode and limits)."""
        return {
            "CLAUDE_CODE_USE_BEDROCK": "1",
            "AWS_REGION": self.region,
            "ANTHROPIC_MODEL": self.model,
            "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(self.max_output_tokens),
            "MAX_THINKING_TOKENS": str(self.max_thinking_tokens),
            # No telemetry, update checks or other calls home: the agent may have no internet.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            **({"CLAUDE_CONFIG_DIR": str(self.claude_config_dir)} if self.claude_config_dir else {}),
        }

    def claude_state_dir(self) -> Path:
        return self.claude_config_dir or Path.home() / ".claude"

    def boto_config(self):
        from botocore.config import Config

        return Config(connect_timeout=self.aws_connect_timeout, read_timeout=self.aws_read_timeout,
                      retries={"max_attempts": self.aws_max_attempts, "mode": "standard"})
