"""Claude Code headless through claude-agent-sdk: one run in a workspace, as a stream of progress events."""
from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

# jsonschema (through mcp, through claude-agent-sdk) imports rfc3987_syntax whenever it is installed
# (a notebook environment installs it), and that module compiles a grammar at import: 3-5 s of
# every agent start here. The agent never validates IRIs, so it is kept out; jsonschema expects
# it to be optional.
sys.modules.setdefault("rfc3987_syntax", None)

from claude_agent_sdk import (AssistantMessage, ClaudeAgentOptions, HookMatcher, ResultMessage, SystemMessage,
                              TextBlock, ToolResultBlock, ToolUseBlock, UserMessage, query)

from .request import clean_text
from .settings import AgentSettings
from .workspace import confine, isolated_command, probe_isolation

log = logging.getLogger("agent.runner")
MEMORY_PREFACE = "What AgentCore Memory remembers about this user and session follows; use it when it is relevant."
_TARGET_KEYS = ("file_path", "notebook_path", "command", "pattern", "path", "url", "query", "description")


class ClaudeFailed(RuntimeError):
    """Claude Code could not run at all (not found, crashed, refused its arguments)."""


@dataclass
class RunOutcome:
    result: str = ""
    is_error: bool = False
    timed_out: bool = False
    num_turns: int = 0
    duration_ms: int = 0
    cost_usd: float | None = None
    usage: dict | None = None
    model: str | None = None
    claude_session_id: str | None = None
    permission_denials: list = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Tool calls refused for reaching outside the workspace: {"tool", "tool_use_id", "reason"}.
    confined: list[dict] = field(default_factory=list)


def tool_target(tool_input: dict, cwd: Path | None = None) -> str:
    """What a tool call acts on (a file, a command, a pattern), for progress events.

    A file inside the workspace is named relative to it: `hello.py`, not the workspace's long path.
    """
    for key in _TARGET_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            if cwd is not None and value.startswith("/"):
                try:
                    value = str(Path(value).relative_to(cwd))
                except ValueError:
                    pass  # outside the workspace: the absolute path is the honest name
            return value if len(value) <= 200 else value[:200] + "..."
    return ""


@dataclass
class BashIsolation:
    """Whether this run's Bash commands go through the mount namespace, and why not."""

    hidden: list[Path] = field(default_factory=list)  # covered inside: the workspace root, HOME, Claude's state
    problem: str | None = None  # why the namespace is not available here (None: it is)
    required: bool = False  # AGENT_BASH_ISOLATION=namespace: without it, Bash is refused
    active: bool = False


_probed: dict[tuple, str | None] = {}  # one real probe per process and set of directories


def bash_isolation(settings: AgentSettings, permission_mode: str, allowed_tools: tuple[str, ...]) -> BashIsolation:
    hidden = [settings.workspace_root, Path.home(), settings.claude_state_dir()]
    iso = BashIsolation(hidden=hidden, required=settings.bash_isolation == "namespace")
    if settings.bash_isolation == "off":
        return iso
    # A rewritten command no longer matches scoped rules such as Bash(npm test:*), and is never one of
    # the read-only commands Claude Code lets through unasked: only where Bash itself is allowed.
    if "Bash" not in allowed_tools and permission_mode != "bypassPermissions":
        return iso
    key = tuple(str(h) for h in hidden)
    if key not in _probed:
        _probed[key] = probe_isolation(settings.workspace_root, hidden[1:])
        if _probed[key]:
            log.warning("Bash cannot be isolated here: %s", _probed[key])
    iso.problem = _probed[key]
    iso.active = iso.problem is None
    return iso


def confinement_hook(cwd: Path, refused: list[dict], isolation: BashIsolation | None = None):
    """A PreToolUse hook that refuses tool calls reaching outside `cwd` (agent/workspace.py's confine).

    Hooks run before Claude Code's permission rules and modes, and a hook's deny holds in every mode,
    bypassPermissions included, whatever allowed_tools says (Agent SDK docs, "How permissions are
    evaluated": code.claude.com/docs/en/agent-sdk/permissions). With on_failure="block" a hook that
    fails blocks the call instead of letting it through.
    """
    async def hook(hook_input, tool_use_id, _context):
        tool = hook_input.get("tool_name", "")
        tool_input = hook_input.get("tool_input") or {}
        reason = confine(tool, tool_input, cwd)
        if reason is None and tool == "Bash" and isolation is not None:
            if isolation.active:
                # No permissionDecision: the rewritten call still passes Claude Code's own rules and mode.
                command = isolated_command(str(tool_input.get("command") or ""), cwd, isolation.hidden)
                return {"hookSpecificOutput": {"hookEventName": "PreToolUse",
                                               "updatedInput": {**tool_input, "command": command}}}
            if isolation.required:
                reason = f"AGENT_BASH_ISOLATION=namespace, and Bash cannot be isolated here ({isolation.problem})"
        if reason is None:
            return {}
        refused.append({"tool": tool, "tool_use_id": tool_use_id or hook_input.get("tool_use_id"), "reason": reason})
        log.warning("refused %s: %s", tool, reason)
        return {"hookSpecificOutput": {
            "hookEventName": "PreToolUse", "permissionDecision": "deny",
            "permissionDecisionReason": f"Refused: {reason}. This agent's tools work inside the session's "
                                        "workspace only."}}
    return HookMatcher(matcher=None, hooks=[hook], on_failure="block")


def build_options(settings: AgentSettings, cwd: Path, permission_mode: str, allowed_tools: tuple[str, ...],
                  max_turns: int, memory_context: str, stderr_lines: collections.deque, resume: str | None = None,
                  session_store=None, refused: list[dict] | None = None,
                  isolation: BashIsolation | None = None) -> ClaudeAgentOptions:
    system_prompt = {"type": "preset", "preset": "claude_code"}
    if memory_context:
        system_prompt["append"] = MEMORY_PREFACE + "\n" + memory_context
    return ClaudeAgentOptions(
        cwd=str(cwd),
        model=settings.model,
        permission_mode=permission_mode,
        allowed_tools=list(allowed_tools),
        max_turns=max_turns,
        system_prompt=system_prompt,
        env=settings.claude_env(),
        max_thinking_tokens=settings.max_thinking_tokens or None,
        cli_path=settings.cli_path,
        # No user or project settings files: the run is defined by this request alone.
        setting_sources=[],
        stderr=stderr_lines.append,
        # The conversation continues where the session's last run left it; with a store, the SDK
        # rebuilds the transcript from it first, so a fresh microVM continues too.
        resume=resume,
        session_store=session_store,
        hooks={"PreToolUse": [confinement_hook(cwd, refused if refused is not None else [], isolation)]},
    )


async def run_claude(settings: AgentSettings, cwd: Path, prompt: str, permission_mode: str,
                     allowed_tools: tuple[str, ...], max_turns: int, memory_context: str,
                     outcome: RunOutcome, resume: str | None = None, session_store=None) -> AsyncIterator[dict]:
    """Yield progress events while Claude Code runs; fill `outcome` as it finishes or times out."""
    stderr_lines: collections.deque = collections.deque(maxlen=40)
    # The prompt was checked on arrival, but remembered turns were not: one holding a NUL byte would
    # make every later run of the session fail to start ("embedded null byte" in the CLI's arguments).
    cleaned = clean_text(memory_context)
    if cleaned != memory_context:
        outcome.warnings.append("memory held text Claude Code cannot take (NUL bytes or lone UTF-16 surrogates); "
                                "it was removed from this run's memory context")
        memory_context = cleaned
    prompt = clean_text(prompt)
    if resume and memory_context:
        # A resumed conversation keeps the system prompt it started with (Claude Code ignores a new
        # --append-system-prompt on --resume, as measured here), so this turn's memory travels with the
        # prompt, marked as context rather than as the user's words.
        prompt = (f"<system-reminder>\n{MEMORY_PREFACE}\n{memory_context}\n</system-reminder>\n\n{prompt}")
        memory_context = ""
    isolation = await asyncio.to_thread(bash_isolation, settings, permission_mode, allowed_tools)
    if isolation.problem and not isolation.required:
        outcome.warnings.append(f"Bash runs without OS isolation on this machine ({isolation.problem}); its commands "
                                "are checked by what they say only (set AGENT_BASH_ISOLATION=namespace to refuse "
                                "Bash instead)")
    options = build_options(settings, cwd, permission_mode, allowed_tools, max_turns, memory_context, stderr_lines,
                            resume, session_store, outcome.confined, isolation)
    events: asyncio.Queue = asyncio.Queue()
    done = object()
    started = time.monotonic()
    tool_names: dict[str, str] = {}

    async def consume() -> None:
        try:
            # The timeout cancels the SDK inside this same task, so its own clean-up ends the CLI.
            async with asyncio.timeout(settings.run_timeout):
                async for message in query(prompt=prompt, options=options):
                    for event in _events_of(message, outcome, tool_names, cwd):
                        await events.put(event)
        except TimeoutError:
            outcome.timed_out = True
            outcome.is_error = True
            outcome.warnings.append(f"Claude Code was stopped after the run timeout of {settings.run_timeout:g} s "
                                    "(AGENT_RUN_TIMEOUT_SECONDS); files written so far are kept and uploaded")
        except Exception as exc:  # the SDK raises several types; all mean the CLI did not finish
            tail = " | ".join(list(stderr_lines)[-5:])
            await events.put(ClaudeFailed(f"{type(exc).__name__}: {exc}" + (f" (stderr: {tail})" if tail else "")))
        finally:
            await events.put(done)

    task = asyncio.create_task(consume())
    try:
        while True:
            item = await events.get()
            if item is done:
                break
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        outcome.duration_ms = outcome.duration_ms or int((time.monotonic() - started) * 1000)


def _events_of(message, outcome: RunOutcome, tool_names: dict[str, str], cwd: Path | None = None) -> list[dict]:
    out: list[dict] = []
    if isinstance(message, SystemMessage):
        if message.subtype == "init":
            outcome.claude_session_id = message.data.get("session_id")
            out.append({"type": "status", "message": "Claude Code started", "model": message.data.get("model")})
    elif isinstance(message, AssistantMessage):
        outcome.model = message.model or outcome.model
        for block in message.content:
            if isinstance(block, TextBlock) and block.text.strip():
                out.append({"type": "text", "text": block.text})
            elif isinstance(block, ToolUseBlock):
                tool_names[block.id] = block.name
                out.append({"type": "tool_use", "tool": block.name, "target": tool_target(block.input or {}, cwd),
                            "id": block.id})
    elif isinstance(message, UserMessage) and isinstance(message.content, list):
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                out.append({"type": "tool_result", "tool": tool_names.get(block.tool_use_id, ""),
                            "id": block.tool_use_id, "is_error": bool(block.is_error)})
    elif isinstance(message, ResultMessage):
        outcome.result = message.result or ""
        outcome.is_error = bool(message.is_error)
        outcome.num_turns = message.num_turns
        outcome.duration_ms = message.duration_ms
        outcome.cost_usd = message.total_cost_usd
        outcome.usage = message.usage
        outcome.permission_denials = list(message.permission_denials or [])
        ours = {c["tool_use_id"] for c in outcome.confined}
        for denial in outcome.permission_denials:
            if denial.get("tool_use_id") in ours:
                continue  # refused by the workspace's confinement, warned about below
            outcome.warnings.append(f"permission denied for {denial.get('tool_name', 'a tool')}: "
                                    "add it to allowed_tools or change permission_mode")
        for refusal in outcome.confined:
            outcome.warnings.append(f"refused {refusal['tool']}: {refusal['reason']}")
    return out
