"""Agent processes of runtime sessions: what starts one (Launch), the live process (AgentProcess), stopping it,
and the record that lets the next emulator stop the agents of one that died."""
from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import ctypes.util
import functools
import hashlib
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("emulator.runtime")


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


# -- dying with the emulator ------------------------------------------------------------------
# prctl(2): PR_SET_PDEATHSIG (1) asks the kernel to send a signal to this process when its parent dies.
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform.startswith("linux") else None


def _die_with(parent: int) -> None:
    """preexec_fn: SIGKILL this agent when the emulator (`parent`) dies, however it dies (Linux only).

    Only what is safe between fork and exec: one preloaded C call and getppid. If the emulator died before
    the call, the parent is already someone else, and the agent ends itself.
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


class _Spawner:
    """Starts agent processes from one thread that lives as long as the emulator.

    The kernel sends PR_SET_PDEATHSIG when the *thread* that forked the child ends, not the process (prctl(2):
    "the parent thread"); a request thread of the server ends after its call, which would kill the agent.
    """

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-spawner")

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        if sys.platform.startswith("linux"):
            kwargs["preexec_fn"] = functools.partial(_die_with, os.getpid())
        return self._pool.submit(subprocess.Popen, cmd, **kwargs).result()


spawner = _Spawner()


# -- agents of an emulator that died ----------------------------------------------------------
@dataclass
class AgentRecord:
    """What the emulator writes down for each agent it starts (state dir, runtime/agents/<pid>.json), so that
    the next emulator on the same state dir can find the agent after a SIGKILL and stop it, and be sure first
    that the process is really that agent: pids are reused."""

    pid: int
    port: int
    start_ticks: int | None  # /proc/<pid>/stat's starttime: with the pid, one process for the boot's life
    token_sha256: str  # of AWS_CONTAINER_AUTHORIZATION_TOKEN, which the agent and its children inherit
    runtime_id: str
    session_id: str
    session_dir: str
    # The emulator that started it: while that one still runs (two emulators on one state dir), its agents
    # are not orphans.
    emulator_pid: int = 0
    emulator_start_ticks: int | None = None

    def emulator_alive(self) -> bool:
        return bool(self.emulator_pid) and start_ticks(self.emulator_pid) == self.emulator_start_ticks

    def path(self, root: Path) -> Path:
        return root / f"{self.pid}.json"

    def write(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{self.pid}.json.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, self.path(root))

    @classmethod
    def read(cls, path: Path) -> "AgentRecord | None":
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring the unreadable agent record %s: %s", path, exc)
            return None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(process group, session, start time in clock ticks) of a live process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[2]), int(fields[3]), int(fields[19])


def start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[2] if stat else None


def _carries_token(pid: int, digest: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    for item in environ.split(b"\0"):
        if item.startswith(b"AWS_CONTAINER_AUTHORIZATION_TOKEN="):
            value = item.split(b"=", 1)[1].decode(errors="replace")
            return token_sha256(value) == digest
    return False


def orphan_pids(record: AgentRecord) -> list[int]:
    """The live processes of the agent `record` names: the agent, what it started (Claude Code and its tools) and
    the commands InvokeAgentRuntimeCommand ran beside it, wherever their process group. Each is known by the
    agent's credentials token in its environment, a secret no other process holds; the agent itself must also
    have the recorded start time. So a process on a reused pid is never in the list."""
    if not Path("/proc/self/environ").exists():
        return []  # no /proc (macOS): nothing can be verified, so nothing is killed
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == record.pid and record.start_ticks is not None and start_ticks(pid) != record.start_ticks:
            continue
        if _carries_token(pid, record.token_sha256):
            found.append(pid)
    return found


def kill_orphans(pids: list[int], grace: float = 2.0) -> list[int]:
    """SIGTERM these processes, SIGKILL those left after `grace`; the pids that were signalled."""
    signalled = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    left = list(signalled)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if _alive(pid)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return signalled


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        # A zombie (state Z) has exited; its parent (init, for orphans) reaps it.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
