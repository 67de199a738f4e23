"""What survives the emulator: moto's state saved and loaded whole, agents of a dead emulator stopped, and no more.

The SIGKILL runs end to end (memory events, every service, an invocation) are proof/faults_emulator.py's, which
tests/proof/test_short_profile.py runs; these check the rules underneath, in-process where they can.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator import persistence
from emulator.core.settings import Settings
from emulator.runtime.processes import AgentRecord, start_ticks, token_sha256
from emulator.runtime.supervisor import Supervisor
from tests.support.polling import eventually

FAKE_AGENT = Path(__file__).parent / "fixtures" / "fake_agent"


def _environ(method: str, target: str | None = None, query: str = "") -> dict:
    environ = {"REQUEST_METHOD": method, "QUERY_STRING": query}
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    return environ


def test_only_operations_that_cannot_change_state_are_read_without_a_save():
    reads = [(_environ("GET"), "s3", b""), (_environ("HEAD"), "s3", b""),
             (_environ("POST", "AmazonSSM.GetParameter"), "ssm", b""),
             (_environ("POST", "AmazonEC2ContainerRegistry_V20150921.DescribeImages"), "ecr", b""),
             (_environ("POST", "Logs_20140328.FilterLogEvents"), "logs", b""),
             (_environ("POST"), "cloudformation", b"Action=DescribeStacks&Version=2010-05-15"),
             (_environ("POST"), "iam", b"Action=ListRoles&Version=2010-05-08")]
    writes = [(_environ("PUT"), "s3", b"body"), (_environ("DELETE"), "s3", b""), (_environ("POST"), "s3", b""),
              (_environ("POST", "AmazonSSM.PutParameter"), "ssm", b""),
              (_environ("POST", "AmazonEC2ContainerRegistry_V20150921.PutImage"), "ecr", b""),
              (_environ("POST", "Logs_20140328.PutLogEvents"), "logs", b""),
              (_environ("POST"), "cloudformation", b"Action=CreateStack&StackName=s"),
              (_environ("POST"), "sts", b"Action=AssumeRole&RoleArn=x"),
              (_environ("POST", query="Action=CreateRole"), "iam", b""),
              # Whatever cannot be read off the request is saved, to be safe.
              (_environ("POST"), "iam", b"not a form"), (_environ("POST"), None, b"")]
    assert [persistence.is_read(*case) for case in reads] == [True] * len(reads)
    assert [persistence.is_read(*case) for case in writes] == [False] * len(writes)


def test_every_services_state_comes_back_whole_from_one_snapshot(tmp_path):
    """In-process, without a server: what moto holds after the workshop's kinds of writes is saved and loaded
    back into fresh backends, one object per resource across services (a stack's bucket is S3's bucket)."""
    import boto3
    from moto import mock_aws
    from moto.backends import get_backend
    from moto.core.base_backend import BackendDict

    from emulator.cloudformation import install

    install()
    body = b"x" * 300_000
    template = (Path(__file__).resolve().parents[2] / "cloudformation" / "workshop.yaml").read_text()
    with mock_aws():
        kw = dict(region_name="us-east-1")
        cfn = boto3.client("cloudformation", **kw)
        cfn.create_stack(StackName="st", TemplateBody=template, Capabilities=["CAPABILITY_NAMED_IAM"])
        outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="st")["Stacks"][0]["Outputs"]}
        s3 = boto3.client("s3", **kw)
        bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"])
        s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
        s3.put_object(Bucket=bucket, Key="gone.txt", Body=b"soon deleted")
        s3.delete_object(Bucket=bucket, Key="gone.txt")
        boto3.client("ssm", **kw).put_parameter(Name="/p", Value="v", Type="String", Tags=[{"Key": "k", "Value": "t"}])
        logs = boto3.client("logs", **kw)
        logs.create_log_group(logGroupName="/g")
        logs.create_log_stream(logGroupName="/g", logStreamName="s")
        logs.put_log_events(logGroupName="/g", logStreamName="s", logEvents=[{"timestamp": int(time.time() * 1000), "message": "m"}])
        state = persistence.MotoState(tmp_path)
        state.save()
        assert state.remove_unreferenced_blobs() == 0
        # A body is saved once, as a blob, not inside the snapshot; the bucket is versioned, so the deleted
        # object's version keeps its body.
        assert state.path.stat().st_size < len(body)
        assert sorted(p.stat().st_size for p in state.blobs.root.iterdir()) == [12, len(body)]
        BackendDict.reset()
        assert not s3.list_buckets()["Buckets"]
        assert persistence.MotoState(tmp_path).load()["s3"] == 1
        assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == body
        assert {v["Key"] for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])} == {"big.bin", "gone.txt"}
        assert boto3.client("ssm", **kw).get_parameter(Name="/p")["Parameter"]["Value"] == "v"
        assert logs.get_log_events(logGroupName="/g", logStreamName="s")["events"][0]["message"] == "m"
        stack = cfn.describe_stacks(StackName="st")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]} == outputs
        resources = get_backend("cloudformation")["123456789012"]["us-east-1"].stacks[stack["StackId"]].resource_map
        the_bucket = next(r for r in resources.values() if type(r).__name__.endswith("Bucket"))
        assert the_bucket is get_backend("s3")["123456789012"]["aws"].buckets[bucket]
        cfn.delete_stack(StackName="st")  # deleting the reloaded stack removes the reloaded bucket
        BackendDict.reset()


def test_an_unreadable_snapshot_is_kept_aside_and_named(tmp_path):
    state = persistence.MotoState(tmp_path)
    state.root.mkdir(parents=True)
    state.path.write_bytes(b"not a pickle")
    with pytest.raises(persistence.PersistenceError, match="state.pickle") as err:
        state.load()
    assert "moved to" in str(err.value) and not state.path.exists()
    assert [p.read_bytes() for p in state.root.glob("state.unreadable-*")] == [b"not a pickle"]


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", port=4599)


def _launch(tmp_path: Path):
    from emulator.runtime.processes import Launch

    return Launch(runtime_id="rt-aaaaaaaaaa", runtime_arn="arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/"
                  "rt-aaaaaaaaaa", version="1", endpoint_name="DEFAULT", session_id="s" * 40, context_dir=FAKE_AGENT,
                  app="agent.app:app", environment={}, region="us-east-1", idle_timeout=900.0, max_lifetime=28800.0)


def test_the_next_emulator_stops_the_agents_a_dead_one_left_and_nothing_else(tmp_path):
    first = Supervisor(_settings(tmp_path))
    proc = first.acquire(_launch(tmp_path))
    first.release(proc)
    # A process the dead emulator started beside the agent (as InvokeAgentRuntimeCommand does): its own session.
    beside = subprocess.Popen(["sleep", "60"], env={**proc.env}, start_new_session=True)
    # A stranger on a recorded pid: a record naming a live process that is not an agent of ours.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    AgentRecord(pid=stranger.pid, port=1, start_ticks=start_ticks(stranger.pid), token_sha256=token_sha256("other"),
                runtime_id="rt", session_id="x" * 40, session_dir=str(tmp_path / "elsewhere")).write(first.records)
    (tmp_path / "elsewhere").mkdir()
    # The agent of another emulator that still runs on this state dir: not an orphan, even with the right token.
    other_token = "t" * 40
    other = subprocess.Popen(["sleep", "60"], env={"AWS_CONTAINER_AUTHORIZATION_TOKEN": other_token},
                             start_new_session=True)
    AgentRecord(pid=other.pid, port=2, start_ticks=start_ticks(other.pid), token_sha256=token_sha256(other_token),
                runtime_id="rt", session_id="y" * 40, session_dir=str(tmp_path / "other"), emulator_pid=os.getpid(),
                emulator_start_ticks=start_ticks(os.getpid())).write(first.records)
    # The first emulator "dies": its reaper stops, nothing is shut down, and its records name a process gone.
    first._closed.set()
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = first.records / f"{proc.proc.pid}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "emulator_pid": gone.pid}))
    try:
        second = Supervisor(_settings(tmp_path))
        try:
            assert proc.proc.wait(10) is not None and beside.wait(10) is not None
            assert sorted(second.orphans_stopped) == sorted([proc.proc.pid, beside.pid])
            assert stranger.poll() is None, "a process that is not our agent was killed"
            assert other.poll() is None, "an agent of an emulator that still runs was killed"
            assert (tmp_path / "elsewhere").is_dir(), "a directory outside the session root was removed"
            assert not proc.session_dir.exists()
            assert [p.name for p in second.records.iterdir()] == [f"{other.pid}.json"]
            assert list((second.logs / "rt-aaaaaaaaaa").glob("*.log")), "the dead agent's log was not kept"
        finally:
            second.close()
    finally:
        for p in (stranger, beside, other, proc.proc):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_an_agent_dies_with_the_emulator_even_when_a_request_thread_started_it(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = f"""
import threading, time
from emulator.runtime.processes import spawner
def start():  # as a request thread does, which then ends
    p = spawner.popen(["sleep", "60"], start_new_session=True)
    open({str(pid_file)!r}, "w").write(str(p.pid))
t = threading.Thread(target=start); t.start(); t.join()
time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    try:
        assert eventually(lambda: pid_file.exists() and pid_file.read_text(), 20)
        child = int(pid_file.read_text())
        time.sleep(0.3)
        assert _running(child), "the agent died with the thread that started it, not with the emulator"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert eventually(lambda: not _running(child), 5), "the agent outlived a SIGKILLed emulator"
    finally:
        if parent.poll() is None:
            parent.kill()


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_connection_the_emulator_breaks_reaches_the_notebook_as_an_invocation_error(monkeypatch, tmp_path):
    """botocore's ConnectionClosedError (an endpoint that dies mid-call) and EndpointConnectionError (none
    listening) become InvocationError naming the runtime, the session and the next step, with the cause kept."""
    import socket
    import threading

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    from helpers import config, invoke
    from helpers.errors import InvocationError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept_and_hang_up():  # reads the request, then closes without a word, as a SIGKILLed emulator does
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=accept_and_hang_up, daemon=True).start()
    closed_port = listener.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody_port = s.getsockname()[1]
    settings = config.load(target="local", state_dir=tmp_path)
    arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rt-aaaaaaaaaa"
    try:
        for port, cause in ((closed_port, ConnectionClosedError), (nobody_port, EndpointConnectionError)):
            client = boto3.client("bedrock-agentcore", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                                  aws_access_key_id="t", aws_secret_access_key="t",
                                  config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5))
            monkeypatch.setattr(invoke, "_data_client", lambda _settings, c=client: c)
            with pytest.raises(InvocationError) as err:
                invoke.invoke(settings, "hello", "alice", "s1", runtime_arn=arn, progress=False)
            message = str(err.value)
            assert isinstance(err.value.__cause__, cause), type(err.value.__cause__)
            assert arn in message and invoke.runtime_session_id("alice", "s1") in message
            assert "invoke again" in message and "not retried" in message
    finally:
        listener.close()


def test_a_write_that_cannot_be_saved_is_not_answered_as_done(tmp_path):
    import io

    calls = []

    def moto_app(environ, start_response):  # stands in for moto: answers 200 to whatever it gets
        calls.append(environ["wsgi.input"].read())
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    (tmp_path / "moto").write_text("a file where the state's folder should be")
    app = persistence.MotoState(tmp_path).wrap(moto_app, lambda environ: "ssm")
    answered = []
    environ = {"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSSM.PutParameter", "QUERY_STRING": "",
               "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")}
    body = b"".join(app(environ, lambda status, headers: answered.append(status)))
    assert calls == [b"{}"]
    assert answered[0].startswith("500") and b"could not save it" in body and b"repeat the call" in body
    # A read is answered without a save.
    read = {**environ, "HTTP_X_AMZ_TARGET": "AmazonSSM.GetParameter", "wsgi.input": io.BytesIO(b"{}")}
    answered.clear()
    assert b"".join(app(read, lambda status, headers: answered.append(status))) == b"{}" and answered == ["200 OK"]
