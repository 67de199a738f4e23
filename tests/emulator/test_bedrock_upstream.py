"""The emulator's Bedrock with WORKSHOP_MODEL_UPSTREAM: forwarded to an Anthropic Messages API (a fake one here)."""
from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from botocore.exceptions import ClientError, EventStreamError

from emulator.core.settings import ModelUpstream
from tests.support.emulator import EmulatorProcess
from tests.emulator.fixtures.anthropic_upstream import MODEL, FakeAnthropic, Fault
from tests.emulator.test_bedrock import assembled, body
from tests.support.claude_cli import write_hello_py


@pytest.fixture(scope="module")
def fake():
    with FakeAnthropic() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def upstream_emulator(fake, tmp_path_factory):
    emu = EmulatorProcess(tmp_path_factory.mktemp("upstream-emulator"), env=fake.env()).start()
    yield emu
    emu.stop()


@pytest.fixture
def runtime_client(upstream_emulator, fake):
    from botocore.config import Config

    fake.faults.clear()
    # No retries: each queued fault must reach the test, not be retried away by boto3.
    return upstream_emulator.client("bedrock-runtime", config=Config(retries={"total_max_attempts": 1}))


def stream(client, content="hello there", model_id="local-stand-in"):
    resp = client.invoke_model_with_response_stream(modelId=model_id, body=body(content))
    return resp, resp["body"]


def test_a_streamed_request_reaches_the_upstream_as_an_anthropic_messages_call(runtime_client, fake):
    _, events = stream(runtime_client, "hello there", model_id="us.anthropic.claude-sonnet-4-20250514-v1:0")
    decoded = [json.loads(e["chunk"]["bytes"]) for e in events]
    sent = fake.requests[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "sk-fake" and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["model"] == MODEL and sent["body"]["stream"] is True
    assert "anthropic_version" not in sent["body"] and sent["body"]["messages"][0]["content"] == "hello there"
    assert [e["type"] for e in decoded][:2] == ["message_start", "content_block_start"]  # ping is not passed on
    assert decoded[0]["message"]["model"] == MODEL


def test_anthropic_beta_in_the_bedrock_body_becomes_the_anthropic_beta_header(runtime_client, fake):
    runtime_client.invoke_model(modelId="local-stand-in",
                                body=body("hi", anthropic_beta=["context-1m-2025-08-07", "foo-2025-01-01"]))
    sent = fake.requests[-1]
    assert sent["headers"]["anthropic-beta"] == "context-1m-2025-08-07,foo-2025-01-01"
    assert "anthropic_beta" not in sent["body"] and sent["body"]["stream"] is False


def test_a_tool_call_streams_back_whole_and_usage_becomes_bedrocks_invocation_metrics(runtime_client):
    _, events = stream(runtime_client, "create hello.py that prints hi")
    decoded = [json.loads(e["chunk"]["bytes"]) for e in events]
    blocks = assembled(decoded)
    assert blocks[1]["type"] == "tool_use" and blocks[1]["name"] == "Write"
    assert blocks[1]["input"] == {"file_path": "/work/ws/hello.py", "content": 'print("hi")\n'}
    assert decoded[-2]["delta"]["stop_reason"] == "tool_use"
    metrics = decoded[-1]["amazon-bedrock-invocationMetrics"]
    # The fake's usage: input 1000 + n in message_start, output 40 + n in message_delta.
    assert metrics["inputTokenCount"] >= 1000 and metrics["outputTokenCount"] == metrics["inputTokenCount"] - 960
    assert metrics["invocationLatency"] >= metrics["firstByteLatency"] >= 0


def test_invoke_model_returns_the_upstreams_message_with_its_model_id(runtime_client):
    message = json.loads(runtime_client.invoke_model(modelId="local-stand-in", body=body("hello"))["body"].read())
    assert message["model"] == MODEL and message["type"] == "message" and message["content"][0]["type"] == "text"
    assert "local-stand-in" not in json.dumps(message)


def test_the_upstreams_model_id_is_the_one_bedrock_lists_and_accepts(upstream_emulator, runtime_client):
    bedrock = upstream_emulator.client("bedrock")
    profiles = bedrock.list_inference_profiles(typeEquals="SYSTEM_DEFINED")["inferenceProfileSummaries"]
    assert [p["inferenceProfileId"] for p in profiles] == [MODEL]
    assert bedrock.list_foundation_models()["modelSummaries"][0]["modelId"] == MODEL
    assert "local-stand-in" not in json.dumps(profiles, default=str)
    assert json.loads(runtime_client.invoke_model(modelId=MODEL, body=body("hi"))["body"].read())["model"] == MODEL


@pytest.mark.parametrize("status, code", [
    (429, "ThrottlingException"), (529, "ThrottlingException"), (400, "ValidationException"),
    (403, "AccessDeniedException"), (404, "ResourceNotFoundException"), (500, "ModelErrorException"),
    (503, "ServiceUnavailableException"),
])
def test_an_upstream_http_error_becomes_bedrocks_error(runtime_client, fake, status, code):
    for call in (runtime_client.invoke_model, runtime_client.invoke_model_with_response_stream):
        fake.faults.append(Fault(status=status))
        with pytest.raises(ClientError) as err:
            call(modelId="local-stand-in", body=body("hello"))
        assert err.value.response["Error"]["Code"] == code
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == {
            "ThrottlingException": 429, "ValidationException": 400, "AccessDeniedException": 403,
            "ResourceNotFoundException": 404, "ModelErrorException": 424, "ServiceUnavailableException": 503}[code]
        assert f"answered {status}" in err.value.response["Error"]["Message"]


def test_a_wrong_api_key_is_access_denied_and_names_the_variable(fake, tmp_path):
    emu = EmulatorProcess(tmp_path, env={**fake.env(), "WORKSHOP_MODEL_UPSTREAM_API_KEY": "sk-wrong"}).start()
    try:
        with pytest.raises(ClientError) as err:
            emu.client("bedrock-runtime").invoke_model(modelId="local-stand-in", body=body("hi"))
    finally:
        emu.stop()
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "WORKSHOP_MODEL_UPSTREAM_API_KEY" in err.value.response["Error"]["Message"]


@pytest.mark.parametrize("error_type, member", [
    ("overloaded_error", "throttlingException"), ("api_error", "internalServerException"),
    ("some_new_error", "modelStreamErrorException"),
])
def test_an_error_event_mid_stream_becomes_bedrocks_stream_exception(runtime_client, fake, error_type, member):
    fake.faults.append(Fault(error_type=error_type))
    _, events = stream(runtime_client)
    seen = []
    with pytest.raises(EventStreamError) as err:
        for event in events:
            seen.append(event)
    assert seen and all("chunk" in e for e in seen)  # what came before the error was passed on
    assert err.value.response["Error"]["Code"] == member
    assert error_type in err.value.response["Error"]["Message"]


def test_a_dropped_connection_mid_stream_is_a_model_stream_error(runtime_client, fake):
    fake.faults.append(Fault(drop_after=4))
    _, events = stream(runtime_client, "create hello.py that prints hi")
    seen = []
    with pytest.raises(EventStreamError) as err:
        for event in events:
            seen.append(event)
    assert len(seen) == 3  # message_start, content_block_start, one delta (ping is not passed on)
    assert err.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert "stopped mid-answer" in err.value.response["Error"]["Message"]


def test_a_dropped_connection_before_a_whole_message_is_a_model_error(runtime_client, fake):
    fake.faults.append(Fault(drop_after=2, truncate_json=True))
    with pytest.raises(ClientError) as err:
        runtime_client.invoke_model(modelId="local-stand-in", body=body("hello"))
    assert err.value.response["Error"]["Code"] == "ModelErrorException"
    assert "dropped the connection" in err.value.response["Error"]["Message"]


def test_events_pass_through_as_the_upstream_sends_them(runtime_client, fake):
    fault = Fault(pause_after=3)
    fake.faults.append(fault)
    started = time.monotonic()
    _, events = stream(runtime_client)
    first = next(iter(events))
    waited = time.monotonic() - started
    # The upstream is still holding back the rest of its answer (it waits up to 20 s for release).
    assert not fault.release.is_set() and waited < 10
    assert json.loads(first["chunk"]["bytes"])["type"] == "message_start"
    fault.release.set()
    assert json.loads(list(events)[-1]["chunk"]["bytes"])["type"] == "message_stop"


def test_an_upstream_that_is_not_running_is_a_model_error_naming_it(tmp_path):
    from tests.support.emulator import free_port
    url = f"http://127.0.0.1:{free_port()}"
    emu = EmulatorProcess(tmp_path, env={"WORKSHOP_MODEL_UPSTREAM": url, "WORKSHOP_MODEL_UPSTREAM_MODEL": "m"}).start()
    try:
        with pytest.raises(ClientError) as err:
            emu.client("bedrock-runtime").invoke_model_with_response_stream(modelId="m", body=body("hi"))
    finally:
        emu.stop()
    assert err.value.response["Error"]["Code"] == "ModelErrorException"
    assert url in err.value.response["Error"]["Message"] and "cannot be reached" in err.value.response["Error"]["Message"]


def test_an_upstream_without_a_model_name_stops_the_emulator_with_a_clear_message(tmp_path):
    emu = EmulatorProcess(tmp_path, env={"WORKSHOP_MODEL_UPSTREAM": "http://127.0.0.1:9"})
    with pytest.raises(RuntimeError, match="WORKSHOP_MODEL_UPSTREAM_MODEL is not"):
        emu.start()


@pytest.mark.parametrize("url, posted_to", [
    ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
    ("http://localhost:11434/", "http://localhost:11434/v1/messages"),
    ("http://localhost:4000/v1", "http://localhost:4000/v1/messages"),
    ("http://localhost:4000/anthropic/v1/messages", "http://localhost:4000/anthropic/v1/messages"),
])
def test_the_upstream_url_is_a_base_url_as_anthropics_clients_take_it(url, posted_to):
    assert ModelUpstream(url=url, model="m").messages_url == posted_to


def test_the_invocation_log_names_the_upstreams_model(upstream_emulator, runtime_client):
    runtime_client.invoke_model(modelId="local-stand-in", body=body("log me"))
    log = upstream_emulator.state_dir / "bedrock" / "invocations.jsonl"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["answered_by"] == MODEL and entry["model_id"] == "local-stand-in" and entry["input_tokens"] >= 1000


@pytest.mark.slow
def test_the_real_claude_code_cli_writes_a_file_through_the_upstream(upstream_emulator, fake, tmp_path):
    fake.faults.clear()
    before = len(fake.requests)
    write_hello_py(upstream_emulator.endpoint, MODEL, tmp_path)
    forwarded = fake.requests[before:]
    assert forwarded and all(r["body"]["model"] == MODEL for r in forwarded)
    assert any(b.get("type") == "tool_result" for r in forwarded for m in r["body"]["messages"]
               if isinstance(m.get("content"), list) for b in m["content"])


@pytest.mark.slow
def test_the_workshop_runs_on_the_upstream_as_on_the_stand_in(fake, tmp_path, monkeypatch):
    from helpers import invoke, runtime
    from tests.emulator.fixtures.workshop import deploy

    fake.faults.clear()
    emu = EmulatorProcess(tmp_path / "emulator", env={**fake.env(), "EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    monkeypatch.setenv("WORKSHOP_TARGET", "local")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "workshop"))
    monkeypatch.delenv("ANTHROPIC_MODEL", raising=False)
    monkeypatch.setenv("WORKSHOP_MODEL_UPSTREAM_MODEL", MODEL)  # as a user's shell would hold it for both
    before = len(fake.requests)
    try:
        # The notebooks' path: stack, memory, image, runtime, then the agent runs Claude Code in its session.
        settings = deploy().settings
        assert settings.model_id == MODEL
        try:
            out = invoke.invoke(settings, "Create a file hello.py that prints hello world", "alice", "up-1",
                                progress=False)
        finally:
            runtime.delete_runtime(settings, progress=False)
    finally:
        emu.stop()
    assert out["success"], out
    assert any(e["type"] == "tool_use" and e.get("tool") == "Write" for e in out.events)
    assert any(f["file_name"].endswith("hello.py") for f in out["metadata"]["uploaded_files"])
    assert out["model"] == MODEL
    forwarded = fake.requests[before:]
    assert len(forwarded) >= 2 and {r["body"]["model"] for r in forwarded} == {MODEL}


def _memory_with_records(emu, text: str) -> dict[str, list[str]]:
    control, data = emu.client("bedrock-agentcore-control"), emu.client("bedrock-agentcore")
    memory = control.create_memory(name=f"Up_{int(time.time() * 1000)}", eventExpiryDuration=30, memoryStrategies=[
        {"semanticMemoryStrategy": {"name": "facts", "namespaces": ["u/{actorId}/facts"]}},
        {"userPreferenceMemoryStrategy": {"name": "prefs", "namespaces": ["u/{actorId}/prefs"]}}])["memory"]
    deadline = time.monotonic() + 30
    while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    data.create_event(memoryId=memory["id"], actorId="ana", sessionId="s1", eventTimestamp=dt.datetime.now(dt.timezone.utc),
                      payload=[{"conversational": {"content": {"text": text}, "role": "USER"}}])
    found: dict[str, list[str]] = {}
    while time.monotonic() < deadline and len(found) < 2:
        for kind in ("facts", "prefs"):
            records = data.list_memory_records(memoryId=memory["id"], namespace=f"u/ana/{kind}")
            if records["memoryRecordSummaries"]:
                found[kind] = sorted(r["content"]["text"] for r in records["memoryRecordSummaries"])
        time.sleep(0.2)
    return found


def test_with_an_upstream_long_term_extraction_asks_the_model(upstream_emulator, fake):
    def answer(system, body):
        assert "I can't stand long functions" in body["messages"][0]["content"]
        if '{"facts"' in system:
            return 'Here you go: {"facts": ["The user works on a FastAPI service."]}'
        return '{"preferences": ["The user dislikes long functions."]}'

    fake.faults.clear()
    fake.extraction_reply = answer
    try:
        found = _memory_with_records(upstream_emulator, "so our api is FastAPI. I can't stand long functions.")
    finally:
        fake.extraction_reply = None
    assert found == {"facts": ["The user works on a FastAPI service."], "prefs": ["The user dislikes long functions."]}


def test_when_the_model_answers_no_json_the_rules_extract(upstream_emulator, fake):
    fake.faults.clear()
    fake.extraction_reply = lambda system, body: "Sorry, I cannot help with that."
    try:
        found = _memory_with_records(upstream_emulator, "The cache sits in Redis 7. Keep lines under 100 characters.")
    finally:
        fake.extraction_reply = None
    assert found == {"facts": ["The cache sits in Redis 7."],
                     "prefs": ["The user wants the assistant to keep lines under 100 characters."]}
    log = (upstream_emulator.state_dir / "emulator-test.log").read_text()
    assert "the local rules extract them instead" in log


def test_with_an_upstream_scripted_answers_are_still_the_stand_ins_and_scripted_faults_cut_the_upstreams_stream(
        upstream_emulator, runtime_client, fake):
    from tests.emulator.test_bedrock_script import admin

    admin(upstream_emulator, "DELETE")
    try:
        assert admin(upstream_emulator, "POST", {"rules": [
            {"match": "scripted please", "times": 1, "answer": "From the script."},
            {"match": "cut the upstream", "times": 1, "stream_error": "modelStreamErrorException", "after_events": 2},
        ]})[0] == 200
        asked = len(fake.requests)
        _, events = stream(runtime_client, "scripted please")
        decoded = [json.loads(e["chunk"]["bytes"]) for e in events]
        assert decoded[0]["message"]["model"] == "local-stand-in" and assembled(decoded)[0]["text"] == "From the script."
        assert len(fake.requests) == asked  # the upstream was not asked

        _, events = stream(runtime_client, "cut the upstream")
        seen = []
        with pytest.raises(EventStreamError) as err:
            for event in events:
                seen.append(json.loads(event["chunk"]["bytes"])["type"])
        assert err.value.response["Error"]["Code"] == "modelStreamErrorException" and len(seen) == 2
        assert seen[0] == "message_start" and len(fake.requests) == asked + 1
        entries = [json.loads(line) for line in
                   (upstream_emulator.state_dir / "bedrock" / "invocations.jsonl").read_text().splitlines()][-2:]
        assert [e["answered_by"] for e in entries] == ["local-stand-in", MODEL]
        assert entries[1]["scripted"]["fault"] == "stream:modelStreamErrorException"
    finally:
        admin(upstream_emulator, "DELETE")
