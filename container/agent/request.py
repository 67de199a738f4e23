"""The invocation request: parsed and validated, every problem reported with the field it concerns."""
from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field

from .settings import DEFAULT_ALLOWED_TOOLS, DEFAULT_PERMISSION_MODE, KNOWN_TOOLS, PERMISSION_MODES, AgentSettings

# Ids go to AgentCore Memory (CreateEvent/ListEvents) and become a directory name and an S3 key
# segment, so they must satisfy both. botocore's bedrock-agentcore model says
#   ActorId:   [a-zA-Z0-9][a-zA-Z0-9-_/]*(?::[a-zA-Z0-9-_/]+)*[a-zA-Z0-9-_/]*, 1-255 characters
#   SessionId: [a-zA-Z0-9][a-zA-Z0-9-_]*, 1-100 characters
# The actor id here is that pattern without '/' (it would split the path and the key) and without
# ':' (not a valid file name on every machine the outputs are downloaded to). Neither allows '.',
# so '..' and dot-names cannot occur.
ACTOR_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")  # used with fullmatch: no "$" before "\n"
SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# AgentCore Runtime's own session ids (InvokeAgentRuntime runtimeSessionId) are 33-256 characters
# of any kind; one that is not a valid memory session id is mapped to one (see runtime_session_id).
RUNTIME_SESSION_MIN, RUNTIME_SESSION_MAX = 33, 256
_HASH_CHARS = 16
_TOOL_RULE = re.compile(r"^([A-Za-z]+)(\(.*\))?$")
MAX_BODY_BYTES = 10 * 1024 * 1024


class BadRequest(ValueError):
    """Input the agent refuses (HTTP 400); `field` names what to fix."""

    def __init__(self, field_name: str, details: str):
        super().__init__(f"{field_name}: {details}")
        self.field = field_name
        self.details = details


@dataclass(frozen=True)
class Invocation:
    prompt: str
    actor_id: str
    session_id: str
    permission_mode: str
    allowed_tools: tuple[str, ...]
    max_turns: int
    warnings: list[str] = field(default_factory=list)
    # Whether the payload named the actor (else actor_id is the default): a caller's identity may fill it in.
    actor_given: bool = True


def _check_id(name: str, value, pattern, rule: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(name, f"must be a string, got {type(value).__name__}")
    if not pattern.fullmatch(value):
        raise BadRequest(name, f"{value[:80]!r} is not allowed: {rule}")
    return value


def check_actor_id(name: str, value) -> str:
    return _check_id(name, value, ACTOR_ID_PATTERN, "use 1-255 letters, digits, '_' or '-', starting with a "
                                                    "letter or digit (AgentCore Memory's actor id, without '/')")


def check_session_id(name: str, value) -> str:
    return _check_id(name, value, SESSION_ID_PATTERN, "use 1-100 letters, digits, '_' or '-', starting with a "
                                                      "letter or digit (AgentCore Memory's session id)")


def runtime_session_id(value: str) -> str:
    """The memory session id for AgentCore Runtime's session header, the same every time.

    A header that is already a valid memory session id (a UUID, say) is used as it is. One the
    runtime may send but Memory refuses (over 100 characters, or other characters) becomes a
    readable prefix of its allowed characters plus a hash of the whole value, so distinct
    runtime sessions stay distinct. Shorter invalid values cannot come from the runtime: 400.
    """
    name = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
    if SESSION_ID_PATTERN.fullmatch(value):
        return value
    if not RUNTIME_SESSION_MIN <= len(value) <= RUNTIME_SESSION_MAX:
        return check_session_id(name, value)  # raises, naming the header
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", value).lstrip("-_")[:100 - _HASH_CHARS - 1].rstrip("-_")
    return f"{prefix}-{digest}" if prefix else f"rt-{digest}"


def parse(body: bytes, settings: AgentSettings, header_session_id: str | None = None) -> Invocation:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("body", f"is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body", 'is not valid JSON; send {"input": {"prompt": "..."}}') from None
    if not isinstance(doc, dict):
        raise BadRequest("body", 'must be a JSON object like {"input": {"prompt": "..."}}')
    data = doc.get("input")
    if data is None:
        raise BadRequest("input", 'is required: {"input": {"prompt": "..."}}')
    if not isinstance(data, dict):
        raise BadRequest("input", f"must be an object, got {type(data).__name__}")
    warnings: list[str] = []

    prompt = data.get("prompt")
    if prompt is None:
        raise BadRequest("input.prompt", "is required: the task for Claude Code")
    if not isinstance(prompt, str):
        raise BadRequest("input.prompt", f"must be a string, got {type(prompt).__name__}")
    if not prompt.strip():
        raise BadRequest("input.prompt", "is empty: say what Claude Code should do")
    if len(prompt) > settings.max_prompt_chars:
        raise BadRequest("input.prompt", f"is {len(prompt)} characters; at most {settings.max_prompt_chars} "
                                         "are accepted (put large inputs in a file in the session instead)")

    actor_id = check_actor_id("input.actor_id", data.get("actor_id", "default_user"))
    session_id = data.get("session_id")
    if session_id is not None:
        session_id = check_session_id("input.session_id", session_id)
    elif header_session_id:
        # AgentCore passes its runtime session id as a header.
        session_id = runtime_session_id(header_session_id)
    else:
        session_id = f"session-{uuid.uuid4()}"

    mode = data.get("permission_mode", DEFAULT_PERMISSION_MODE)
    if not isinstance(mode, str) or mode not in PERMISSION_MODES:
        raise BadRequest("input.permission_mode", f"{mode!r} is not one of {', '.join(PERMISSION_MODES)}")
    if mode == "bypassPermissions" and hasattr(os, "geteuid") and os.geteuid() == 0:
        raise BadRequest("input.permission_mode", "bypassPermissions is refused by Claude Code when the agent "
                                                  "runs as root; use acceptEdits with allowed_tools")

    tools = data.get("allowed_tools", list(DEFAULT_ALLOWED_TOOLS))
    if not isinstance(tools, list):
        raise BadRequest("input.allowed_tools", f"must be a list of tool names, got {type(tools).__name__}")
    for i, tool in enumerate(tools):
        m = _TOOL_RULE.match(tool) if isinstance(tool, str) else None
        if m is None or m.group(1) not in KNOWN_TOOLS:
            raise BadRequest(f"input.allowed_tools[{i}]", f"{tool!r} is not a Claude Code tool; known tools: "
                                                        f"{', '.join(sorted(KNOWN_TOOLS))}")

    max_turns = data.get("max_turns", settings.max_turns)
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 1 <= max_turns <= 200:
        raise BadRequest("input.max_turns", f"must be a whole number from 1 to 200, got {max_turns!r}")

    known = {"prompt", "actor_id", "session_id", "permission_mode", "allowed_tools", "max_turns"}
    extra = sorted(set(data) - known)
    if extra:
        warnings.append(f"ignored unknown input fields: {', '.join(extra)}")
    return Invocation(prompt, actor_id, session_id, mode, tuple(tools), max_turns, warnings, "actor_id" in data)
