"""InvokeAgentRuntime in the emulator: one agent process per session, streamed answers, AWS-shaped failures."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.emulator import EmulatorProcess
from tests.emulator.fixtures.runtime import (after_termination as _after_termination, alive as _alive, create_runtime,
                                            push_fake_image, require_mmdsv2, wait_dead as _wait_dead, wait_ready)
from tests.support.polling import wait_until
from tests.support.shapes import output_problems


def _sid() -> str:
    return f"test-session-{uuid.uuid4().hex}"  # 45 characters: AWS wants at least 33


def make_runtime(emu, env: dict | None = None) -> dict:
    control = emu.client("bedrock-agentcore-control")
    created = create_runtime(control, f"inv_{uuid.uuid4().hex[:8]}", push_fake_image(emu), env=env)
    ready = require_mmdsv2(control, created["agentRuntimeId"])
    return {**created, "agentRuntimeVersion": ready["agentRuntimeVersion"]}


class Caller:
    def __init__(self, emu, runtime: dict):
        self.client = emu.client("bedrock-agentcore")
        self.arn = runtime["agentRuntimeArn"]

    def raw(self, prompt: str, session: str, **kwargs) -> dict:
        return self.client.invoke_agent_runtime(agentRuntimeArn=self.arn, runtimeSessionId=session,
                                                payload=json.dumps({"input": {"prompt": prompt}}), **kwargs)

    def __call__(self, prompt: str, session: str) -> dict:
        return json.loads(self.raw(prompt, session)["response"].read())["output"]


@pytest.fixture(scope="module")
def runtime(emulator):
    made = make_runtime(emulator, env={"HELLO": "from-the-runtime"})
    yield made
    # Deleting the runtime stops its sessions' agents: the shared emulator is not left running them.
    emulator.client("bedrock-agentcore-control").delete_agent_runtime(agentRuntimeId=made["agentRuntimeId"])


@pytest.fixture
def call(emulator, runtime):
    return Caller(emulator, runtime)


def test_invocation_answer_matches_botocore_output_model(call):
    sid = _sid()
    answer = call.raw("hello", sid)
    body = answer.pop("response").read()
    assert output_problems(call.client, "InvokeAgentRuntime", answer) == []
    assert (answer["statusCode"], answer["contentType"], answer["runtimeSessionId"]) == (200, "application/json", sid)
    assert json.loads(body)["output"]["metadata"]["runtime_session_header"] == sid


def test_a_session_reuses_its_agent_process(call):
    sid = _sid()
    first, second = call("one", sid), call("two", sid)
    assert first["metadata"]["pid"] == second["metadata"]["pid"]
    assert (first["metadata"]["num_turns"], second["metadata"]["num_turns"]) == (1, 2)


def test_two_sessions_run_in_separate_processes_at_once(call):
    results = {}

    def run(sid):
        results[sid] = call("sleep 2", sid)

    threads = [threading.Thread(target=run, args=(_sid(),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pids = {r["metadata"]["pid"] for r in results.values()}
    assert len(pids) == 2
    cwds = {r["metadata"]["cwd"] for r in results.values()}
    assert len(cwds) == 2  # each session has its own copy of the image, as each microVM does
    (a_from, a_to), (b_from, b_to) = (r["metadata"]["slept"] for r in results.values())
    assert a_from < b_to and b_from < a_to, "the two sessions' work did not overlap"


def test_a_streamed_answer_arrives_as_it_is_produced(call):
    sid = _sid()
    call("warm up", sid)
    started = time.monotonic()
    answer = call.raw("stream please", sid, accept="text/event-stream")
    assert answer["contentType"].startswith("text/event-stream")
    raw, arrivals, data = answer["response"]._raw_stream, [], b""
    while chunk := raw.read1(65536):
        arrivals.append(time.monotonic() - started)
        data += chunk
    assert data.count(b"event: progress") == 3 and b"event: output" in data
    # The fake agent spaces its four events 0.2 s apart: the first must not wait for the last.
    assert arrivals[-1] - arrivals[0] > 0.4, arrivals


def test_a_session_id_shorter_than_33_characters_is_rejected(emulator, call):
    from botocore.config import Config

    # boto3 checks the length itself; the service must too, for callers that do not.
    unchecked = emulator.client("bedrock-agentcore", config=Config(parameter_validation=False,
                                                                   retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as err:
        unchecked.invoke_agent_runtime(agentRuntimeArn=call.arn, runtimeSessionId="x" * 32, payload=b"{}")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "runtimeSessionId" in err.value.response["Error"]["Message"]


def test_the_agent_gets_runtime_variables_and_local_endpoint_settings(call, emulator):
    sid = _sid()
    assert call("env HELLO", sid)["result"] == "from-the-runtime"
    assert call("env AWS_ENDPOINT_URL", sid)["result"] == emulator.endpoint
    assert call("env ANTHROPIC_BEDROCK_BASE_URL", sid)["result"] == emulator.endpoint
    assert call("env CLAUDE_CODE_USE_BEDROCK", sid)["result"] == "1"
    # Claude Code signs its Bedrock calls with the role's credentials, so the role's policy judges them.
    assert call("env CLAUDE_CODE_SKIP_BEDROCK_AUTH", sid)["result"] != "1"
    assert call("env AWS_CONTAINER_CREDENTIALS_FULL_URI", sid)["result"].startswith(emulator.endpoint)
    assert call("env AWS_REGION", sid)["result"] == "us-east-1"
    assert call("env PORT", sid)["result"].isdigit()


def test_an_agent_that_will_not_start_is_a_424_not_a_retry(emulator):
    broken = Caller(emulator, make_runtime(emulator, env={"FAKE_AGENT_FAIL_AT_START": "1"}))
    with pytest.raises(ClientError) as err:
        broken("hi", _sid())
    assert err.value.response["Error"]["Code"] == "RuntimeClientError"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "refusing to start" in err.value.response["Error"]["Message"]


def test_an_agent_that_dies_gives_424_and_the_next_call_starts_afresh(call):
    sid = _sid()
    before = call("hello", sid)["metadata"]["pid"]
    with pytest.raises(ClientError) as err:
        call("crash", sid)
    assert err.value.response["Error"]["Code"] == "RuntimeClientError"
    after = call("hello again", sid)
    assert after["metadata"]["pid"] != before and after["metadata"]["num_turns"] == 1


def test_an_agent_dying_mid_stream_ends_the_stream_with_an_error_event(call):
    sid = _sid()
    answer = call.raw("die mid-stream", sid, accept="text/event-stream")
    data = answer["response"].read()
    assert b"event: progress" in data
    assert b"event: error" in data and b"RuntimeClientError" in data
    assert call("fresh", sid)["metadata"]["num_turns"] == 1


def test_an_agent_error_answer_is_a_runtime_client_error_with_its_words(call):
    with pytest.raises(ClientError) as err:
        call("fail", _sid())
    assert err.value.response["Error"]["Code"] == "RuntimeClientError"
    assert "Received error (500) from runtime" in err.value.response["Error"]["Message"]
    assert "failing as asked" in err.value.response["Error"]["Message"]


def test_stop_runtime_session_stops_its_process(call):
    sid = _sid()
    pid = call("hello", sid)["metadata"]["pid"]
    answer = call.client.stop_runtime_session(agentRuntimeArn=call.arn, runtimeSessionId=sid)
    assert answer["runtimeSessionId"] == sid
    assert _wait_dead(pid, 10)
    assert _after_termination(lambda: call("again", sid))["metadata"]["num_turns"] == 1
    with pytest.raises(ClientError) as err:
        call.client.stop_runtime_session(agentRuntimeArn=call.arn, runtimeSessionId=_sid())
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_agent_output_goes_to_the_runtime_log_group(call, emulator, runtime):
    sid = _sid()
    call("log me", sid)
    logs = emulator.client("logs")
    group = f"/aws/bedrock-agentcore/runtimes/{runtime['agentRuntimeId']}-DEFAULT"

    def messages() -> list[str]:
        try:
            return [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
        except logs.exceptions.ResourceNotFoundException:
            return []

    wait_until(messages, lambda m: any("prompt='log me'" in line for line in m), timeout=10, interval=0.3,
               what=f"the agent's log line in {group}")
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert any(s.endswith(f"[runtime-logs]{sid}") for s in streams)


def test_unknown_runtime_arn_or_qualifier_is_not_found(call, runtime):
    missing = runtime["agentRuntimeArn"].rsplit("-", 1)[0] + "-zzzzzzzzzz"
    with pytest.raises(ClientError) as err:
        call.client.invoke_agent_runtime(agentRuntimeArn=missing, runtimeSessionId=_sid(), payload=b"{}")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        call.raw("hi", _sid(), qualifier="nosuchendpoint")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.slow
def test_idle_sessions_are_stopped_but_never_while_busy_and_shutdown_stops_all(tmp_path):
    emu = EmulatorProcess(tmp_path, env={"EMULATOR_IDLE_TIMEOUT": "1.5"}).start()
    try:
        call = Caller(emu, make_runtime(emu))
        idle_pid = call("hello", _sid())["metadata"]["pid"]
        busy_pid = call("background 6", _sid())["metadata"]["pid"]
        # A caller that leaves mid-stream must not leave its session counted as busy forever.
        abandoned = _sid()
        abandoned_pid = call("hello", abandoned)["metadata"]["pid"]
        stream = call.raw("stream", abandoned, accept="text/event-stream")["response"]
        stream._raw_stream.read1(10)
        stream.close()
        assert _wait_dead(idle_pid, 6), "an idle session outlived the idle timeout"
        assert _alive(busy_pid), "a HealthyBusy session was stopped"
        assert _wait_dead(abandoned_pid, 6), "a session whose caller left mid-stream was never reaped"
        assert _wait_dead(busy_pid, 12), "the session was not stopped once it went idle"
        last_pid = call("hello", _sid())["metadata"]["pid"]
    finally:
        emu.stop()
    assert _wait_dead(last_pid, 5), "emulator shutdown left an agent running"


def test_a_call_without_a_session_id_gets_a_new_session_as_on_aws(call):
    answers = [call.client.invoke_agent_runtime(agentRuntimeArn=call.arn, payload=b'{"input": {"prompt": "hi"}}')
               for _ in range(2)]
    ids = [a["runtimeSessionId"] for a in answers]
    pids = [json.loads(a["response"].read())["output"]["metadata"]["pid"] for a in answers]
    assert ids[0] != ids[1] and all(len(i) >= 33 for i in ids)
    assert pids[0] != pids[1]  # each call a fresh microVM: why the helpers always name the session


def test_a_session_being_terminated_answers_retryable_conflict_then_starts_afresh(tmp_path):
    emu = EmulatorProcess(tmp_path, env={"EMULATOR_SESSION_TERMINATION": "3"}).start()
    try:
        call = Caller(emu, make_runtime(emu))
        sid = _sid()
        pid = call("hello", sid)["metadata"]["pid"]
        call.client.stop_runtime_session(agentRuntimeArn=call.arn, runtimeSessionId=sid)
        stopped_at = time.monotonic()
        for attempt in (lambda: call("at once", sid),
                        lambda: call.client.stop_runtime_session(agentRuntimeArn=call.arn, runtimeSessionId=sid)):
            with pytest.raises(ClientError) as err:
                attempt()
            assert err.value.response["Error"]["Code"] == "RetryableConflictException"
            assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
            assert "being terminated" in err.value.response["Error"]["Message"]
        assert call("other session", _sid())["result"], "only the stopped session is terminating"
        fresh = _after_termination(lambda: call("again", sid))
        assert time.monotonic() - stopped_at >= 2.5
        assert fresh["metadata"]["pid"] != pid and fresh["metadata"]["num_turns"] == 1
    finally:
        emu.stop()


def test_a_runtime_without_mmdsv2_is_refused_with_aws_words_and_served_once_it_requires_it(emulator):
    control, data = emulator.client("bedrock-agentcore-control"), emulator.client("bedrock-agentcore")
    created = create_runtime(control, f"mmds_{uuid.uuid4().hex[:8]}", push_fake_image(emulator))
    try:
        ready = wait_ready(control, created["agentRuntimeId"])
        assert (ready.get("metadataConfiguration") or {}).get("requireMMDSV2") is not True
        with pytest.raises(ClientError) as err:
            data.invoke_agent_runtime(agentRuntimeArn=created["agentRuntimeArn"], runtimeSessionId=_sid(),
                                      payload=b'{"input": {"prompt": "hi"}}')
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert err.value.response["Error"]["Message"].startswith("This runtime is not MMDSv2-enabled")
        require_mmdsv2(control, created["agentRuntimeId"])
        assert Caller(emulator, created)("hi", _sid())["result"]
    finally:
        control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])


def test_a_live_session_keeps_the_version_it_started_with_and_new_sessions_get_the_new_one(emulator):
    control = emulator.client("bedrock-agentcore-control")
    made = make_runtime(emulator, env={"HELLO": "version-one"})
    try:
        call = Caller(emulator, made)
        live = _sid()
        first = call("env HELLO", live)
        assert first["result"] == "version-one"
        current = control.get_agent_runtime(agentRuntimeId=made["agentRuntimeId"])
        control.update_agent_runtime(
            agentRuntimeId=made["agentRuntimeId"], agentRuntimeArtifact=current["agentRuntimeArtifact"],
            roleArn=current["roleArn"], networkConfiguration=current["networkConfiguration"],
            metadataConfiguration={"requireMMDSV2": True}, environmentVariables={"HELLO": "version-two"})
        wait_ready(control, made["agentRuntimeId"])
        kept = call("env HELLO", live)
        assert kept["result"] == "version-one", "a live session was switched to the new version"
        assert kept["metadata"]["pid"] == first["metadata"]["pid"]
        assert call("env HELLO", _sid())["result"] == "version-two"
    finally:
        control.delete_agent_runtime(agentRuntimeId=made["agentRuntimeId"])
