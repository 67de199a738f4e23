"""Invoke the agent on its runtime with an actor and a session, streaming its progress as it works.

An invocation that may have started is never retried automatically: the agent might already be
writing files and memory events, so a retry could do the task twice (the seed's client did).
The one exception is 409 RetryableConflictException: AgentCore answers it when the call reached a
session still being provisioned or torn down, before anything reached the agent, so that call is
retried with backoff. The read timeout is longer than both the agent's own run timeout and AWS's
15-minute limit.

A live session keeps the code it started with after the runtime is updated (AWS: "each microVM
session is created with the code assets deployed at the time of session creation"). So the helpers
note which runtime version each session they start runs (`.workshop/sessions.json`), and stop a
session that runs an older version before invoking it again: the call then starts a fresh microVM
on the new version, and the session's files and memory carry over as after any stop.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import shlex
import time
from typing import Callable, Iterator

import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from . import aws, waiters
from .config import Settings
from .errors import InvocationError, aws_error_code

# Longer than AGENT_RUN_TIMEOUT_SECONDS (helpers.runtime) and than AWS's own 15 minutes per call.
READ_TIMEOUT = 15 * 60 + 60
INVOKE_CONFIG = Config(read_timeout=READ_TIMEOUT, connect_timeout=10,
                       retries={"total_max_attempts": 1, "mode": "standard"})
_SAFE = re.compile(r"[^A-Za-z0-9]+")
# Waits before each retry of a call refused with RetryableConflictException (about 30 s in all; AWS tears a
# session down in up to 15 s, devguide runtime-lifecycle-settings).
CONFLICT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
_SESSIONS_LOCK = threading.Lock()
STARTING = "starting the session's agent... (a session's first call takes a few seconds; later ones answer at once)"


def _data_client(settings: Settings):
    return aws.client("bedrock-agentcore", settings, config=INVOKE_CONFIG)


def _bearer_client(settings: Settings, token: str):
    """A data-plane client that sends `Authorization: Bearer <token>` instead of a SigV4 signature.

    A runtime with a customJWTAuthorizer takes only bearer calls (devguide: runtime-oauth); the request,
    its routing and its streamed answer are otherwise InvokeAgentRuntime's, so botocore still builds and reads them.
    """
    import boto3
    from botocore import UNSIGNED

    if not isinstance(token, str) or token.count(".") != 2 or any(c.isspace() for c in token):
        raise InvocationError("bearer_token is not a JWT (header.payload.signature).",
                              hint="Pass the access token your identity provider issued, without 'Bearer '.")
    kwargs = {"endpoint_url": settings.endpoint_url} if settings.is_local else {}
    client = boto3.session.Session(region_name=settings.region).client(
        "bedrock-agentcore", config=INVOKE_CONFIG.merge(Config(signature_version=UNSIGNED)), **kwargs)

    def add_bearer(request, **_kwargs):
        request.headers["Authorization"] = f"Bearer {token}"

    client.meta.events.register("before-send.bedrock-agentcore.InvokeAgentRuntime", add_bearer)
    return client


def runtime_session_id(actor_id: str, session_id: str) -> str:
    """The runtime session id for this actor and session: deterministic, 33-100 characters, [A-Za-z0-9-].

    Readable parts first (so it can be recognised in logs), then a hash of the exact pair, so two
    pairs that read alike still get different ids.
    """
    for name, value in (("actor_id", actor_id), ("session_id", session_id)):
        if not isinstance(value, str) or not value.strip():
            raise InvocationError(f"{name} must be a non-empty string, got {value!r}.",
                                  hint="Pass the ids explicitly, e.g. actor_id='alice', session_id='project-1'.")
    digest = hashlib.sha256(f"{actor_id}\0{session_id}".encode()).hexdigest()[:32]
    actor = _SAFE.sub("-", actor_id).strip("-")[:24] or "actor"
    session = _SAFE.sub("-", session_id).strip("-")[:24] or "session"
    return f"{actor}-{session}-{digest}"


class AgentOutput(dict):
    """The agent's `output` document, with the stream's events and timings beside it."""

    def __init__(self, output: dict, *, events: list[dict], runtime_session_id: str, seconds: float,
                 first_event_seconds: float | None):
        super().__init__(output)
        self.events = events
        self.runtime_session_id = runtime_session_id
        self.seconds = seconds
        self.first_event_seconds = first_event_seconds

    @property
    def result(self) -> str:
        return self.get("result") or ""

    def _footer(self, code=lambda text: text) -> str:
        meta = self.get("metadata") or {}
        files = ", ".join(f.get("file_name", "?") for f in meta.get("uploaded_files") or []) or "none"
        state = "succeeded" if self.get("success") else ("stopped" if self.get("stopped") else "failed")
        return (f"{state} in {self.seconds:.1f}s; actor {code(self.get('actor_id'))}, session "
                f"{code(self.get('session_id'))}; {meta.get('num_turns')} model turn(s); memory "
                f"{'on' if meta.get('memory_enabled') else 'off'}; files uploaded: {files}")

    def __repr__(self) -> str:
        # The answer and one line about the call, for a terminal; the document itself is `dict(output)`.
        return f"{self.result}\n---\n{self._footer()}"

    __str__ = __repr__

    def _repr_markdown_(self) -> str:
        footer = self._footer(lambda text: f"`{text}`")
        if not self.get("success"):
            footer = footer.replace("failed", "**failed**", 1)
        return f"{self.result}\n\n---\n*{footer}*"


def iter_sse(stream) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream, each as soon as its bytes arrive.

    Reads whatever the connection has (read1), not fixed 1 KB blocks as iter_lines does, so a
    short progress event is seen when it is sent rather than when later ones fill the buffer.
    """
    raw = getattr(stream, "_raw_stream", stream)
    read = getattr(raw, "read1", None) or (lambda n: raw.read(1))
    buffer = b""
    while True:
        chunk = read(65536)
        if not chunk:
            break
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            parsed = _parse_block(block.decode("utf-8", errors="replace"))
            if parsed:
                yield parsed
    if buffer.strip():
        parsed = _parse_block(buffer.decode("utf-8", errors="replace"))
        if parsed:
            yield parsed


def _parse_block(block: str) -> tuple[str, str] | None:
    event, data = "message", []
    for line in block.split("\n"):
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return (event, "\n".join(data)) if data else None


def describe_event(event: str, doc: dict) -> str:
    """A few words about one progress event, for the progress line."""
    kind = doc.get("type", event)
    if kind == "tool_use":
        return f"{doc.get('tool')} {doc.get('target') or ''}".strip()
    if kind == "tool_result":
        return f"{doc.get('tool')} done"
    if kind == "text":
        # Its first line and how many follow: squashing a multi-line answer (ls output) into one
        # line makes a run-on that reads as neither.
        lines = [line.strip() for line in str(doc.get("text", "")).strip().splitlines() if line.strip()]
        first = (lines or [""])[0]
        first = first[:80] + ("..." if len(first) > 80 else "")
        return first + (f" (+{len(lines) - 1} more line{'s' if len(lines) > 2 else ''})" if len(lines) > 1 else "")
    if kind == "files_restored":
        return f"restored {len(doc.get('files') or [])} file(s) of this session"
    if kind == "memory":
        return (f"memory: {doc.get('turns', 0)} earlier messages, {doc.get('facts', 0)} facts, "
                f"{doc.get('preferences', 0)} preferences, {doc.get('summaries', 0)} summaries")
    if kind == "file_uploaded":
        return f"uploaded {doc.get('file_name')}"
    return doc.get("message") or kind


def events_df(output: AgentOutput):
    """The streamed events of one invocation as a table: kind and a few words each."""
    import pandas as pd

    rows = [(e.get("type"), describe_event(e.get("type", ""), e) if "output" not in e else "final output")
            for e in output.events]
    return pd.DataFrame(rows, columns=["event", "what"])


def continuity(output: AgentOutput, after: AgentOutput | None = None) -> dict:
    """What this invocation started from and left: files restored, memory it was given, files uploaded,
    and the Claude conversation it continued (with `after`, whether that is the one `after` ran in)."""
    restored = [f for e in output.events if e.get("type") == "files_restored" for f in e.get("files") or []]
    meta = output.get("metadata") or {}
    context = meta.get("memory_context") or {}
    return Continuity({
        "actor_id": output.get("actor_id"),
        "session_id": output.get("session_id"),
        "files_restored": restored,
        "turns_remembered": context.get("turns", 0),
        "facts": context.get("facts", 0),
        "preferences": context.get("preferences", 0),
        "summaries": context.get("summaries", 0),
        "files_uploaded": [f.get("file_name") for f in meta.get("uploaded_files") or []],
        "claude_session_id": meta.get("claude_session_id"),
        "resumed_from": meta.get("resumed_from"),
        **({"same_claude_conversation": bool(meta.get("resumed_from"))
            and meta.get("resumed_from") == (after.get("metadata") or {}).get("claude_session_id")}
           if after is not None else {}),
    })


class Continuity(dict):
    """What `continuity()` found, as a dict (tests and records read it) that reads as sentences in a notebook."""

    def lines(self) -> list[str]:
        restored = ", ".join(self.get("files_restored") or []) or "none"
        uploaded = ", ".join(str(f) for f in self.get("files_uploaded") or []) or "none"
        claude = self.get("claude_session_id") or "unknown"
        if self.get("resumed_from"):
            resumed = f"resumed Claude conversation {self['resumed_from']}"
            if "same_claude_conversation" in self:
                resumed += (" (the earlier call's: the same conversation)" if self["same_claude_conversation"]
                            else " (not the earlier call's)")
        else:
            resumed = f"started a new Claude conversation {claude}"
        return [
            f"actor {self.get('actor_id')}, session {self.get('session_id')}",
            f"files restored from the session: {restored}",
            f"memory given to the agent: {self.get('turns_remembered', 0)} earlier message(s), "
            f"{self.get('facts', 0)} fact(s), {self.get('preferences', 0)} preference(s), "
            f"{self.get('summaries', 0)} summary(ies)",
            resumed,
            f"files uploaded after this call: {uploaded}",
        ]

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    __str__ = __repr__

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- {line}" for line in self.lines())


def invoke(settings: Settings, prompt: str, actor_id: str, session_id: str, *, stream: bool = True,
           runtime_arn: str | None = None, progress: bool = True, extra_input: dict | None = None,
           on_event: Callable[[dict], None] | None = None,
           should_stop: Callable[[], bool] | None = None, restart_outdated: bool = True,
           user_id: str | None = None, bearer_token: str | None = None) -> AgentOutput:
    """Ask the agent to do `prompt` as `actor_id` in `session_id`; its output once it has finished.

    `on_event(doc)` sees each progress event as it streams in. When `should_stop()` turns true the
    answer is no longer read and the runtime session is stopped; the output then says `stopped`.
    With `restart_outdated` (and no `runtime_arn` given), a session these helpers started on an older
    runtime version is stopped first, so the call runs the runtime's current code.

    Who the caller is (README, "Who may act as whom"): `user_id` sends InvokeAgentRuntime's runtimeUserId
    (needs bedrock-agentcore:InvokeAgentRuntimeForUser); `bearer_token` calls a runtime with a JWT authorizer
    with that token instead of SigV4. Where the agent learns an identity, it decides the actor: `actor_id`
    must then be that identity (or the call is refused with 403).
    """
    version = None  # the runtime's current version, when the helpers looked the runtime up themselves
    if runtime_arn is None:
        from . import runtime

        found = runtime.current_runtime(settings)
        runtime_arn, version = found["agentRuntimeArn"], found.get("agentRuntimeVersion")
    rsid = runtime_session_id(actor_id, session_id)
    payload = {"input": {"prompt": prompt, "actor_id": actor_id, "session_id": session_id, **(extra_input or {})}}
    client = _data_client(settings)
    bar = waiters.Progress(f"Agent ({actor_id}/{session_id})", enabled=progress)
    started = time.monotonic()
    try:
        if version is not None and restart_outdated:
            _restart_if_outdated(settings, client, runtime_arn, rsid, version, bar, on_event)
        request = dict(agentRuntimeArn=runtime_arn, runtimeSessionId=rsid, payload=json.dumps(payload).encode(),
                       contentType="application/json", accept="text/event-stream" if stream else "application/json")
        if user_id is not None:
            if not isinstance(user_id, str) or not user_id:
                raise InvocationError(f"user_id must be a non-empty string, got {user_id!r}.",
                                      hint="Pass the end user's id, e.g. user_id='alice'.")
            request["runtimeUserId"] = user_id
        started = time.monotonic()
        # Said at once: a cold session shows nothing else for the seconds its agent takes to start.
        bar.update(STARTING)
        answer = _invoke_once_reached(client if bearer_token is None else _bearer_client(settings, bearer_token),
                                      bar, rsid, request)
    except (HTTPClientError, BotoConnectionError) as exc:
        # ReadTimeoutError is an HTTPClientError too, but _invoke_once_reached has already said what it means.
        raise _connection_error(exc, runtime_arn, rsid, settings, "before the agent answered") from exc
    if version is not None:
        _record_session(settings, runtime_arn, rsid, version)
    events: list[dict] = []
    body = answer["response"]
    try:
        output, first_event = _read_answer(answer, body, events, bar, started, rsid, on_event, should_stop)
    except (ReadTimeoutError, HTTPClientError, BotoConnectionError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _connection_error(exc, runtime_arn, rsid, settings, "while the agent answered") from exc
    seconds = time.monotonic() - started
    if output is None and should_stop is not None and should_stop():
        body.close()
        stop_session(settings, actor_id, session_id, runtime_arn)
        bar.update(f"stopped after {seconds:.1f}s")
        output = {"success": False, "stopped": True, "result": "", "actor_id": actor_id, "session_id": session_id}
    if output is None:
        raise InvocationError(f"The agent's answer in runtime session {rsid} ended without an output.",
                              hint="See the runtime's CloudWatch logs (notebook 08).")
    bar.update(f"{'done' if output.get('success') else 'finished with a failure'} in {seconds:.1f}s")
    return AgentOutput(output, events=events, runtime_session_id=rsid, seconds=seconds,
                       first_event_seconds=first_event)


def _connection_error(exc: Exception, runtime_arn: str, rsid: str, settings: Settings, when: str) -> InvocationError:
    """What to tell the caller when the endpoint went away mid-call (botocore's ConnectionClosedError,
    EndpointConnectionError, urllib3's ProtocolError while streaming): an emulator that was stopped or
    died, or a network that broke. The call is not retried: the agent may have started the task."""
    next_step = ("The emulator stopped or died: invoke again (the helpers start it when none answers, on the same "
                 "state), and the session's next call starts a fresh agent with its files and memory."
                 if settings.is_local else
                 "Check your network and the runtime's CloudWatch logs (notebook 08), then invoke again if need be.")
    return InvocationError(
        f"The connection to runtime {runtime_arn} broke {when} in runtime session {rsid} "
        f"({type(exc).__name__}: {exc}). It was not retried: the task may have run.", hint=next_step)


def _invoke_once_reached(client, bar, rsid: str, request: dict) -> dict:
    """InvokeAgentRuntime, retried only while AgentCore answers RetryableConflictException.

    That answer means the session was still being provisioned or torn down and the request never
    reached the agent (botocore's model marks the error retryable), so sending it again cannot run the
    task twice. Every other failure, and any answer that has begun, is final.
    """
    for attempt, delay in enumerate((*CONFLICT_RETRY_DELAYS, None), start=1):
        try:
            return client.invoke_agent_runtime(**request)
        except ClientError as exc:
            if aws_error_code(exc) != "RetryableConflictException" or delay is None:
                raise _invocation_error(exc, rsid) from exc
            bar.update(f"the session is starting or stopping (RetryableConflictException); "
                       f"retry {attempt} of {len(CONFLICT_RETRY_DELAYS)} in {delay:.1f}s")
            time.sleep(delay)
        except ReadTimeoutError as exc:
            raise InvocationError(f"No answer from runtime session {rsid} within {READ_TIMEOUT}s.",
                                  hint="It may still be working; it is not retried. Check the runtime's logs.") from exc
    raise AssertionError("unreachable: the last attempt returns or raises")


# -- which runtime version each session runs ----------------------------------------------------
def _sessions_path(settings: Settings):
    return settings.state_dir / "sessions.json"


def _read_sessions(settings: Settings) -> dict:
    try:
        doc = json.loads(_sessions_path(settings).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}  # a half-written or hand-edited file only loses the notes: sessions still run
    return doc if isinstance(doc, dict) else {}


def _write_sessions(settings: Settings, doc: dict) -> None:
    path = _sessions_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _record_session(settings: Settings, runtime_arn: str, rsid: str, version: str) -> None:
    # Only a session's first call since it was (re)started says which version it runs: a later call
    # reaches the same live session, which keeps its version whatever the runtime's is now.
    with _SESSIONS_LOCK:
        doc = _read_sessions(settings)
        if rsid not in doc.get(runtime_arn, {}):
            doc.setdefault(runtime_arn, {})[rsid] = version
            _write_sessions(settings, doc)


def _forget_session(settings: Settings, runtime_arn: str, rsid: str) -> None:
    with _SESSIONS_LOCK:
        doc = _read_sessions(settings)
        if doc.get(runtime_arn, {}).pop(rsid, None) is not None:
            _write_sessions(settings, doc)


def session_version(settings: Settings, runtime_arn: str, actor_id: str, session_id: str) -> str | None:
    """The runtime version this actor's session was started on by these helpers, or None if not known."""
    return _read_sessions(settings).get(runtime_arn, {}).get(runtime_session_id(actor_id, session_id))


def _restart_if_outdated(settings: Settings, client, runtime_arn: str, rsid: str, version: str, bar,
                         on_event=None) -> None:
    started_on = _read_sessions(settings).get(runtime_arn, {}).get(rsid)
    if started_on is None or started_on == version:
        return
    message = (f"the runtime is at version {version} but this session started on version {started_on}, whose "
               "code a live session keeps: stopping it so this call runs the new version")
    bar.update(message)
    if on_event is not None:  # the chat shows status events; it runs without the progress line
        on_event({"type": "status", "message": message[0].upper() + message[1:] + "."})
    _stop(client, runtime_arn, rsid)
    _forget_session(settings, runtime_arn, rsid)


def _read_answer(answer: dict, body, events: list, bar, started: float, rsid: str, on_event=None,
                 should_stop=None):
    output = first_event = None
    if answer.get("contentType", "").startswith("text/event-stream"):
        for event, data in iter_sse(body):
            if first_event is None:
                first_event = time.monotonic() - started
            try:
                doc = json.loads(data)
            except ValueError:
                doc = {"type": event, "message": data}
            if not isinstance(doc, dict):
                doc = {"type": event, "message": str(doc)}
            doc.setdefault("type", event)
            events.append(doc)
            if event == "error":
                raise InvocationError(f"The agent failed in runtime session {rsid}: "
                                      f"{doc.get('message') or doc.get('details') or doc.get('error')}",
                                      hint="See the runtime's CloudWatch logs (notebook 08); "
                                           "the next invocation starts a fresh agent.")
            if "output" in doc:
                output = doc["output"]
                continue
            bar.update(f"{describe_event(event, doc)} ({time.monotonic() - started:.0f}s)")
            if on_event is not None:
                on_event(doc)
            if should_stop is not None and should_stop():
                break
    else:
        raw = body.read()
        first_event = time.monotonic() - started
        try:
            output = json.loads(raw).get("output")
        except (ValueError, AttributeError):
            raise InvocationError(f"The agent's answer is not the JSON it promises: {raw[:200]!r}") from None
    return output, first_event


def _invocation_error(exc: ClientError, rsid: str) -> InvocationError:
    code = aws_error_code(exc)
    message = exc.response.get("Error", {}).get("Message", str(exc))
    hints = {
        "RuntimeClientError": "The agent failed; see the runtime's CloudWatch logs (notebook 08). "
                              "Nothing was retried; invoking again starts a fresh agent for the session.",
        "ResourceNotFoundException": "Create the runtime first (notebook 04_create_runtime).",
        "RetryableConflictException": "The runtime or the session was still changing after every retry; "
                                      "wait until the runtime is READY and invoke again.",
        "ValidationException": "Check the prompt and ids.",
        "AccessDeniedException": "Your credentials may not call bedrock-agentcore:InvokeAgentRuntime.",
    }
    return InvocationError(f"InvokeAgentRuntime failed for runtime session {rsid} ({code}): {message}",
                           hint=hints.get(code, "Nothing was retried automatically."))


def stop_session(settings: Settings, actor_id: str, session_id: str, runtime_arn: str | None = None) -> bool:
    """Stop the session's agent now (AgentCore would after its idle timeout); False if none was running."""
    if runtime_arn is None:
        from . import runtime

        runtime_arn = runtime.runtime_arn(settings)
    rsid = runtime_session_id(actor_id, session_id)
    stopped = _stop(_data_client(settings), runtime_arn, rsid)
    _forget_session(settings, runtime_arn, rsid)
    return stopped


def _stop(client, runtime_arn: str, rsid: str) -> bool:
    try:
        client.stop_runtime_session(agentRuntimeArn=runtime_arn, runtimeSessionId=rsid)
    except ClientError as exc:
        # Not running, or already being torn down: either way no agent of this session is left to stop.
        if aws_error_code(exc) in ("ResourceNotFoundException", "RetryableConflictException"):
            return False
        raise InvocationError(f"Could not stop runtime session {rsid}: {exc}") from exc
    return True


class CommandResult:
    """What a command run inside a runtime session printed, and how it ended."""

    def __init__(self, command: str, stdout: str, stderr: str, exit_code: int | None, status: str | None,
                 runtime_session_id: str, seconds: float):
        self.command = command
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code
        self.status = status
        self.runtime_session_id = runtime_session_id
        self.seconds = seconds

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.status == "COMPLETED"

    def __repr__(self) -> str:
        shown = self.command if len(self.command) <= 120 else self.command[:117] + "..."
        parts = [f"$ {shown}", self.stdout.rstrip("\n")]
        if self.stderr.strip():
            parts.append("[stderr]\n" + self.stderr.rstrip("\n"))
        parts.append(f"[exit code {self.exit_code}, {self.status}, {self.seconds:.1f}s]")
        return "\n".join(p for p in parts if p)


def run_command(settings: Settings, actor_id: str, session_id: str, command: str, *, timeout: int | None = None,
                runtime_arn: str | None = None) -> CommandResult:
    """Run a shell command inside the session's microVM (InvokeAgentRuntimeCommand); its output and exit code.

    The session must be running (invoke the agent in it first): a command never starts a microVM.
    Not retried automatically, as a command may change the session's files.
    """
    if runtime_arn is None:
        from . import runtime

        runtime_arn = runtime.runtime_arn(settings)
    rsid = runtime_session_id(actor_id, session_id)
    body = {"command": command, **({"timeout": int(timeout)} if timeout is not None else {})}
    started = time.monotonic()
    try:
        answer = _data_client(settings).invoke_agent_runtime_command(
            agentRuntimeArn=runtime_arn, runtimeSessionId=rsid, body=body)
    except ClientError as exc:
        code = aws_error_code(exc)
        hints = {
            "ResourceNotFoundException": "The session has no running microVM: invoke the agent in it first "
                                         "(invoke.invoke), then run the command.",
            "AccessDeniedException": "Your credentials need bedrock-agentcore:InvokeAgentRuntimeCommand on the runtime.",
            # A command never starts a microVM, so one that meets a session being torn down has nothing to
            # wait for: the session is ending.
            "RetryableConflictException": "The session is being stopped: invoke the agent in it again "
                                          "(a fresh microVM), then run the command.",
            "ValidationException": "Check the command and the timeout (1 to 3600 seconds); a runtime that does "
                                   "not require MMDSv2 refuses commands too (run 04_create_runtime again).",
        }
        hint = hints.get(code, "Check the command and the timeout (1 to 3600 seconds).")
        raise InvocationError(f"InvokeAgentRuntimeCommand failed for runtime session {rsid} ({code}): "
                              f"{exc.response.get('Error', {}).get('Message', exc)}", hint=hint) from exc
    stdout, stderr, exit_code, status = [], [], None, None
    try:
        for event in answer["stream"]:
            chunk = event.get("chunk") or {}
            delta = chunk.get("contentDelta")
            if delta:
                stdout.append(delta.get("stdout") or "")
                stderr.append(delta.get("stderr") or "")
            stop = chunk.get("contentStop")
            if stop:
                exit_code, status = stop.get("exitCode"), stop.get("status")
    except ClientError as exc:  # an error event inside the stream (botocore's EventStreamError)
        raise InvocationError(f"The command failed in runtime session {rsid}: {exc}",
                              hint="It is not retried; run it again if it is safe to.") from exc
    except (ReadTimeoutError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise InvocationError(f"The connection to runtime session {rsid} broke while the command ran: {exc}",
                              hint="It is not retried; run it again if it is safe to.") from exc
    if status is None:
        raise InvocationError(f"The command's output in runtime session {rsid} ended without its exit code.",
                              hint="The session may have stopped meanwhile; see the runtime's logs (notebook 08).")
    return CommandResult(command, "".join(stdout), "".join(stderr), exit_code, status, rsid,
                         time.monotonic() - started)


def session_files_command(actor_id: str, session_id: str) -> str:
    """A shell command that lists the session's workspace and Claude Code's transcripts inside the microVM.

    It finds them where the agent keeps them: on session storage when SESSION_STORAGE_PATH is mounted,
    else under WORKSPACE_ROOT and Claude Code's config directory (container/agent/settings.py).
    """
    for name, value in (("actor_id", actor_id), ("session_id", session_id)):
        if not isinstance(value, str) or not value.strip() or "/" in value or value in (".", ".."):
            raise InvocationError(f"{name} {value!r} cannot name a workspace folder.",
                                  hint="Use the same actor and session ids as for invoke().")
    sub = f"{shlex.quote(actor_id)}/{shlex.quote(session_id)}"
    return (
        'if [ -n "$SESSION_STORAGE_PATH" ] && [ -w "$SESSION_STORAGE_PATH" ]; then '
        'ws="$SESSION_STORAGE_PATH/workspaces"; conf="$SESSION_STORAGE_PATH/claude"; '
        'else ws="${WORKSPACE_ROOT:-/tmp/agent-workspaces}"; conf="${CLAUDE_CONFIG_DIR:-$HOME/.claude}"; fi; '
        f'echo "== workspace $ws/{sub}"; ls -la "$ws"/{sub}; '
        'echo "== Claude Code transcripts in $conf/projects"; '
        'find "$conf/projects" -name "*.jsonl" -exec ls -la {} + 2>/dev/null || echo "(none)"'
    )


def session_files(settings: Settings, actor_id: str, session_id: str, *, runtime_arn: str | None = None) -> CommandResult:
    """What is inside the session's microVM now: its workspace and Claude Code's transcript files."""
    return run_command(settings, actor_id, session_id, session_files_command(actor_id, session_id),
                       runtime_arn=runtime_arn, timeout=60)
