"""The invocation request: parsed and validated, every problem reported with the field it concerns."""
from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
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
# A rule is a tool name with an optional specifier ("Bash(npm test:*)"); fullmatch, and no control
# characters inside, since the rules reach the CLI as arguments.
_TOOL_RULE = re.compile(r"([A-Za-z]+)(\([^\x00-\x1f\x7f]*\))?")
MAX_TOOL_RULE_CHARS = 1000
MAX_BODY_BYTES = 10 * 1024 * 1024
# Python's json parser recurses per nesting level and fails with RecursionError (a 500) somewhere
# near 1,000 levels; the request is a flat object, so anything this deep is refused before parsing.
MAX_JSON_DEPTH = 64
# What no text bound for Claude Code may hold: NUL ends a C string, so the CLI's argv and environment
# cannot carry it (Python refuses it: "embedded null byte"), and a lone UTF-16 surrogate has no UTF-8
# encoding at all (JSON's "\ud800" escape is the only way one arrives).
_UNSENDABLE = re.compile(r"[\x00\ud800-\udfff]")


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


def check_text(name: str, value: str) -> str:
    """`value` if Claude Code can be given it; else BadRequest naming the first character it cannot take."""
    m = _UNSENDABLE.search(value)
    if m:
        what = "a NUL byte" if m.group() == "\x00" else f"a lone UTF-16 surrogate ({ascii(m.group())})"
        raise BadRequest(name, f"contains {what} at character {m.start()}; Claude Code cannot be given it "
                               "(remove it, or send binary data as a file in the session)")
    return value


def clean_text(value: str) -> str:
    """`value` with what Claude Code cannot take removed: NUL dropped, lone surrogates as U+FFFD.

    For text the agent did not just check itself (turns read back from memory, which another client,
    an older agent or the console may have written), so one such turn can never break a session.
    """
    return _UNSENDABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


def _show(value) -> str:
    """A caller's value as an error message quotes it: escaped and cut short (it may be megabytes)."""
    text = ascii(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit` (a linear scan, no recursion)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _check_id(name: str, value, pattern, rule: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(name, f"must be a string, got {type(value).__name__}")
    if not pattern.fullmatch(value):
        raise BadRequest(name, f"{_show(value)} is not allowed: {rule}")
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
    problem = _climbs(value)
    if problem:
        raise BadRequest(name, f"{_show(value)} {problem}; a runtime session id names a session, not a path "
                               "(helpers.runtime derives one from the actor and session names)")
    if not RUNTIME_SESSION_MIN <= len(value) <= RUNTIME_SESSION_MAX:
        return check_session_id(name, value)  # raises, naming the header
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", value).lstrip("-_")[:100 - _HASH_CHARS - 1].rstrip("-_")
    return f"{prefix}-{digest}" if prefix else f"rt-{digest}"


_CLIMB = re.compile(r"(^|[/\\])\.\.($|[/\\])|^[/\\~]|\\|%2e|%2f|%5c|%00", re.IGNORECASE)


def _climbs(value: str) -> str | None:
    """What in `value` reads as a path leaving its directory: `..`, a root, a backslash, their %-escapes,
    their Unicode look-alikes (NFKC folds e.g. U+FF0E FULLWIDTH FULL STOP to '.'), or a control character."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "contains a control character"
    folded = unicodedata.normalize("NFKC", value)
    if _CLIMB.search(folded):
        return "reads as a path that climbs out of its directory (.., /, \\, ~ or their %-escapes or look-alikes)"
    return None


def parse(body: bytes, settings: AgentSettings, header_session_id: str | None = None) -> Invocation:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest("body", f"is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    try:
        # UTF-8 only (RFC 8259 section 8.1); json.loads(bytes) would also guess UTF-16 and UTF-32.
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("body", f"is not UTF-8 (byte {exc.start} is {body[exc.start:exc.start + 1]!r}); "
                                 "send JSON encoded as UTF-8") from None
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadRequest("body", f"nests objects or arrays more than {MAX_JSON_DEPTH} levels deep; "
                                 'send {"input": {"prompt": "..."}}')
    try:
        doc = json.loads(text)
    except ValueError:
        raise BadRequest("body", 'is not valid JSON; send {"input": {"prompt": "..."}}') from None
    except RecursionError:  # belt and braces: the depth check above should make this unreachable
        raise BadRequest("body", "nests too deeply to parse") from None
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
    check_text("input.prompt", prompt)
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
        raise BadRequest("input.permission_mode", f"{_show(mode)} is not one of {', '.join(PERMISSION_MODES)}")
    if mode == "bypassPermissions" and hasattr(os, "geteuid") and os.geteuid() == 0:
        raise BadRequest("input.permission_mode", "bypassPermissions is refused by Claude Code when the agent "
                                                  "runs as root; use acceptEdits with allowed_tools")

    tools = data.get("allowed_tools", list(DEFAULT_ALLOWED_TOOLS))
    if not isinstance(tools, list):
        raise BadRequest("input.allowed_tools", f"must be a list of tool names, got {type(tools).__name__}")
    for i, tool in enumerate(tools):
        if isinstance(tool, str):
            check_text(f"input.allowed_tools[{i}]", tool)
            if len(tool) > MAX_TOOL_RULE_CHARS:
                raise BadRequest(f"input.allowed_tools[{i}]", f"is {len(tool)} characters; a rule may have at most "
                                                            f"{MAX_TOOL_RULE_CHARS}")
        m = _TOOL_RULE.fullmatch(tool) if isinstance(tool, str) else None
        if m is None or m.group(1) not in KNOWN_TOOLS:
            raise BadRequest(f"input.allowed_tools[{i}]", f"{_show(tool)} is not a Claude Code tool rule; "
                                                        f"known tools: {', '.join(sorted(KNOWN_TOOLS))}")

    max_turns = data.get("max_turns", settings.max_turns)
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or not 1 <= max_turns <= 200:
        raise BadRequest("input.max_turns", f"must be a whole number from 1 to 200, got {_show(max_turns)}")

    known = {"prompt", "actor_id", "session_id", "permission_mode", "allowed_tools", "max_turns"}
    extra = sorted(set(data) - known)
    if extra:
        # ascii(): a field name is the caller's text, and may hold what the answer's UTF-8 cannot carry.
        shown = ", ".join(ascii(name)[1:-1] for name in extra[:20]) + (" ..." if len(extra) > 20 else "")
        warnings.append(f"ignored unknown input fields: {shown}")
    return Invocation(prompt, actor_id, session_id, mode, tuple(tools), max_turns, warnings, "actor_id" in data)
