"""Forwarding an invocation to a session's agent, its answer streamed back as it comes (InvokeAgentRuntime)."""
from __future__ import annotations

import http.client
import json
from typing import Callable, Iterable

from .exceptions import RuntimeClientError
from .processes import AgentProcess

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
CUSTOM_HEADER_PREFIX = "x-amzn-bedrock-agentcore-runtime-custom-"
# AWS ends a synchronous invocation after 15 minutes.
INVOCATION_TIMEOUT = 15 * 60


def forward(proc: AgentProcess, payload: bytes, headers: dict[str, str],
            on_done: Callable[[bool], None]) -> tuple[int, str, Iterable[bytes]]:
    """Send one invocation to the agent; (status, content type, body chunks as they come).

    `on_done(broken)` is called exactly once, when the body has been read to the end or failed.
    Failures before the answer starts raise RuntimeClientError (424: not retried by boto3).
    """
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=INVOCATION_TIMEOUT)
    try:
        conn.request("POST", "/invocations", body=payload, headers=headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        on_done(True)
        raise RuntimeClientError(
            f"The agent for runtime session {proc.launch.session_id} failed before answering ({exc}). "
            f"Last output: {proc.log_tail()}. The next invocation starts a fresh agent.") from exc
    content_type = resp.getheader("Content-Type", "application/json")
    if resp.status >= 400:
        try:
            detail = resp.read()[:2000].decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException):
            detail = ""
        conn.close()
        on_done(False)
        # What AWS says when the agent answers an error; the agent's own words follow for the reader.
        raise RuntimeClientError(f"Received error ({resp.status}) from runtime. Please check your CloudWatch "
                                 f"logs for more information. Agent said: {detail}")
    streaming = content_type.split(";")[0].strip() == "text/event-stream"
    if not streaming:
        try:
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            on_done(True)
            raise RuntimeClientError(
                f"The agent for runtime session {proc.launch.session_id} died while answering ({exc!r}). "
                f"Last output: {proc.log_tail()}. The next invocation starts a fresh agent.") from exc
        conn.close()
        on_done(False)
        return resp.status, content_type, iter([body])

    return resp.status, content_type, _StreamedBody(proc, conn, resp, on_done)


class _StreamedBody:
    """The agent's streamed answer, passed on chunk by chunk as it arrives.

    An iterator with close(), so the server's close tells us even when the client left before the
    first chunk; `on_done` is called exactly once either way.
    """

    def __init__(self, proc: AgentProcess, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 on_done: Callable[[bool], None]):
        self.proc, self.conn, self.resp, self.on_done = proc, conn, resp, on_done
        self.finished = False

    def __iter__(self) -> "_StreamedBody":
        return self

    def __next__(self) -> bytes:
        if self.finished:
            raise StopIteration
        try:
            data = self.resp.read1(65536)
        except (OSError, http.client.HTTPException) as exc:
            self._finish(broken=True)
            # The answer has started, so its status cannot change: end the stream with an error event.
            return _sse_error(f"The agent for runtime session {self.proc.launch.session_id} died mid-stream "
                              f"({exc!r}). Last output: {self.proc.log_tail()}. "
                              "The next invocation starts a fresh agent.")
        if not data:
            self._finish(broken=False)
            raise StopIteration
        return data

    def close(self) -> None:
        # Closed before the end: the caller went away; the agent itself is fine.
        self._finish(broken=False)

    def _finish(self, broken: bool) -> None:
        if not self.finished:
            self.finished = True
            self.conn.close()
            self.on_done(broken)


def _sse_error(message: str) -> bytes:
    doc = {"error": "RuntimeClientError", "message": message}
    return b"\n\nevent: error\ndata: " + json.dumps(doc).encode() + b"\n\n"
