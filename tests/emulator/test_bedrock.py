"""The emulator's Bedrock: event-stream framing, the stand-in model's moves, and the calls Claude Code makes."""
from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from emulator.bedrock import eventstream
from emulator.bedrock.standin import MODEL_ID, StandInModel
from tests.support.claude_cli import write_hello_py

TOOLS = [{"name": n, "description": n, "input_schema": {"type": "object"}} for n in ("Write", "Read", "Bash", "Glob")]
SYSTEM = [{"type": "text", "text": "# Environment\n - Primary working directory: /work/ws\n"}]


def body(content, **extra) -> str:
    messages = content if isinstance(content, list) else [{"role": "user", "content": content}]
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 512, "system": SYSTEM,
                       "messages": messages, "tools": TOOLS, **extra})


def stream_events(emulator, content, **extra) -> list[dict]:
    client = emulator.client("bedrock-runtime")
    resp = client.invoke_model_with_response_stream(modelId=MODEL_ID, body=body(content, **extra))
    return [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]


def assembled(events: list[dict]) -> list[dict]:
    """Content blocks rebuilt from stream events, as Anthropic's SDK does."""
    blocks: dict[int, dict] = {}
    partial: dict[int, str] = {}
    for e in events:
        if e["type"] == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"])
        elif e["type"] == "content_block_delta":
            d = e["delta"]
            if d["type"] == "text_delta":
                blocks[e["index"]]["text"] += d["text"]
            else:
                partial[e["index"]] = partial.get(e["index"], "") + d["partial_json"]
    for i, text in partial.items():
        blocks[i]["input"] = json.loads(text)
    return [blocks[i] for i in sorted(blocks)]


def test_event_stream_frames_decode_with_botocore_and_checksums_hold():
    frame = eventstream.chunk_event({"type": "message_stop"})
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "chunk"
    inner = json.loads(message.payload)["bytes"]
    assert json.loads(__import__("base64").b64decode(inner)) == {"type": "message_stop"}
    corrupted = bytearray(frame)
    corrupted[-6] ^= 0xFF
    bad = EventStreamBuffer()
    bad.add_data(bytes(corrupted))
    with pytest.raises(Exception, match="(?i)crc|checksum"):
        list(bad)


def test_asked_to_create_a_file_the_stand_in_calls_write_with_a_working_file(emulator, tmp_path):
    events = stream_events(emulator, "create hello.py that prints hello")
    assert [e["type"] for e in events][0] == "message_start"
    assert events[0]["message"]["model"] == MODEL_ID
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    tool = [b for b in assembled(events) if b["type"] == "tool_use"][0]
    assert tool["name"] == "Write"
    assert tool["input"]["file_path"] == "/work/ws/hello.py"
    script = tmp_path / "hello.py"
    script.write_text(tool["input"]["content"])
    assert subprocess.run(["python3", str(script)], capture_output=True, text=True).stdout == "hello\n"


def test_asked_what_is_in_the_workspace_the_stand_in_lists_it_with_bash(emulator):
    tool = [b for b in assembled(stream_events(emulator, "What is in the workspace?")) if b["type"] == "tool_use"][0]
    assert tool["name"] == "Bash" and tool["input"]["command"].startswith("ls")


def test_asked_to_read_a_named_file_the_stand_in_calls_read(emulator):
    tool = [b for b in assembled(stream_events(emulator, "read notes.md please")) if b["type"] == "tool_use"][0]
    assert tool == {**tool, "name": "Read", "input": {"file_path": "/work/ws/notes.md"}}


def test_without_the_tool_offered_the_stand_in_only_talks(emulator):
    resp = emulator.client("bedrock-runtime").invoke_model(
        modelId=MODEL_ID, body=json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                                           "messages": [{"role": "user", "content": "create a.py"}]}))
    message = json.loads(resp["body"].read())
    assert [b["type"] for b in message["content"]] == ["text"] and message["stop_reason"] == "end_turn"


def test_after_tool_results_the_stand_in_closes_with_a_short_text_quoting_them(emulator):
    messages = [
        {"role": "user", "content": "what files are in the workspace"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                           "input": {"command": "ls -la"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "hello.py\n"}]},
    ]
    blocks = assembled(stream_events(emulator, messages))
    assert [b["type"] for b in blocks] == ["text"]
    assert "hello.py" in blocks[0]["text"]


def test_plain_questions_get_a_reply_quoting_the_memory_context(emulator):
    system = SYSTEM + [{"type": "text", "text": "<memory_context>\n- user: my cat is Tom\n</memory_context>"}]
    blocks = assembled(stream_events(emulator, "what is my cat called?", system=system))
    assert "my cat is Tom" in blocks[0]["text"] and MODEL_ID in blocks[0]["text"]
    blocks = assembled(stream_events(emulator, "what is my cat called?"))
    assert "no memory context" in blocks[0]["text"]


def test_the_stand_in_is_deterministic():
    request = json.loads(body("create app.js that prints hi"))
    assert StandInModel().reply(request) == StandInModel().reply(request)


def test_invoke_model_answers_the_whole_message(emulator):
    resp = emulator.client("bedrock-runtime").invoke_model(modelId=MODEL_ID, body=body("hello there"))
    message = json.loads(resp["body"].read())
    assert message["type"] == "message" and message["model"] == MODEL_ID
    assert message["usage"]["input_tokens"] > 0


@pytest.mark.parametrize("payload,field", [
    (b"not json", "body"),
    (json.dumps({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).encode(), "anthropic_version"),
    (json.dumps({"anthropic_version": "bedrock-2023-05-31", "messages": []}).encode(), "messages"),
])
def test_bad_request_bodies_are_validation_errors_naming_the_field(emulator, payload, field):
    with pytest.raises(ClientError) as err:
        emulator.client("bedrock-runtime").invoke_model(modelId=MODEL_ID, body=payload)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith(field)


def test_inference_profiles_name_the_stand_in(emulator):
    bedrock = emulator.client("bedrock")
    (profile,) = bedrock.list_inference_profiles(typeEquals="SYSTEM_DEFINED")["inferenceProfileSummaries"]
    assert profile["inferenceProfileId"] == MODEL_ID
    assert bedrock.list_inference_profiles(typeEquals="APPLICATION")["inferenceProfileSummaries"] == []
    assert bedrock.list_foundation_models()["modelSummaries"][0]["modelId"] == MODEL_ID


def test_unsigned_requests_as_claude_code_sends_them_are_answered(emulator):
    with urllib.request.urlopen(f"{emulator.endpoint}/inference-profiles?type=SYSTEM_DEFINED") as resp:
        assert json.load(resp)["inferenceProfileSummaries"][0]["inferenceProfileId"] == MODEL_ID
    req = urllib.request.Request(f"{emulator.endpoint}/model/{MODEL_ID}/invoke-with-response-stream",
                                 data=body("hi").encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert resp.headers["Content-Type"] == eventstream.CONTENT_TYPE
        buffer = EventStreamBuffer()
        buffer.add_data(resp.read())
        assert len(list(buffer)) >= 5


@pytest.mark.slow
def test_the_real_claude_code_cli_writes_a_working_file_through_the_stand_in(emulator, tmp_path):
    write_hello_py(emulator.endpoint, MODEL_ID, tmp_path)


@pytest.mark.parametrize("model_id", [
    MODEL_ID, "anthropic.claude-3-5-haiku-20241022-v1:0", "us.anthropic.claude-sonnet-4-20250514-v1:0",
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
])
def test_the_stand_in_answers_its_own_and_anthropic_shaped_model_ids(emulator, model_id):
    resp = emulator.client("bedrock-runtime").invoke_model(modelId=model_id, body=body("hello"))
    assert json.loads(resp["body"].read())["role"] == "assistant"


@pytest.mark.parametrize("model_id", ["amazon.titan-text-express-v1", "gpt-4", "meta.llama3-8b-instruct-v1:0",
                                      "us.amazon.nova-pro-v1:0", "anthropic.claude", "local-stand-in-2"])
def test_other_model_ids_are_refused_as_bedrock_refuses_them(emulator, model_id):
    client = emulator.client("bedrock-runtime")
    for call in (client.invoke_model, client.invoke_model_with_response_stream):
        with pytest.raises(ClientError) as err:
            call(modelId=model_id, body=body("hello"))
        assert err.value.response["Error"]["Code"] == "ValidationException"
        assert err.value.response["Error"]["Message"].startswith("The provided model identifier is invalid.")


def _text(request: dict) -> str:
    return "".join(b.text for b in StandInModel().reply(request).blocks if b.kind == "text")


def test_asked_what_came_before_the_stand_in_quotes_the_earlier_requests_it_received():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"},
                                     {"type": "text", "text": "Create a file hello.py that prints hello world"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Done: wrote hello.py."}]},
        {"role": "user", "content": "What did I ask you before?"},
    ]
    text = _text(json.loads(body(messages)))
    assert '1. "Create a file hello.py that prints hello world"' in text
    assert "cannot reason" in text  # it still says what it is
    assert "What did I ask you before" not in text.split("Earlier in this conversation")[1]


def test_asked_what_came_before_in_a_new_conversation_the_stand_in_says_there_was_nothing():
    text = _text(json.loads(body("What did I ask you before?")))
    assert "nothing; this request is the first I received" in text


def test_asked_to_list_files_and_what_came_before_the_closing_text_names_the_earlier_request():
    messages = [
        {"role": "user", "content": "Create a file hello.py that prints hello world"},
        {"role": "assistant", "content": [{"type": "text", "text": "Done: wrote hello.py."}]},
        {"role": "user", "content": "What files are in the workspace, and what did I ask you before?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "Bash",
                                           "input": {"command": "ls -la"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "hello.py\n"}]},
    ]
    text = _text(json.loads(body(messages)))
    assert "hello.py" in text and '1. "Create a file hello.py that prints hello world"' in text


def test_tool_output_in_the_closing_text_is_fenced_so_its_line_breaks_survive_markdown():
    from emulator.bedrock.models import StandInModel

    listing = "total 8\n-rw-r--r-- 1 u u 21 Dec  2 00:17 hello.py\n-rw-r--r-- 1 u u  9 Dec  2 00:17 notes.md"
    messages = [
        {"role": "user", "content": "What files are in the workspace?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash",
                                           "input": {"command": "ls -la"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": listing}]},
    ]
    [block] = StandInModel().reply({"messages": messages, "tools": [{"name": "Bash"}]}).blocks
    assert block.text == f"Bash ls -la:\n```\n{listing}\n```"
