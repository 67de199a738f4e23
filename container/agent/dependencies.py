"""AWS dependencies that fail fast: after one timeout, the rest of the invocation skips that service.

botocore's connect and read timeouts bound one attempt (AgentSettings.boto_config). An invocation makes
many calls to S3 (restore, transcript, uploads) and to Memory (turns, records, summaries, save), so a
service that accepts connections and never answers would cost a full timeout per call, minutes in all.
A Breaker per client stops that: the first attempt that times out or cannot connect marks the service
unreachable, and every later call of the same invocation fails at once with Unreachable (a BotoCoreError,
so each step's own handling turns it into a warning). The next invocation tries the service again,
which is how files kept in the workspace are uploaded then.
"""
from __future__ import annotations

import logging
import threading

from botocore.exceptions import (BotoCoreError, ConnectionClosedError, ConnectTimeoutError,
                                 EndpointConnectionError, ReadTimeoutError)

log = logging.getLogger("agent.dependencies")
# What says "the service is not answering", as opposed to an answer that is an error.
_UNREACHABLE = (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ConnectionClosedError)


class Unreachable(BotoCoreError):
    fmt = ("{service} did not answer earlier in this invocation ({cause}); not called again until the "
           "next invocation")


class Breaker:
    """Marks one service unreachable for the rest of an invocation; reset() at each invocation's start."""

    def __init__(self, service: str):
        self.service = service
        self.cause: str | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.cause = None

    def install(self, client) -> None:
        client.meta.events.register("before-send", self._before_send)
        client.meta.events.register("needs-retry", self._needs_retry)

    def _before_send(self, **_kwargs):
        cause = self.cause
        if cause is not None:
            raise Unreachable(service=self.service, cause=cause)
        return None  # send as usual

    def _needs_retry(self, caught_exception=None, **_kwargs):
        if isinstance(caught_exception, _UNREACHABLE):
            with self._lock:
                if self.cause is None:
                    self.cause = f"{type(caught_exception).__name__}: {caught_exception}"
                    log.warning("%s unreachable for the rest of this invocation: %s", self.service, self.cause)
        return None  # botocore's own retry handler decides; the retry then meets _before_send
