"""Agent processes for runtime sessions: one per session, as AgentCore runs one microVM per session.

The first invocation of a session copies the image's unpacked build context into a fresh session
directory (each microVM starts from a clean image filesystem), starts the agent there with
uvicorn, waits for `/ping`, and forwards `/invocations`. The process is reused while the session
lives and is stopped when it has been idle for the idle timeout (never while `/ping` answers
HealthyBusy), when its maximum lifetime is reached, when StopRuntimeSession asks, or when the
emulator shuts down. Its output is shipped to CloudWatch Logs as on AWS.

A session keeps the runtime version it started with until it ends, as on AWS: "each microVM session
is created with the code assets deployed at the time of session creation" (devguide,
runtime-troubleshooting, "My code changes aren't reflected in existing sessions"). A session stopped
by StopRuntimeSession is "terminating" for a short while, and calls to it then are refused with
RetryableConflictException, as AWS refuses calls that reach a session being torn down. A runtime with session
storage gets a per-session directory that outlives its processes (SessionStorage), and
InvokeAgentRuntimeCommand runs commands beside a live agent, in its environment (CommandStream).
"""
from __future__ import annotations

import collections
import hashlib
import http.client
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..core.settings import Settings
from .exceptions import RetryableConflictException, RuntimeClientError

log = logging.getLogger("emulator.runtime")

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
CUSTOM_HEADER_PREFIX = "x-amzn-bedrock-agentcore-runtime-custom-"
# AWS ends a synchronous invocation after 15 minutes.
INVOCATION_TIMEOUT = 15 * 60
# The only parts of the emulator's environment an agent inherits: what a process needs to start, find
# programs, speak the locale and trust the machine's CA bundle. Everything else (tokens, keys, the
# developer's settings) stays out: the agent runs Claude Code with Bash, and a microVM on AWS sees
# only the runtime's environmentVariables. Those, and the local endpoint settings, are added on top.
_INHERITED_ENV = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "LD_LIBRARY_PATH", "SSL_CERT_FILE",
                            "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"})
_INHERITED_PREFIXES = ("LC_",)


def log_group_name(runtime_id: str, endpoint: str = "DEFAULT") -> str:
    return f"/aws/bedrock-agentcore/runtimes/{runtime_id}-{endpoint}"


def _role_session_name(session_id: str) -> str:
    """An AssumeRole session name ([\\w+=,.@-], at most 64 characters) that names the runtime session."""
    return ("agentcore-" + re.sub(r"[^\w+=,.@-]", "-", session_id))[:64]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dir_name(session_id: str) -> str:
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
            for (region, group, stream), events in batches.items():
                try:
                    self._ship(region, group, stream, events)
                except Exception as exc:  # logs must never take the agent down; say why they are missing
                    log.warning("could not write %d agent log lines to %s/%s: %s", len(events), group, stream, exc)

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
STORAGE_IDLE_EXPIRY = 14 * 24 * 3600


class SessionStorage:
    """AgentCore Runtime's managed session storage (preview), as the devguide describes it.

    Rules (devguide: runtime-persistent-filesystems, runtime-filesystem-configurations): a session's
    storage is empty at its first call; it is kept across StopRuntimeSession and idle reclaiming (a new
    microVM of the session finds it as it was left); other sessions never see it; it is reset when the
    session next starts on another version of the runtime, and after 14 days unused.

    A process here cannot mount anything at /mnt, so each mount is a directory of its own,
    `<state>/runtime/session-storage/<runtime id>/<session>/<mount name>`, and the agent is told where:
    environment variables of the runtime whose value is the mount path (or under it) are pointed at
    that directory. The README's table of differences says so.
    """

    def __init__(self, root: Path):
        self.root = root

    def _dirs(self, launch: Launch) -> tuple[Path, Path]:
        base = self.root / launch.runtime_id / _dir_name(launch.session_id)
        return base, base.with_name(base.name + ".json")

    def mount(self, launch: Launch) -> dict[str, Path]:
        """{mount path: local directory} for a new microVM of this session, reset where the rules say."""
        base, marker = self._dirs(launch)
        try:
            state = json.loads(marker.read_text())
        except (FileNotFoundError, ValueError):
            state = None
        stale = state is None or state.get("version") != launch.version or \
            time.time() - float(state.get("last_used", 0)) > STORAGE_IDLE_EXPIRY
        if stale and base.exists():
            shutil.rmtree(base)
        mounts = {}
        for path in launch.session_storage:
            local = base / path.rstrip("/").rsplit("/", 1)[-1]
            local.mkdir(parents=True, exist_ok=True)
            mounts[path.rstrip("/")] = local
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"version": launch.version, "last_used": time.time(),
                                      "session_id": launch.session_id}))
        return mounts

    def forget_runtime(self, runtime_id: str) -> None:
        shutil.rmtree(self.root / runtime_id, ignore_errors=True)


def _mapped(environment: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
    """The runtime's variables that name a mount path (or a path under it), pointed at its local directory."""
    out = {}
    for name, value in environment.items():
        for mount, local in mounts.items():
            if value.rstrip("/") == mount or value.startswith(mount + "/"):
                out[name] = str(local) + value.rstrip("/")[len(mount):]
    return out


class Supervisor:
    """The live agent processes, by (runtime id, session id)."""

    def __init__(self, settings: Settings, shipper: LogShipper | None = None):
        self.settings = settings
        self.root = settings.state_dir / "runtime" / "sessions"
        # Each stopped session's agent.log is kept here once its directory is removed.
        self.logs = settings.state_dir / "runtime" / "logs"
        self.shipper = shipper
        self.storage = SessionStorage(settings.state_dir / "runtime" / "session-storage")
        # The registry: the process that serves a session's next call. Only changed under _lock, and a
        # process is handed out (in_flight += 1) only while it is registered, under the same lock.
        self._procs: dict[tuple[str, str], AgentProcess] = {}
        # Retired processes still finishing calls: stopped at release, or at shutdown.
        self._draining: set[AgentProcess] = set()
        self._lock = threading.Lock()
        # Per session: a lock serialising starts, and how many acquire() calls use it (pruned at 0).
        self._start_locks: dict[tuple[str, str], list] = {}
        # Sessions StopRuntimeSession is tearing down: until when (monotonic) calls to them are refused.
        self._terminating: dict[tuple[str, str], float] = {}
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="runtime-reaper", daemon=True)
        self._reaper.start()

    # -- sessions ----------------------------------------------------------------------------
    def check_not_terminating(self, runtime_id: str, session_id: str) -> None:
        """RetryableConflictException while StopRuntimeSession is still tearing this session down.

        AWS answers 409 RetryableConflictException to a call that reaches a session still being
        provisioned or torn down; the call never reached the agent, so the caller may retry it.
        """
        key = (runtime_id, session_id)
        with self._lock:
            until = self._terminating.get(key)
            if until is not None and time.monotonic() >= until:
                del self._terminating[key]
                until = None
        if until is not None:
            raise RetryableConflictException(
                f"Runtime session {session_id} of {runtime_id} is being terminated; retry in "
                f"{max(until - time.monotonic(), 0.1):.1f}s, when a call starts a new microVM for it.")

    def acquire(self, launch: Launch) -> AgentProcess:
        """The session's running agent (started now if need be), counted as busy until release().

        A registered process is handed out and counted busy in one step under the lock, and the reaper
        removes a process only under that lock when it is still idle, so a process given to a call is
        never reaped under it. A live session's process is reused whatever version `launch` names: a
        session keeps the code it started with, and a new version reaches new sessions only (AWS).
        """
        key = (launch.runtime_id, launch.session_id)
        self.check_not_terminating(*key)
        with self._lock:
            entry = self._start_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                to_stop: tuple[AgentProcess, str] | None = None
                with self._lock:
                    proc = self._procs.get(key)
                    if proc is not None and not proc.broken and proc.alive():
                        proc.in_flight += 1
                        proc.last_activity = time.monotonic()
                        if proc.launch.version != launch.version:
                            log.info("session %s keeps version %s of %s; version %s serves new sessions",
                                     launch.session_id, proc.launch.version, launch.runtime_id, launch.version)
                        return proc
                    if proc is not None:
                        del self._procs[key]
                        if proc.in_flight == 0:
                            to_stop = (proc, "replaced because it is no longer healthy")
                        else:
                            proc.retired = True  # its own calls are failing; the last release stops it
                            self._draining.add(proc)
                if to_stop is not None:
                    self._stop_in_background(*to_stop)
                proc = self._start(launch)
                with self._lock:
                    proc.in_flight += 1
                    proc.last_activity = time.monotonic()
                    self._procs[key] = proc
                return proc
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0 and self._start_locks.get(key) is entry:
                    del self._start_locks[key]

    def attach(self, runtime_id: str, session_id: str) -> AgentProcess | None:
        """The session's running agent, counted busy until release(); None when the session has none.

        Unlike acquire() it never starts one: a command runs in an existing microVM only. A session being
        torn down answers RetryableConflictException, as acquire() does.
        """
        self.check_not_terminating(runtime_id, session_id)
        with self._lock:
            proc = self._procs.get((runtime_id, session_id))
            if proc is None or proc.broken or not proc.alive():
                return None
            proc.in_flight += 1
            proc.last_activity = time.monotonic()
            return proc

    def release(self, proc: AgentProcess, broken: bool = False) -> None:
        with self._lock:
            proc.in_flight -= 1
            proc.last_activity = time.monotonic()
            if broken:
                proc.broken = True
            drained = proc.retired and proc.in_flight == 0
            if drained:
                self._draining.discard(proc)
        if drained:
            self._stop_in_background(proc, "it finished its calls after being replaced")
        elif broken:
            # In the background: the caller is still being told what happened.
            self._stop_all([proc], "it failed during an invocation", wait=False)

    def stop_session(self, runtime_id: str, session_id: str) -> bool:
        """Stop the session's agent; False when none runs. RetryableConflictException while it terminates."""
        self.check_not_terminating(runtime_id, session_id)
        with self._lock:
            proc = self._procs.get((runtime_id, session_id))
            if proc is not None and self.settings.session_termination > 0:
                self._terminating[(runtime_id, session_id)] = time.monotonic() + self.settings.session_termination
        if proc is None:
            return False
        self._stop_all([proc], "StopRuntimeSession was called", wait=False)
        return True

    def stop_runtime(self, runtime_id: str) -> None:
        with self._lock:
            procs = [p for key, p in self._procs.items() if key[0] == runtime_id]
            procs += [p for p in self._draining if p.launch.runtime_id == runtime_id]
        self._stop_all(procs, "its runtime was deleted", wait=False)
        self.storage.forget_runtime(runtime_id)

    def _stop_in_background(self, proc: AgentProcess, reason: str) -> None:
        threading.Thread(target=self._stop, args=(proc, reason), daemon=True).start()

    def _stop_all(self, procs: list[AgentProcess], reason: str, wait: bool) -> None:
        """Stop these agents side by side (each may take seconds to exit); gone for callers at once."""
        with self._lock:
            for proc in procs:
                if self._procs.get(proc.key) is proc:
                    del self._procs[proc.key]
                self._draining.discard(proc)
        threads = [threading.Thread(target=self._stop, args=(proc, reason), daemon=True) for proc in procs]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()

    def sessions(self) -> list[AgentProcess]:
        with self._lock:
            return list(self._procs.values())

    def close(self) -> None:
        self._closed.set()
        self._reaper.join(timeout=5)
        with self._lock:
            draining = list(self._draining)
        self._stop_all(self.sessions() + draining, "the emulator is shutting down", wait=True)

    # -- starting and stopping ---------------------------------------------------------------
    def _environment(self, launch: Launch, port: int, session_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _INHERITED_ENV or k.startswith(_INHERITED_PREFIXES)}
        env.update(launch.environment)
        endpoint = self.settings.endpoint
        from ..iam.models import backend_for
        from ..iam.responses import CREDENTIALS_PATH

        # AgentCore's microVM serves temporary credentials of the execution role from its metadata service
        # (MMDS, as EC2's IMDS does; devguide: security-credentials-management). Locally the agent's SDKs
        # (botocore, and the AWS SDK for JavaScript inside Claude Code, which now signs its Bedrock calls)
        # fetch them, and refresh them before expiry, from the emulator's container-credentials route.
        token = backend_for(self.settings).issuer.register(
            launch.role_arn, _role_session_name(launch.session_id), launch.region, source_arn=launch.runtime_arn)
        env.update({
            # The agent reaches "AWS" (Memory, S3, SSM, Bedrock) through the emulator, as its role.
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint + CREDENTIALS_PATH,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
            "AWS_REGION": launch.region,
            "AWS_DEFAULT_REGION": launch.region,
            "ANTHROPIC_BEDROCK_BASE_URL": endpoint,
            "CLAUDE_CODE_USE_BEDROCK": "1",
            "PORT": str(port),
            "HOME": str(session_dir / "home"),
            "TMPDIR": str(session_dir / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "AGENTCORE_RUNTIME_ARN": launch.runtime_arn,
            "AGENTCORE_RUNTIME_SESSION_ID": launch.session_id,
        })
        # A microVM's /tmp is its own; here /tmp is shared, so the agent's workspaces go in the session dir.
        if "WORKSPACE_ROOT" not in launch.environment:
            env["WORKSPACE_ROOT"] = str(session_dir / "tmp" / "agent-workspaces")
        return env

    def _start(self, launch: Launch) -> AgentProcess:
        # A new microVM: a directory of its own, nothing kept from the session's earlier ones (each is
        # removed when its process has exited; an older one may still be finishing calls beside it).
        session_dir = self.root / launch.runtime_id / _dir_name(launch.session_id) / f"vm-{time.time_ns()}"
        app_dir = session_dir / "app"
        try:
            shutil.copytree(launch.context_dir, app_dir, symlinks=True)
        except BaseException:
            self._remove_session_dir(session_dir)
            raise
        for sub in ("home", "tmp"):
            (session_dir / sub).mkdir(parents=True, exist_ok=True)
        mounts = self.storage.mount(launch) if launch.session_storage else {}
        port = _free_port()
        env = self._environment(launch, port, session_dir)
        env.update(_mapped(launch.environment, mounts))
        cmd = [sys.executable, "-m", "uvicorn", launch.app, "--host", "127.0.0.1", "--port", str(port)]
        popen = subprocess.Popen(cmd, cwd=app_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        proc = AgentProcess(launch, port, popen, session_dir, env=env, cwd=app_dir,
                            credentials_token=env["AWS_CONTAINER_AUTHORIZATION_TOKEN"])
        proc.pump = threading.Thread(target=self._pump, args=(proc,), name=f"agent-log-{popen.pid}", daemon=True)
        proc.pump.start()
        log.info("started agent pid %s for session %s of %s on port %s", popen.pid, launch.session_id,
                 launch.runtime_id, port)
        self._wait_healthy(proc)
        return proc

    def _wait_healthy(self, proc: AgentProcess) -> None:
        deadline = time.monotonic() + self.settings.agent_start_timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                code = proc.proc.wait()
                time.sleep(0.1)  # let the pump read the last lines
                self._stop(proc, f"it exited with code {code} while starting")
                raise RuntimeClientError(
                    f"The agent for runtime session {proc.launch.session_id} exited with code {code} before "
                    f"answering /ping. Check the runtime's CloudWatch logs "
                    f"({log_group_name(proc.launch.runtime_id, proc.launch.endpoint_name)}). "
                    f"Last output: {proc.log_tail()}")
            if proc.ping(timeout=1.0) is not None:
                return
            time.sleep(0.1)
        self._stop(proc, "it did not answer /ping in time")
        raise RuntimeClientError(
            f"The agent for runtime session {proc.launch.session_id} did not answer /ping within "
            f"{self.settings.agent_start_timeout:.0f}s. Last output: {proc.log_tail()}")

    def _pump(self, proc: AgentProcess) -> None:
        launch = proc.launch
        group = log_group_name(launch.runtime_id, launch.endpoint_name)
        stream = time.strftime("%Y/%m/%d", time.gmtime()) + f"/[runtime-logs]{launch.session_id}"
        with open(proc.session_dir / "agent.log", "ab") as local:
            for raw in iter(proc.proc.stdout.readline, b""):
                local.write(raw)
                local.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                proc.tail.append(line)
                if self.shipper is not None and line:
                    self.shipper.put(launch.region, group, stream, line)
        proc.proc.stdout.close()

    def _stop(self, proc: AgentProcess, reason: str) -> None:
        with self._lock:
            if self._procs.get(proc.key) is proc:
                del self._procs[proc.key]
            self._draining.discard(proc)
        if proc.alive():
            log.info("stopping agent pid %s of session %s: %s", proc.proc.pid, proc.launch.session_id, reason)
            _terminate_group(proc.proc)
        else:
            proc.proc.wait()
        self._clean_up(proc)

    def _retire_if_idle(self, proc: AgentProcess, seen_activity: float | None) -> bool:
        """Take `proc` out of the registry if it is still there, idle, and untouched since the check began.

        Done under the lock acquire() hands processes out under, so a process given to a new call in the
        meantime is kept. True when the caller may now stop it.
        """
        with self._lock:
            if self._procs.get(proc.key) is not proc or proc.in_flight:
                return False
            if seen_activity is not None and proc.last_activity != seen_activity:
                return False
            del self._procs[proc.key]
            return True

    # -- session directories -----------------------------------------------------------------
    def _clean_up(self, proc: AgentProcess) -> None:
        """Keep the exited agent's log under logs/ and remove its session directory (copied app, home, tmp)."""
        if proc.pump is not None:
            # The pump ends when the agent's output closes; a stray child holding it open must not block us
            # (the log file is moved while open: the pump goes on writing to it at its new place).
            proc.pump.join(timeout=5)
        launch = proc.launch
        if proc.credentials_token:
            from ..iam.models import backend_for

            backend_for(self.settings).issuer.forget(proc.credentials_token)
        log_file = proc.session_dir / "agent.log"
        if log_file.exists():
            target = self.logs / launch.runtime_id / f"{_dir_name(launch.session_id)}-{proc.session_dir.name}.log"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                log_file.rename(target)
            except OSError as exc:
                log.warning("could not keep the log of agent pid %s (%s): %s", proc.proc.pid, log_file, exc)
        self._remove_session_dir(proc.session_dir)

    def _remove_session_dir(self, session_dir: Path) -> None:
        shutil.rmtree(session_dir, ignore_errors=True)
        # The session's and runtime's folders go too once nothing is left in them (another VM of the
        # session may be starting: rmdir refuses a non-empty folder, which is what we want).
        for parent in (session_dir.parent, session_dir.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    # -- idle sessions -----------------------------------------------------------------------
    def _reap_loop(self) -> None:
        while not self._closed.wait(0.25):
            for proc in self.sessions():
                try:
                    self._check(proc)
                except Exception:  # one odd process must not stop the reaping of the others
                    log.exception("error while checking agent pid %s", proc.proc.pid)

    def _check(self, proc: AgentProcess) -> None:
        # The reads below are a first look without the lock; every stop goes through _retire_if_idle,
        # which decides again under the lock.
        now = time.monotonic()
        if not proc.alive():
            if self._retire_if_idle(proc, None):
                self._stop(proc, f"it exited with code {proc.proc.returncode}")
            return
        if now - proc.started_at >= proc.launch.max_lifetime:
            # AWS ends a session at its maximum lifetime, busy or not.
            with self._lock:
                registered = self._procs.get(proc.key) is proc
                if registered:
                    del self._procs[proc.key]
            if registered:
                self._stop(proc, "it reached the runtime's maximum lifetime")
            return
        idle = proc.launch.idle_timeout
        with self._lock:
            seen = proc.last_activity
            busy = proc.in_flight
        if busy or now - seen < idle or now - proc.last_ping < 1.0:
            return
        proc.last_ping = now
        doc = proc.ping()  # up to 2 s, without the lock: a new call may take the process meanwhile
        if doc is None:
            if self._retire_if_idle(proc, seen):
                self._stop(proc, "it stopped answering /ping")
        elif doc["status"] == "HealthyBusy":
            return  # working in the background: never reclaimed while it says so
        else:
            # time_of_last_update is when the agent last changed status: busy work ending counts as activity.
            try:
                changed = float(doc.get("time_of_last_update") or 0)
            except (TypeError, ValueError):
                changed = 0.0
            idle_for = min(now - seen, time.time() - changed) if changed else now - seen
            if idle_for >= idle and self._retire_if_idle(proc, seen):
                self._stop(proc, f"it was idle for {idle:.0f}s")


def _terminate_group(popen: subprocess.Popen, grace: float = 5.0) -> None:
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
        import codecs

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
            _terminate_group(self.popen, grace=2.0)

    def __iter__(self) -> "CommandStream":
        return self

    def __next__(self) -> bytes:
        from ..bedrock.eventstream import frame

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
                _terminate_group(self.popen, grace=2.0)
            self._finish()

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.on_done()


def _sse_error(message: str) -> bytes:
    doc = {"error": "RuntimeClientError", "message": message}
    return b"\n\nevent: error\ndata: " + json.dumps(doc).encode() + b"\n\n"
