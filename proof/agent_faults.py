"""The agent under dependency faults: S3 or memory blackholed, Claude Code crashing or hanging, a client
that leaves mid-stream, a workspace out of space. Each case has its figure; nothing acknowledged is lost.

One emulator and one agent (`uvicorn agent.app:app`, as the image runs it) serve the cases. The agent reaches
S3 and AgentCore Memory through a switchable TCP relay: passing, or a blackhole that accepts connections
and never answers (the way a dead route or a stuck proxy behaves). The workspace disk is filled by lowering
the agent process's RLIMIT_FSIZE (a write past it fails with EFBIG, "File too large", which stands in for
ENOSPC: no tmpfs or loop mount can be made without root privileges a workshop laptop may lack), then raised
again with prlimit. Claude Code crashing or hanging is a `cli_path` to a script that exits 1 or sleeps.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from . import Profile, Report

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = ROOT / "container"
HELLO = "create hello.py that prints hello"


class Relay:
    """127.0.0.1:<port> relayed to `upstream`, or (blackholed) accepting connections and never answering."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.black = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.black:
                self.held.append(conn)  # read nothing, answer nothing, close nothing
            else:
                threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            conn.close()
            return
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, conn)
        try:
            while True:
                for key, _ in sel.select(timeout=60):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            conn.close()
            up.close()

    def release(self) -> None:
        """Pass again; connections held while blackholed are closed (the route came back)."""
        self.black = False
        for conn in self.held:
            conn.close()
        self.held.clear()

    def close(self) -> None:
        self._stop = True
        self.release()
        self.sock.close()


class Agent:
    """The agent as its image runs it, on a free port, with the environment a runtime gives it."""

    def __init__(self, env: dict, log_path: Path):
        from tests.support.emulator import free_port

        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "agent.app:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=CONTAINER, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigxfsz)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.ping()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the agent did not start; see {log_path}") from None
                time.sleep(0.2)

    def ping(self) -> str:
        with urllib.request.urlopen(self.url + "/ping", timeout=5) as resp:
            return json.loads(resp.read())["status"]

    def invoke(self, prompt: str, actor: str, session: str, timeout: float = 180) -> tuple[int, dict, float]:
        started = time.monotonic()
        req = urllib.request.Request(self.url + "/invocations", method="POST",
                                     data=json.dumps({"input": {"prompt": prompt, "actor_id": actor,
                                                                "session_id": session}}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        return status, json.loads(body), time.monotonic() - started

    def leave_mid_stream(self, prompt: str, actor: str, session: str) -> tuple[str, bool]:
        """Start a streamed invocation, read its first event, and hang up; that event's type, and whether
        the output had already come (then the client did not leave mid-stream)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        body = json.dumps({"input": {"prompt": prompt, "actor_id": actor, "session_id": session}}).encode()
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\n"
                     b"Accept: text/event-stream\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        seen = b""
        # Up to the end of the first event; keep-alive comments (": keep-alive") before it do not count.
        while not re.search(rb"(^|\n)event: [^\n]*\ndata: [^\n]*\n", seen.split(b"\r\n\r\n", 1)[-1]):
            chunk = sock.recv(4096)
            if not chunk:
                break
            seen += chunk
        sock.close()
        events = [line[7:] for line in seen.decode(errors="replace").splitlines() if line.startswith("event: ")]
        return events[0] if events else "", "output" in events

    def wait_idle(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping() == "Healthy":
                return True
            time.sleep(0.2)
        return False

    def file_limit(self, max_bytes: int | None) -> None:
        """The agent process's RLIMIT_FSIZE (its Claude Code children started later inherit it); None: no limit."""
        soft = resource.RLIM_INFINITY if max_bytes is None else max_bytes
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _ignore_sigxfsz() -> None:
    # A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process, as a full disk fails
    # a write (ENOSPC) rather than killing the writer.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _worst(report: Report, name: str, seconds: float) -> None:
    """A time figure: the longest over the profile's trials."""
    report.figures[name] = max(report.figures.get(name, 0.0), round(seconds, 1))


def _any(warnings: list[str], *words: str) -> bool:
    return any(all(w in x for w in words) for x in warnings)


def run(profile: Profile) -> Report:
    from tests.support.emulator import EmulatorProcess

    report = Report("agent_faults")
    # Short: timeouts that make the cases quick; long: the agent's defaults (AgentSettings), as deployed.
    timeouts = ({"AGENT_AWS_CONNECT_TIMEOUT": "1", "AGENT_AWS_READ_TIMEOUT": "1"} if profile.scale == 1 else {})
    with tempfile.TemporaryDirectory(prefix="proof-agent-faults-") as tmp:
        tmp = Path(tmp)
        (tmp / "home").mkdir()
        # Needs no AWS and mostly waits: it runs beside the other cases.
        cli_cases = threading.Thread(target=_claude_code_fails_timed, args=(report, tmp), name="cli-cases")
        cli_cases.start()
        emu = EmulatorProcess(tmp / "emulator", env={"EMULATOR_EXTRACTION_DELAY": "0.3"})
        relays: list[Relay] = []
        agent = None
        try:
            emu.start(timeout=120)  # a loaded machine (CI beside other jobs) can take a while
            resources = _resources(emu)
            s3_relay, memory_relay = Relay(emu.port), Relay(emu.port)
            relays += [s3_relay, memory_relay]
            env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANTHROPIC_"))},
                   "AWS_ENDPOINT_URL": emu.endpoint, "AWS_ENDPOINT_URL_S3": s3_relay.url,
                   "AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": memory_relay.url,
                   "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
                   "ANTHROPIC_BEDROCK_BASE_URL": emu.endpoint, "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
                   "ANTHROPIC_MODEL": "local-stand-in", "OUTPUT_BUCKET_NAME": resources["bucket"],
                   "MEMORY_ID_PARAMETER": resources["parameter"], "WORKSPACE_ROOT": str(tmp / "workspaces"),
                   "HOME": str(tmp / "home"), "SSE_KEEPALIVE_SECONDS": "1", **timeouts}
            agent = Agent(env, tmp / "agent.log")
            report.figures["setup_seconds"] = round(time.monotonic() - report.started, 1)
            for trial in range(max(1, profile.scale // 5)):
                for case in (_s3_blackholed, _memory_blackholed, _client_leaves_mid_stream, _workspace_full):
                    started = time.monotonic()
                    case(report, agent, emu, resources, trial, s3_relay=s3_relay, memory_relay=memory_relay)
                    _worst(report, f"{case.__name__[1:]}_case_seconds", time.monotonic() - started)
            if os.environ.get("PROOF_KEEP_LOGS"):
                print((tmp / "agent.log").read_text()[-20000:], file=sys.stderr)
        finally:
            cli_cases.join()
            if agent is not None:
                agent.stop()
            for relay in relays:
                relay.close()
            if emu.proc is not None:  # stopped even when it never became healthy
                emu.stop()
    return report


def _resources(emu) -> dict:
    tag = uuid.uuid4().hex[:8]
    bucket = f"proof-faults-{tag}"
    emu.client("s3").create_bucket(Bucket=bucket)
    control = emu.client("bedrock-agentcore-control")
    memory = control.create_memory(name=f"ProofFaults_{tag}", eventExpiryDuration=30)["memory"]
    deadline = time.monotonic() + 30
    while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError("the proof's memory never became ACTIVE")
        time.sleep(0.2)
    parameter = f"/proof-faults-{tag}/memory-id"
    emu.client("ssm").put_parameter(Name=parameter, Value=memory["id"], Type="String")
    return {"bucket": bucket, "memory_id": memory["id"], "parameter": parameter}


def _turns(emu, resources: dict, actor: str, session: str) -> list[str]:
    events = emu.client("bedrock-agentcore").list_events(memoryId=resources["memory_id"], actorId=actor,
                                                          sessionId=session, includePayloads=True)["events"]
    return [p["conversational"]["content"]["text"] for e in events for p in e["payload"]
            if p["conversational"]["role"] == "USER"]


def _has_object(emu, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        emu.client("s3").head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise


def _s3_blackholed(report: Report, agent: Agent, emu, resources: dict, trial: int, s3_relay: Relay, **_) -> None:
    relay = s3_relay
    actor, session = "faults-s3", f"s3-black-{trial}"
    relay.black = True
    try:
        status, doc, seconds = agent.invoke(HELLO, actor, session)
        waited = len(relay.held)
    finally:
        relay.release()
    # Each connection the blackhole held cost the agent a full timeout: one in all, then the service is skipped.
    report.expect_zero("s3_blackholed_timeouts_beyond_the_first", waited - 1,
                       f"{waited} connections waited on (agent/dependencies.py should stop after one)")
    out = doc.get("output", {})
    warnings = out.get("warnings", [])
    _worst(report, "s3_blackholed_seconds_to_answer", seconds)
    report.expect_equal("s3_blackholed_answered", (status, out.get("success")), (200, True), json.dumps(doc)[:300])
    report.expect_equal("s3_blackholed_warning_names_the_kept_file", _any(warnings, "hello.py", "kept"), True,
                        "; ".join(warnings)[:300])
    report.figures["s3_blackholed_warnings"] = [w[:160] for w in warnings]
    status, again, _ = agent.invoke("what files are in the workspace?", actor, session)
    uploaded = [f["file_name"] for f in again.get("output", {}).get("metadata", {}).get("uploaded_files", [])]
    report.expect_equal("s3_back_file_uploaded_next_call", "hello.py" in uploaded, True, str(uploaded))
    report.expect_zero("s3_blackholed_files_lost",
                       0 if _has_object(emu, resources["bucket"], f"sessions/{actor}/{session}/hello.py") else 1)


def _memory_blackholed(report: Report, agent: Agent, emu, resources: dict, trial: int, memory_relay: Relay,
                       **_) -> None:
    relay = memory_relay
    actor, session = "faults-memory", f"memory-black-{trial}"
    relay.black = True
    try:
        status, doc, seconds = agent.invoke("hello while memory is away", actor, session)
        waited = len(relay.held)
    finally:
        relay.release()
    # Each connection the blackhole held cost the agent a full timeout: one in all, then the service is skipped.
    report.expect_zero("memory_blackholed_timeouts_beyond_the_first", waited - 1,
                       f"{waited} connections waited on (agent/dependencies.py should stop after one)")
    out = doc.get("output", {})
    warnings = out.get("warnings", [])
    _worst(report, "memory_blackholed_seconds_to_answer", seconds)
    report.expect_equal("memory_blackholed_answered", (status, out.get("success")), (200, True), json.dumps(doc)[:300])
    report.expect_equal("memory_blackholed_warning_says_why",
                        _any(warnings, "could not read recent turns", "did not answer")
                        or _any(warnings, "could not read recent turns", "Timeout"), True, "; ".join(warnings)[:300])
    report.figures["memory_blackholed_warnings"] = [w[:160] for w in warnings]
    status_text = out.get("metadata", {}).get("memory_status", "")
    report.figures["memory_blackholed_memory_status"] = status_text[:200]
    report.expect_equal("memory_blackholed_status_says_why", "unreachable" in status_text, True, status_text)
    agent.invoke("hello again, memory is back", actor, session)
    turns = _turns(emu, resources, actor, session)
    report.expect_zero("memory_blackholed_turns_lost",
                       2 - sum(t in turns for t in ("hello while memory is away", "hello again, memory is back")),
                       str(turns))


def _client_leaves_mid_stream(report: Report, agent: Agent, emu, resources: dict, trial: int, **_) -> None:
    actor, session = "faults-stream", f"left-{trial}"
    first, saw_output = agent.leave_mid_stream(HELLO, actor, session)
    report.figures["client_left_after_event"] = first
    report.expect_equal("client_left_before_the_output", not saw_output and first != "", True)
    finished = agent.wait_idle()
    report.expect_equal("client_left_run_finished", finished, True)
    lost = (0 if _has_object(emu, resources["bucket"], f"sessions/{actor}/{session}/hello.py") else 1) + \
           (0 if HELLO in _turns(emu, resources, actor, session) else 1)
    report.expect_zero("client_left_lost", lost, "file upload or turn missing after the client left")


def _workspace_full(report: Report, agent: Agent, emu, resources: dict, trial: int, **_) -> None:
    actor, session = "faults-disk", f"full-{trial}"
    big = os.urandom(1024 * 1024)
    emu.client("s3").put_object(Bucket=resources["bucket"], Key=f"sessions/{actor}/{session}/data.bin", Body=big)
    agent.file_limit(256 * 1024)
    try:
        status, doc, seconds = agent.invoke("hello with a full disk", actor, session)
    finally:
        agent.file_limit(None)
    out = doc.get("output", doc)
    warnings = out.get("warnings", [])
    _worst(report, "disk_full_seconds_to_answer", seconds)
    report.figures["disk_full_status"] = status
    clear = _any(warnings, "data.bin", "File too large") or "File too large" in json.dumps(doc)
    report.expect_equal("disk_full_clear_error", clear, True, json.dumps(doc)[:400])
    report.figures["disk_full_warning"] = next((w for w in warnings if "data.bin" in w), "")[:200]
    report.figures["disk_full_result"] = str(out.get("result") or out.get("details"))[:200]
    status, again, _ = agent.invoke("what files are in the workspace?", actor, session)
    report.expect_equal("disk_full_session_usable_after", (status, again.get("output", {}).get("success")),
                        (200, True), json.dumps(again)[:300])
    restored = Path(agent.env["WORKSPACE_ROOT"]) / actor / session / "data.bin"
    report.expect_equal("disk_full_file_restored_after", restored.is_file() and restored.read_bytes() == big, True)


def _claude_code_fails_timed(report: Report, tmp: Path) -> None:
    started = time.monotonic()
    try:
        # The in-process agent logs its events to stdout, which is the proof's JSON document: keep them apart.
        with contextlib.redirect_stdout(sys.stderr):
            _claude_code_fails(report, tmp)
    except Exception as exc:  # noqa: BLE001 (a failure of the case is the report's problem, not a lost thread)
        report.problems.append(f"agent_faults: the Claude Code failure cases could not run: {exc!r}")
    report.figures["claude_code_fails_case_seconds"] = round(time.monotonic() - started, 1)


def _claude_code_fails(report: Report, tmp: Path) -> None:
    """Claude Code exiting 1, and hanging past the run timeout, in an agent in this process (no AWS needed)."""
    from fastapi.testclient import TestClient

    if str(CONTAINER) not in sys.path:
        sys.path.insert(0, str(CONTAINER))
    from agent.app import create_app
    from agent.settings import AgentSettings

    crash = tmp / "claude-crash"
    crash.write_text("#!/bin/sh\necho 'claude: simulated crash' >&2\nexit 1\n")
    pid_file = tmp / "claude-hang.pid"
    hang = tmp / "claude-hang"
    hang.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    for script in (crash, hang):
        script.chmod(0o755)
    for case, script, extra in (("crash", crash, {}), ("hang", hang, {"AGENT_RUN_TIMEOUT_SECONDS": "1"})):
        settings = AgentSettings.from_env({"WORKSPACE_ROOT": str(tmp / f"ws-{case}"), "HOME": str(tmp / "home"),
                                           "CLAUDE_CLI_PATH": str(script), **extra})
        with TestClient(create_app(settings, clients=(None, None, None))) as client:
            started = time.monotonic()
            resp = client.post("/invocations", json={"input": {"prompt": "hi", "actor_id": "faults-cli",
                                                               "session_id": case}})
            report.figures[f"cli_{case}_seconds_to_answer"] = round(time.monotonic() - started, 1)
            doc = resp.json()
            report.figures[f"cli_{case}_status"] = resp.status_code
            report.figures[f"cli_{case}_says"] = str(doc.get("details") or doc.get("output", {}).get("warnings"))[:200]
            if case == "crash":
                report.expect_equal("cli_crash_error_shape", (resp.status_code, sorted(doc)),
                                    (500, ["details", "error"]), json.dumps(doc)[:300])
            else:
                out = doc.get("output", {})
                report.expect_equal("cli_hang_timed_out", (resp.status_code, out.get("error"),
                                                           out.get("metadata", {}).get("timed_out")),
                                    (200, "timeout", True), json.dumps(doc)[:300])
                pid = int(pid_file.read_text()) if pid_file.exists() else None
                report.expect_zero("cli_hang_process_left_running", int(pid is not None and _alive(pid)))
            report.expect_equal(f"cli_{case}_ping_after", client.get("/ping").json()["status"], "Healthy")


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True
