"""Agent output to CloudWatch Logs, in the log group AgentCore Runtime writes a runtime endpoint's logs to."""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time

from .. import persistence
from ..core.settings import Settings

log = logging.getLogger("emulator.runtime")


def log_group_name(runtime_id: str, endpoint: str = "DEFAULT") -> str:
    return f"/aws/bedrock-agentcore/runtimes/{runtime_id}-{endpoint}"


class LogShipper:
    """Batches agent output lines into CloudWatch Logs (moto's logs backend, in this process).

    Written in-process rather than through the endpoint so the last lines of an agent stopped at
    shutdown still arrive: by then the endpoint no longer answers requests.
    """

    def __init__(self, settings: Settings, flush_every: float = 0.5):
        self.settings = settings
        self._queue: queue.Queue = queue.Queue()
        self._known_streams: set[tuple[str, str, str]] = set()
        self._stop = threading.Event()
        self._flush_every = flush_every
        self._flush_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="runtime-log-shipper", daemon=True)
        self._thread.start()

    def put(self, region: str, group: str, stream: str, message: str) -> None:
        self._queue.put((region, group, stream, int(time.time() * 1000), message))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._flush_every)
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            batches: dict[tuple[str, str, str], list[dict]] = collections.defaultdict(list)
            while True:
                try:
                    region, group, stream, ts, message = self._queue.get_nowait()
                except queue.Empty:
                    break
                batches[(region, group, stream)].append({"timestamp": ts, "message": message})
            if not batches:
                return
            # Written to moto in-process: saved with its state as a PutLogEvents request would be.
            with persistence.changing():
                for (region, group, stream), events in batches.items():
                    try:
                        self._ship(region, group, stream, events)
                    except Exception as exc:  # logs must never take the agent down; say why they are missing
                        log.warning("could not write %d agent log lines to %s/%s: %s", len(events), group, stream,
                                    exc)

    def _ship(self, region: str, group: str, stream: str, events: list[dict]) -> None:
        from moto.logs.exceptions import ResourceAlreadyExistsException
        from moto.logs.models import logs_backends

        backend = logs_backends[self.settings.account_id][region]
        if (region, group, stream) not in self._known_streams or group not in backend.groups:
            if group not in backend.groups:
                try:
                    backend.create_log_group(group, tags={})
                except ResourceAlreadyExistsException:
                    pass  # made meanwhile by a client: exactly what we want
            if stream not in backend.groups[group].streams:
                backend.create_log_stream(group, stream)
            self._known_streams.add((region, group, stream))
        backend.put_log_events(group, stream, events)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()


# AgentCore deletes session storage that has not been used for 14 days (devguide: runtime-persistent-filesystems).
