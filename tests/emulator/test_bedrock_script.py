"""The stand-in model's script: per-prompt answers, and faults on purpose as Bedrock sends them, counted by `times`."""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from emulator.bedrock.script import PATH
from emulator.bedrock.standin import MODEL_ID
from tests.emulator.test_bedrock import assembled, body


def admin(emulator, method: str, doc=None) -> tuple[int, dict]:
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(emulator.endpoint + PATH, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.load(err)


@pytest.fixture
def script(emulator):
    """Post rules to the session emulator's script; whatever a test leaves is cleared after it."""
    def post(*rules):
        status, doc = admin(emulator, "POST", {"rules": list(rules)})
        assert status == 200, doc
        return doc
    admin(emulator, "DELETE")
    yield post
    assert admin(emulator, "DELETE")[0] == 200


def _stream(emulator, content):
    resp = emulator.client("bedrock-runtime").invoke_model_with_response_stream(modelId=MODEL_ID, body=body(content))
    return [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]


def _raw(emulator, prompt: str, operation: str = "invoke-with-response-stream"):
    """The unsigned call Claude Code makes (CLAUDE_CODE_SKIP_BEDROCK_AUTH), without a client that retries."""
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=30)
    conn.request("POST", f"/model/{MODEL_ID}/{operation}", body=body(prompt),
                 headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def _log(emulator) -> list[dict]:
    path = emulator.state_dir / "bedrock" / "invocations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scripted_answers_match_the_last_user_message_are_counted_and_are_still_the_stand_ins(emulator, script):
    script({"match": "magic word", "times": 1, "answer": "Scripted: abracadabra."},
           {"match": "deploy it", "answer": "Running the deploy.",
            "tool": {"name": "Bash", "input": {"command": "echo deployed"}}})
    events = _stream(emulator, "<system-reminder>ignore me</system-reminder>say the magic word please")
    assert events[0]["message"]["model"] == MODEL_ID
    assert assembled(events) == [{"type": "text", "text": "Scripted: abracadabra."}]
    # Spent after one: the next request with the same words gets the stand-in's usual answer.
    assert "cannot reason" in assembled(_stream(emulator, "say the magic word please"))[0]["text"]
    # Words in a harness reminder are not the user's: no match.
    assert "cannot reason" in assembled(_stream(emulator, "<system-reminder>deploy it</system-reminder>hi"))[0]["text"]

    text, tool = assembled(_stream(emulator, "please deploy it now"))
    assert text["text"] == "Running the deploy."
    assert (tool["name"], tool["input"]) == ("Bash", {"command": "echo deployed"})
    # The tool's result comes back as a user message of tool results only: not the user's words, no match, so a
    # scripted tool call cannot loop.
    follow_up = [{"role": "user", "content": "please deploy it now"},
                 {"role": "assistant", "content": [{"type": "tool_use", "id": tool["id"], "name": "Bash",
                                                    "input": tool["input"]}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool["id"],
                                               "content": "deployed"}]}]
    assert "deployed" in assembled(_stream(emulator, follow_up))[0]["text"]

    message = json.loads(emulator.client("bedrock-runtime").invoke_model(
        modelId="us.anthropic.claude-sonnet-4-20250514-v1:0", body=body("deploy it"))["body"].read())
    assert message["model"] == MODEL_ID and message["stop_reason"] == "tool_use"

    status, doc = admin(emulator, "GET")
    assert status == 200 and [(r["id"][:1], r["fired"], r["spent"]) for r in doc["rules"]] == [("r", 1, True),
                                                                                               ("r", 2, False)]
    scripted = [e for e in _log(emulator) if e.get("scripted")]
    assert {e["answered_by"] for e in scripted} == {MODEL_ID}
    assert [e["scripted"]["rule"] for e in scripted[-3:]] == [doc["rules"][0]["id"]] + [doc["rules"][1]["id"]] * 2
    assert admin(emulator, "DELETE") == (200, {"cleared": 2, "rules": []})
    assert admin(emulator, "GET") == (200, {"rules": []})


@pytest.mark.parametrize("code,status", [("ThrottlingException", 429), ("ServiceUnavailableException", 503),
                                         ("InternalServerException", 500), ("ModelErrorException", 424)])
def test_errors_are_answered_before_the_stream_with_bedrocks_code_and_status_then_the_call_succeeds(
        emulator, script, code, status):
    script({"match": f"fail with {code}", "times": 2, "error": code})
    # One attempt per call (botocore's max_attempts counts retries): the test counts the calls itself.
    client = emulator.client("bedrock-runtime", config=Config(retries={"total_max_attempts": 1}))
    for attempt in (1, 2):
        with pytest.raises(ClientError) as err:
            client.invoke_model_with_response_stream(modelId=MODEL_ID, body=body(f"fail with {code}"))
        assert err.value.response["Error"]["Code"] == code
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert f"{attempt} of 2" in err.value.response["Error"]["Message"]
    assert _stream(emulator, f"fail with {code}")[-1]["type"] == "message_stop"
    assert [bool(e.get("error")) for e in _log(emulator)[-3:]] == [True, True, False]


def test_a_throttling_event_mid_stream_ends_the_answer_as_botocore_reads_it(emulator, script):
    script({"match": "throttle mid-stream", "times": 1, "stream_error": "throttlingException", "after_events": 2})
    resp = emulator.client("bedrock-runtime").invoke_model_with_response_stream(
        modelId=MODEL_ID, body=body("throttle mid-stream"))
    seen = []
    with pytest.raises(EventStreamError) as err:
        for event in resp["body"]:
            seen.append(json.loads(event["chunk"]["bytes"])["type"])
    assert seen == ["message_start", "content_block_start"]
    assert err.value.response["Error"]["Code"] == "throttlingException"
    assert _stream(emulator, "throttle mid-stream")[-1]["type"] == "message_stop"  # spent: the retry succeeds


def test_a_dropped_stream_is_cut_mid_answer_and_a_slow_first_byte_waits(emulator, script):
    script({"match": "drop me", "times": 1, "drop": True, "after_events": 3},
           {"match": "drop the whole call", "times": 1, "drop": True},
           {"match": "take your time", "times": 1, "delay_seconds": 1.5})
    conn, resp = _raw(emulator, "drop me")
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    buffer = EventStreamBuffer()
    buffer.add_data(cut.value.partial)
    assert len(list(buffer)) == 3  # three whole events, then nothing: no message_stop, no last chunk
    conn.close()

    conn, resp = _raw(emulator, "drop the whole call", operation="invoke")
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    assert cut.value.partial.startswith(b'{"id": "msg_')
    conn.close()

    started = time.monotonic()
    conn, resp = _raw(emulator, "take your time")
    first = resp.read(1)
    assert time.monotonic() - started >= 1.4
    buffer = EventStreamBuffer()
    buffer.add_data(first + resp.read())
    *_, last = list(buffer)
    assert json.loads(__import__("base64").b64decode(json.loads(last.payload)["bytes"]))["type"] == "message_stop"
    conn.close()


def test_bad_scripts_are_refused_naming_the_member_and_nothing_is_added(emulator, script):
    cases = [
        ([], "body:"),
        ({"rules": []}, "rules:"),
        ({"rules": [{"answer": "ok"}], "times": 2}, "body: times"),
        ({"rules": [{"answer": "ok"}, {"times": 0, "answer": "x"}]}, "rules[1].times:"),
        ({"times": True, "answer": "x"}, "rule.times:"),
        ({"match": "", "answer": "x"}, "rule.match:"),
        ({"answer": 3}, "rule.answer:"),
        ({"tool": {"input": {}}}, "rule.tool:"),
        ({"error": "TooManyCooks"}, "rule.error: 'TooManyCooks' is not an error"),
        ({"stream_error": "ThrottlingException"}, "rule.stream_error:"),
        ({"error": "ThrottlingException", "drop": True}, "rule: error and drop together"),
        ({"error": "ThrottlingException", "answer": "x"}, "rule: error with an answer"),
        ({"answer": "x", "after_events": 2}, "rule.after_events: only with"),
        ({"drop": True, "after_events": -1}, "rule.after_events:"),
        ({"delay_seconds": 601}, "rule.delay_seconds:"),
        ({"match": "x"}, "rule: does nothing"),
        ({"answr": "typo"}, "rule: unknown member(s) answr"),
    ]
    for doc, start in cases:
        status, answer = admin(emulator, "POST", doc)
        assert (status, answer["code"]) == (400, "ValidationException"), doc
        assert answer["message"].startswith(start), (doc, answer["message"])
    req = urllib.request.Request(emulator.endpoint + PATH, data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and json.load(err.value)["message"].startswith("body: not JSON")
    assert admin(emulator, "PUT", {})[0] == 405
    assert admin(emulator, "GET") == (200, {"rules": []})
