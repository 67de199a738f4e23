"""The supervisor of runtime sessions: one agent process per session, as AgentCore runs one microVM per session.

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
storage gets a per-session directory that outlives its processes (storage.py), and
InvokeAgentRuntimeCommand runs commands beside a live agent, in its environment (commands.py).

Agents die with the emulator (PR_SET_PDEATHSIG, Linux), and each one's pid, port, start time and a digest of
its credentials token are written under the state dir while it runs, so that an emulator started after one
that was killed stops whatever that one left running (its agents' children included) before serving.

This module is the registry of live processes and its reaper; the processes themselves are in
processes.py, forwarding an invocation in proxy.py, and shipping their output in logs.py.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..core.settings import Settings
from .exceptions import RetryableConflictException, RuntimeClientError
from .logs import LogShipper, log_group_name
from .processes import (AgentProcess, AgentRecord, Launch, free_port, kill_orphans, orphan_pids, role_session_name,
                        session_dir_name, spawner, start_ticks, terminate_group, token_sha256)
from .storage import SessionStorage, mapped_environment

log = logging.getLogger("emulator.runtime")

# The only parts of the emulator's environment an agent inherits: what a process needs to start, find
# programs and trust the machine's CA bundle. Everything else (tokens, keys, the developer's settings and
# locale: LANG, LANGUAGE, LC_*, TZ) stays out: the agent runs Claude Code with Bash, and a microVM on AWS
# sees only its image's ENV and the runtime's environmentVariables. Those, and the local endpoint settings,
# are added on top.
_INHERITED_ENV = frozenset({"PATH", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                            "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"})
# What the image's base gives every process whatever the host's locale: container/Dockerfile's base,
# python:3.11-slim-bookworm, sets `ENV LANG C.UTF-8` and no LC_* or TZ, so UTC (docker-library/python,
# 3.11/slim-bookworm/Dockerfile).
_IMAGE_ENV = {"LANG": "C.UTF-8"}


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
        # One record per live agent, so that the next emulator on this state dir can stop the agents of one
        # that was killed (SIGKILL leaves them running; PR_SET_PDEATHSIG ends the agent but not its children).
        self.records = settings.state_dir / "runtime" / "agents"
        self.orphans_stopped = self._stop_orphans()
        self._reaper = threading.Thread(target=self._reap_loop, name="runtime-reaper", daemon=True)
        self._reaper.start()

    def _stop_orphans(self) -> list[int]:
        """Stop the agents an earlier emulator on this state dir left running, and remove their directories."""
        stopped: list[int] = []
        if not self.records.is_dir():
            return stopped
        for path in sorted(self.records.glob("*.json")):
            record = AgentRecord.read(path)
            if record is not None and record.emulator_alive():
                log.warning("agent pid %s of session %s belongs to emulator pid %s, which still runs on this state "
                            "dir: left alone (run one emulator per state dir)", record.pid, record.session_id,
                            record.emulator_pid)
                continue
            if record is not None:
                pids = orphan_pids(record)
                if pids:
                    log.warning("stopping agent pid %s (session %s of %s, port %s) and %d process(es) it started: "
                                "left running by an emulator that did not shut down", record.pid, record.session_id,
                                record.runtime_id, record.port, len(pids) - (record.pid in pids))
                    stopped += kill_orphans(pids)
                session_dir = Path(record.session_dir)
                log_file = session_dir / "agent.log"
                try:
                    if log_file.exists():
                        target = (self.logs / record.runtime_id /
                                  f"{session_dir_name(record.session_id)}-{session_dir.name}.log")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(log_file, target)
                except OSError as exc:  # the log is a courtesy; the emulator must still start
                    log.warning("could not keep the log of dead agent pid %s (%s): %s", record.pid, log_file, exc)
                if session_dir.is_relative_to(self.root):  # never remove a directory the record did not come from
                    self._remove_session_dir(session_dir)
            path.unlink(missing_ok=True)
        return stopped

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
        env = {k: v for k, v in os.environ.items() if k in _INHERITED_ENV}
        env.update(_IMAGE_ENV)
        env.update(launch.environment)
        endpoint = self.settings.endpoint
        from ..iam.models import backend_for
        from ..iam.responses import CREDENTIALS_PATH

        # AgentCore's microVM serves temporary credentials of the execution role from its metadata service
        # (MMDS, as EC2's IMDS does; devguide: security-credentials-management). Locally the agent's SDKs
        # (botocore, and the AWS SDK for JavaScript inside Claude Code, which now signs its Bedrock calls)
        # fetch them, and refresh them before expiry, from the emulator's container-credentials route.
        token = backend_for(self.settings).issuer.register(
            launch.role_arn, role_session_name(launch.session_id), launch.region, source_arn=launch.runtime_arn)
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
        session_dir = self.root / launch.runtime_id / session_dir_name(launch.session_id) / f"vm-{time.time_ns()}"
        app_dir = session_dir / "app"
        try:
            shutil.copytree(launch.context_dir, app_dir, symlinks=True)
        except BaseException:
            self._remove_session_dir(session_dir)
            raise
        for sub in ("home", "tmp"):
            (session_dir / sub).mkdir(parents=True, exist_ok=True)
        mounts = self.storage.mount(launch) if launch.session_storage else {}
        port = free_port()
        env = self._environment(launch, port, session_dir)
        env.update(mapped_environment(launch.environment, mounts))
        cmd = [sys.executable, "-m", "uvicorn", launch.app, "--host", "127.0.0.1", "--port", str(port)]
        popen = spawner.popen(cmd, cwd=app_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
        AgentRecord(pid=popen.pid, port=port, start_ticks=start_ticks(popen.pid),
                    token_sha256=token_sha256(env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]),
                    runtime_id=launch.runtime_id, session_id=launch.session_id,
                    session_dir=str(session_dir), emulator_pid=os.getpid(),
                    emulator_start_ticks=start_ticks(os.getpid())).write(self.records)
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
            terminate_group(proc.proc)
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
        (self.records / f"{proc.proc.pid}.json").unlink(missing_ok=True)
        log_file = proc.session_dir / "agent.log"
        if log_file.exists():
            target = self.logs / launch.runtime_id / f"{session_dir_name(launch.session_id)}-{proc.session_dir.name}.log"
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
