"""InvokeAgentRuntimeCommand: a shell command beside a session's live agent, streamed as AWS event-stream chunks."""
from __future__ import annotations

import codecs
import json
import os
import queue
import subprocess
import threading
from typing import Callable

from ..bedrock.eventstream import frame
from .processes import AgentProcess, terminate_group


class CommandStream:
    """One InvokeAgentRuntimeCommand: a shell command in the session's microVM, streamed as AWS event-stream chunks.

    The events are those of botocore's model (InvokeAgentRuntimeCommandStreamOutput): `contentStart`
    first, `contentDelta` with stdout or stderr as the output comes, `contentStop` with the exit code
    and COMPLETED or TIMED_OUT last. The command runs with the microVM's environment and in its
    working directory (devguide: runtime-execute-command). `on_done` is called exactly once, at the end
    or when the caller goes away (the command is then ended).
    """

    def __init__(self, proc: AgentProcess, command: str, timeout: float, on_done: Callable[[], None]):
        self.on_done = on_done
        self.finished = False
        self.timed_out = False
        self.started = False
        self.queue: queue.Queue = queue.Queue()
        try:
            self.popen = subprocess.Popen(["/bin/sh", "-c", command], cwd=proc.cwd, env=proc.env,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          start_new_session=True)
        except OSError:
            self._finish()
            raise
        self.open_streams = 2
        for name, pipe in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr)):
            threading.Thread(target=self._read, args=(name, pipe), daemon=True).start()
        self.timer = threading.Timer(timeout, self._time_out)
        self.timer.daemon = True
        self.timer.start()

    def _read(self, name: str, pipe) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = pipe.fileno()
        while True:
            data = os.read(fd, 65536)
            text = decoder.decode(data, final=not data)
            if text:
                self.queue.put((name, text))
            if not data:
                break
        pipe.close()
        self.queue.put((None, name))

    def _time_out(self) -> None:
        if self.popen.poll() is None:
            self.timed_out = True
            terminate_group(self.popen, grace=2.0)

    def __iter__(self) -> "CommandStream":
        return self

    def __next__(self) -> bytes:
        if self.finished:
            raise StopIteration
        headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
        if not self.started:
            self.started = True
            return frame(headers, b'{"contentStart": {}}')
        while self.open_streams:
            name, text = self.queue.get()
            if name is None:
                self.open_streams -= 1
                continue
            return frame(headers, json.dumps({"contentDelta": {name: text}}).encode())
        code = self.popen.wait()
        self.timer.cancel()
        self._finish()
        stop = {"exitCode": code if code >= 0 else 128 - code,
                "status": "TIMED_OUT" if self.timed_out else "COMPLETED"}
        return frame(headers, json.dumps({"contentStop": stop}).encode())

    def close(self) -> None:
        # The caller went away before the end: the command goes too (nothing would read its output).
        if not self.finished:
            self.timer.cancel()
            if self.popen.poll() is None:
                terminate_group(self.popen, grace=2.0)
            self._finish()

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.on_done()
