"""Agent processes of runtime sessions: what starts one (Launch), the live process (AgentProcess), stopping it."""
from __future__ import annotations

import collections
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def role_session_name(session_id: str) -> str:
    """An AssumeRole session name ([\\w+=,.@-], at most 64 characters) that names the runtime session."""
    return ("agentcore-" + re.sub(r"[^\w+=,.@-]", "-", session_id))[:64]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_dir_name(session_id: str) -> str:
    """A directory name for any session id (ids may hold characters a path may not)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", session_id)[:60]
    return f"{safe}-{hashlib.sha256(session_id.encode()).hexdigest()[:10]}"


@dataclass


class Launch:
    """Everything needed to start the agent for one session."""

    runtime_id: str
    runtime_arn: str
    version: str
    endpoint_name: str
    session_id: str
    context_dir: Path
    app: str
    environment: dict[str, str]
    region: str
    idle_timeout: float
    max_lifetime: float
    role_arn: str = ""  # the runtime's execution role, whose credentials the agent gets
    # The runtime's sessionStorage mount paths (filesystemConfigurations); see SessionStorage.
    session_storage: tuple[str, ...] = ()


@dataclass(eq=False)  # identity: one object per process, kept in sets


class AgentProcess:
    launch: Launch
    port: int
    proc: subprocess.Popen
    session_dir: Path
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    broken: bool = False
    # Out of the registry but still answering the calls it had (it was replaced as unhealthy): stopped
    # when the last of them is released.
    retired: bool = False
    pump: threading.Thread | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    last_ping: float = 0.0
    credentials_token: str | None = None  # the agent's key to its role credentials (forgotten when it stops)
    # The microVM's environment and working directory, where InvokeAgentRuntimeCommand runs its commands.
    env: dict = field(default_factory=dict)
    cwd: Path | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.launch.runtime_id, self.launch.session_id

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ping(self, timeout: float = 2.0) -> dict | None:
        """The agent's /ping document, or None when it does not answer properly."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/ping")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return None
            doc = json.loads(body)
            return doc if isinstance(doc, dict) and doc.get("status") in ("Healthy", "HealthyBusy") else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def log_tail(self, lines: int = 5) -> str:
        return " | ".join(list(self.tail)[-lines:]) or "(no output)"


def terminate_group(popen: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the agent's process group (it may have started Claude Code and its tools), then SIGKILL."""
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended between the timeout and the kill
        popen.wait()
