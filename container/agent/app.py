"""The agent's HTTP face, on AgentCore Runtime's contract: GET /ping and POST /invocations (JSON or SSE)."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import AsyncIterator

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from . import denials, identity
from .conversation import Conversation
from .dependencies import Breaker
from .memory import Memory
from .request import BadRequest, parse
from .runner import ClaudeFailed, RunOutcome, run_claude
from .settings import AgentSettings
from .workspace import Workspace

log = logging.getLogger("agent")
SESSION_HEADER = "x-amzn-bedrock-agentcore-runtime-session-id"


class Busy:
    """HealthyBusy while any invocation runs; AgentCore must not reclaim a session mid-task."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active = 0
        self.changed_at = time.time()

    def enter(self):
        with self._lock:
            self.active += 1
            self.changed_at = time.time()

    def leave(self):
        with self._lock:
            self.active -= 1
            self.changed_at = time.time()

    def ping(self) -> dict:
        return {"status": "HealthyBusy" if self.active else "Healthy", "time_of_last_update": int(self.changed_at)}


def _clients(settings: AgentSettings):
    import boto3

    cfg = settings.boto_config()
    session = boto3.session.Session(region_name=settings.region)
    return (session.client("s3", config=cfg), session.client("ssm", config=cfg),
            session.client("bedrock-agentcore", config=cfg), session.client("bedrock-agentcore-control", config=cfg))


def _error(status: int, error: str, details: str, field: str | None = None) -> JSONResponse:
    body = {"error": error, "details": details}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_app(settings: AgentSettings | None = None, clients=None) -> FastAPI:
    settings = settings or AgentSettings.from_env()
    settings, storage_problem = settings.with_session_storage()
    # (s3, ssm, bedrock-agentcore[, bedrock-agentcore-control]); without the control client
    # summaries are found by namespace alone.
    s3, ssm, agentcore, *control = clients if clients is not None else _clients(settings)
    memory = Memory(settings, ssm, agentcore, control[0] if control else None)
    # One per service: S3 down must not stop memory calls, nor the other way round.
    breakers = {"S3": Breaker("S3"), "SSM": Breaker("SSM"), "AgentCore Memory": Breaker("AgentCore Memory")}
    for name, client in (("S3", s3), ("SSM", ssm), ("AgentCore Memory", agentcore),
                         ("AgentCore Memory", control[0] if control else None)):
        if client is not None and hasattr(client, "meta"):
            breakers[name].install(client)
    busy = Busy()
    session_locks: dict[tuple[str, str], asyncio.Lock] = {}
    restored: set[tuple[str, str]] = set()  # sessions this process has fully restored from S3
    background_runs: set[asyncio.Task] = set()  # streamed runs, referenced so they are not collected mid-run
    # Runtime session id -> the identity's actor that first used it. "AgentCore does not enforce session-to-user
    # mappings" (devguide: runtime-sessions), and this process is that session's microVM, so the agent does.
    session_owners: dict[str, str] = {}

    @asynccontextmanager
    async def lifespan(_app):
        # Read the memory id once, off the event loop, so /ping answers while SSM is slow.
        threading.Thread(target=memory.load, name="memory-load", daemon=True).start()
        yield

    app = FastAPI(title="Claude Code agent", lifespan=lifespan)
    app.state.settings = settings
    app.state.memory = memory
    app.state.busy = busy
    app.state.breakers = breakers

    @app.get("/ping")
    async def ping():
        return busy.ping()

    async def invocation(inv) -> AsyncIterator[dict]:
        """The steps below, each also written to the log as one JSON line for timelines in CloudWatch."""
        invocation_id = uuid.uuid4().hex
        record_event(inv, invocation_id, {"type": "started", "prompt": inv.prompt})
        async for event in steps(inv):
            record_event(inv, invocation_id, event)
            yield event

    async def steps(inv) -> AsyncIterator[dict]:
        """Progress events, then {"type": "output", "output": ...}; ClaudeFailed if the CLI cannot run."""
        started = time.monotonic()
        warnings = list(inv.warnings)
        for breaker in breakers.values():  # each invocation tries every service again
            breaker.reset()
        lock = session_locks.setdefault((inv.actor_id, inv.session_id), asyncio.Lock())
        async with lock:
            await asyncio.to_thread(memory.wait_loaded, settings.aws_connect_timeout * 3 + settings.aws_read_timeout)
            await asyncio.to_thread(memory.retry_if_unreachable)
            if not memory.enabled:
                warnings.append(memory.status)
            workspace = Workspace(settings.workspace_root, inv.actor_id, inv.session_id, settings.output_bucket,
                                  s3, settings.region)
            if not settings.output_bucket:
                warnings.append("OUTPUT_BUCKET_NAME is not set: files stay in the local workspace only")
            if storage_problem:
                warnings.append(storage_problem)
            key = (inv.actor_id, inv.session_id)
            try:
                if key not in restored or settings.workspace_restore == "always":
                    report = await asyncio.to_thread(workspace.restore)
                    warnings += report.warnings
                    if not report.warnings and settings.output_bucket:
                        restored.add(key)
                    if report.restored:
                        yield {"type": "files_restored", "files": report.restored}
            except (ClientError, BotoCoreError, OSError) as exc:
                if denials.is_access_denied(exc):
                    warnings.append(denials.explain(
                        f"restoring the session's files from s3://{settings.output_bucket}/"
                        f"{workspace.session_prefix} (working with the local copy)", str(exc), "s3:ListBucket"))
                else:
                    warnings.append(f"could not restore the session's files from s3://{settings.output_bucket}/"
                                    f"{workspace.session_prefix}: {exc}; working with the local copy")
            context = await asyncio.to_thread(memory.context, inv.actor_id, inv.session_id, inv.prompt)
            warnings += context.warnings
            if not context.is_empty():
                yield {"type": "memory", "turns": len(context.turns), "facts": len(context.facts),
                       "preferences": len(context.preferences), "summaries": len(context.summaries)}

            conversation = Conversation(inv.actor_id, inv.session_id, settings.workspace_root, settings.output_bucket,
                                        s3, workspace.session_prefix, settings.claude_state_dir())
            plan = await asyncio.to_thread(conversation.plan, workspace.path)
            warnings += plan.warnings
            if plan.resume:
                yield {"type": "status", "message": f"continuing Claude conversation {plan.resume}",
                       "claude_session_id": plan.resume}

            outcome = RunOutcome()
            async for event in run_claude(settings, workspace.path, inv.prompt, inv.permission_mode,
                                          inv.allowed_tools, inv.max_turns, context.render(), outcome,
                                          resume=plan.resume, session_store=plan.store):
                yield event
            warnings += outcome.warnings + (plan.store.warnings if plan.store else [])
            if outcome.is_error and denials.parse(outcome.result):
                # Claude Code's model call was refused (e.g. bedrock:InvokeModelWithResponseStream).
                warnings.append(denials.explain("calling the model through Bedrock", outcome.result))
            await asyncio.to_thread(conversation.remember, outcome.claude_session_id, warnings)
            await asyncio.to_thread(conversation.compact, plan, outcome.claude_session_id, warnings)

            uploaded = []
            try:
                report = await asyncio.to_thread(workspace.upload_changes)
                warnings += report.warnings
                uploaded = report.uploaded
            except (ClientError, BotoCoreError, OSError) as exc:
                if denials.is_access_denied(exc):
                    warnings.append(denials.explain(
                        f"uploading files to s3://{settings.output_bucket} (kept in the workspace, uploaded on the "
                        "next invocation)", str(exc), "s3:PutObject"))
                else:
                    warnings.append(f"could not upload files to s3://{settings.output_bucket}: {exc}; "
                                    "they are kept in the workspace and uploaded on the next invocation")
            for item in uploaded:
                yield {"type": "file_uploaded", **item}

            answer = outcome.result
            problem = await asyncio.to_thread(memory.save_turn, inv.actor_id, inv.session_id, inv.prompt, answer)
            if problem:
                warnings.append(problem)

        output = {
            "success": not outcome.is_error,
            "result": answer,
            "session_id": inv.session_id,
            "actor_id": inv.actor_id,
            "timestamp": _now(),
            "model": outcome.model or settings.model,
            "metadata": {
                "duration_ms": int((time.monotonic() - started) * 1000),
                "claude_duration_ms": outcome.duration_ms,
                "num_turns": outcome.num_turns,
                "memory_enabled": memory.enabled,
                # Why memory did not serve this invocation, when it did not: the id's status, or the service silent.
                "memory_status": (f"{memory.status}; unreachable in this invocation: "
                                  f"{breakers['AgentCore Memory'].cause}" if memory.enabled
                                  and breakers["AgentCore Memory"].cause else memory.status),
                "memory_context": {"turns": len(context.turns), "facts": len(context.facts),
                                   "preferences": len(context.preferences), "summaries": len(context.summaries)},
                "uploaded_files": uploaded,
                "timed_out": outcome.timed_out,
                "cost_usd": outcome.cost_usd,
                "usage": outcome.usage,
                "claude_session_id": outcome.claude_session_id,
                # Calls the execution role was refused, each with the action to grant (also in warnings).
                "access_denied": denials.find_all(warnings),
                # Whether this run continued the session's earlier Claude conversation, and which.
                "resumed": plan.resume is not None,
                "resumed_from": plan.resume,
                "transcript_store": plan.transcript_url,
                "session_storage": str(settings.session_storage) if settings.session_storage and
                not storage_problem else None,
            },
            "warnings": warnings,
        }
        if outcome.timed_out:
            output["error"] = "timeout"
        yield {"type": "output", "output": output}

    @app.post("/invocations")
    async def invocations(request: Request):
        body = await request.body()
        try:
            inv = parse(body, settings, request.headers.get(SESSION_HEADER))
        except BadRequest as exc:
            return _error(400, f"invalid {exc.field}", str(exc), exc.field)
        try:
            caller = identity.from_headers(request.headers)
            actor = identity.decide_actor(caller, inv.actor_id if inv.actor_given else None,
                                          settings.require_identity)
        except identity.IdentityRefused as exc:
            log.warning("invocation refused: %s", exc.details)
            return _error(exc.status, exc.error, exc.details, exc.field)
        runtime_session = request.headers.get(SESSION_HEADER)
        owner = session_owners.get(runtime_session) if runtime_session else None
        if owner is not None and owner != actor:
            log.warning("invocation refused: runtime session %s is bound to another identity", runtime_session)
            return _error(403, "runtime session belongs to another caller",
                          f"runtime session {runtime_session} was started by another caller's identity, and its "
                          "files and processes are theirs. Use a runtime session id of your own (helpers derive one "
                          "from your actor and session: helpers.invoke.runtime_session_id).",
                          "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id")
        if actor is not None:
            inv = replace(inv, actor_id=actor)
            if runtime_session:
                session_owners.setdefault(runtime_session, actor)
        log.info("invocation actor=%s session=%s identity=%s", inv.actor_id, inv.session_id,
                 caller.source if caller else "none")
        if "text/event-stream" in request.headers.get("accept", ""):
            queue = _start_streamed_run(invocation(inv), busy, background_runs)
            return StreamingResponse(_sse(queue, settings.sse_keepalive), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        busy.enter()
        try:
            async for event in invocation(inv):
                if event["type"] == "output":
                    return JSONResponse({"output": event["output"]})
            return _error(500, "agent failure", "the run ended without an output")
        except ClaudeFailed as exc:
            log.error("Claude Code failed: %s", exc)
            return _error(500, "Claude Code failed", _claude_failure(exc))
        except Exception as exc:  # a fault of the agent itself: answer in the contract's shape, log the trace
            log.exception("invocation failed")
            return _error(500, "agent failure", f"{type(exc).__name__}: {exc}")
        finally:
            busy.leave()

    return app


def _claude_failure(exc: Exception) -> str:
    """The failure's details; when the model call was refused, first which action the role needs."""
    details = str(exc)
    if denials.parse(details):
        return denials.explain("calling the model through Bedrock", details) + f". Claude Code said: {details}"
    return details


def _start_streamed_run(events: AsyncIterator[dict], busy: Busy, runs: set) -> asyncio.Queue:
    """Run the invocation as its own task, feeding SSE frames to a queue; None marks the end.

    A client that goes away (a notebook interrupt, a dropped connection) cancels only the
    response, never the run: the run finishes in the background so its files are uploaded and
    its turn is saved, and /ping stays HealthyBusy until it truly ends. busy.leave() is a done
    callback of the task, so it runs however the task ends (even cancelled before it started).
    """
    queue: asyncio.Queue = asyncio.Queue()

    async def drive():
        try:
            async for event in events:
                data = {"output": event["output"]} if event["type"] == "output" else event
                queue.put_nowait(f"event: {event['type']}\ndata: {json.dumps(data)}\n\n".encode())
        except ClaudeFailed as exc:
            log.error("Claude Code failed: %s", exc)
            queue.put_nowait(_sse_error("Claude Code failed", _claude_failure(exc)))
        except Exception as exc:  # a fault of the agent itself: the stream still ends with an error event
            log.exception("invocation failed")
            queue.put_nowait(_sse_error("agent failure", f"{type(exc).__name__}: {exc}"))
        finally:
            queue.put_nowait(None)

    busy.enter()
    task = asyncio.ensure_future(drive())
    runs.add(task)

    def finished(t: asyncio.Task) -> None:
        runs.discard(t)
        busy.leave()

    task.add_done_callback(finished)
    return queue


async def _sse(queue: asyncio.Queue, keepalive: float) -> AsyncIterator[bytes]:
    """Server-sent events: each progress event as it happens; the last carries the whole output.

    While a tool runs silently, a comment line every `keepalive` seconds keeps proxies and
    clients from taking the quiet stream for a dead one. Cancelling this generator (the client
    went away) leaves the run itself going; see _start_streamed_run.
    """
    pending = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield b": keep-alive\n\n"
                continue
            frame, pending = pending.result(), None
            if frame is None:
                break
            yield frame
    finally:
        if pending is not None:  # cancelling a queue.get loses nothing and needs no await
            pending.cancel()


# Progress events go to standard output as bare JSON lines, which AgentCore Runtime ships to
# CloudWatch Logs; helpers.logs builds its timeline of model turns and tool calls from them.
events_log = logging.getLogger("agent.events")
events_log.propagate = False


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is when the line is written (servers and tests may replace it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


_events_handler = _StdoutHandler()
_events_handler.setFormatter(logging.Formatter("%(message)s"))
events_log.addHandler(_events_handler)
events_log.setLevel(logging.INFO)


def record_event(inv, invocation_id: str, event: dict) -> None:
    doc = {"agent_event": "finished" if event.get("type") == "output" else event.get("type"),
           "time": round(time.time(), 3), "invocation_id": invocation_id,
           "actor_id": inv.actor_id, "session_id": inv.session_id}
    for key, value in event.items():
        if key == "type":
            continue
        if key == "output":
            doc["success"] = value.get("success")
            doc["duration_ms"] = (value.get("metadata") or {}).get("duration_ms")
        elif isinstance(value, str):
            doc[key] = value[:200]  # a line, not a transcript: prompts and texts are cut short
        elif key != "files":
            doc[key] = value
        else:
            doc["files"] = len(value)
    events_log.info(json.dumps(doc, default=str))


def _sse_error(error: str, details: str) -> bytes:
    return f"event: error\ndata: {json.dumps({'error': error, 'details': details})}\n\n".encode()


logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                    format="%(asctime)s %(levelname)s %(name)s %(message)s")
app = create_app()
