"""The agent on AgentCore's contract under TestClient, with the real Claude Code CLI and the stand-in model."""
from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.support.sse import sse_events

from .conftest import invoke

HELLO = "create hello.py that prints hello"


@pytest.fixture(scope="module")
def bare_agent(tmp_path_factory):
    """An agent with no AWS at all: enough for everything decided before Claude Code runs."""
    from fastapi.testclient import TestClient

    from agent.app import create_app
    from agent.settings import AgentSettings

    settings = AgentSettings.from_env({"WORKSPACE_ROOT": str(tmp_path_factory.mktemp("bare"))})
    with TestClient(create_app(settings, clients=(None, None, None))) as client:
        yield client


def test_ping_reports_healthy_with_the_time_of_last_update(bare_agent):
    ping = bare_agent.get("/ping").json()
    assert ping["status"] == "Healthy" and isinstance(ping["time_of_last_update"], int)


@pytest.mark.parametrize("body,field", [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    (json.dumps({"prompt": "no input wrapper"}).encode(), "input"),
    (json.dumps({"input": {}}).encode(), "input.prompt"),
    (json.dumps({"input": {"prompt": 42}}).encode(), "input.prompt"),
    (json.dumps({"input": {"prompt": "   "}}).encode(), "input.prompt"),
    (json.dumps({"input": {"prompt": "x" * 1_000_000}}).encode(), "input.prompt"),
    (json.dumps({"input": {"prompt": "hi", "actor_id": "../etc"}}).encode(), "input.actor_id"),
    (json.dumps({"input": {"prompt": "hi", "actor_id": "a/b"}}).encode(), "input.actor_id"),
    (json.dumps({"input": {"prompt": "hi", "actor_id": 7}}).encode(), "input.actor_id"),
    (json.dumps({"input": {"prompt": "hi", "session_id": "../../x"}}).encode(), "input.session_id"),
    (json.dumps({"input": {"prompt": "hi", "session_id": "s/1"}}).encode(), "input.session_id"),
    (json.dumps({"input": {"prompt": "hi", "session_id": ".."}}).encode(), "input.session_id"),
    (json.dumps({"input": {"prompt": "hi", "permission_mode": "yolo"}}).encode(), "input.permission_mode"),
    (json.dumps({"input": {"prompt": "hi", "allowed_tools": "Bash"}}).encode(), "input.allowed_tools"),
    (json.dumps({"input": {"prompt": "hi", "allowed_tools": ["Bash", "Replace"]}}).encode(),
     "input.allowed_tools[1]"),
    (json.dumps({"input": {"prompt": "hi", "max_turns": "5"}}).encode(), "input.max_turns"),
])
def test_bad_input_is_a_400_naming_the_field(bare_agent, body, field):
    resp = bare_agent.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    doc = resp.json()
    assert set(doc) >= {"error", "details"} and doc["field"] == field
    assert field in doc["details"]


def test_bad_session_header_is_a_400_naming_the_header(bare_agent):
    resp = bare_agent.post("/invocations", json={"input": {"prompt": "hi"}},
                             headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "../../escape"})
    assert resp.status_code == 400 and "Session-Id" in resp.json()["field"]


@pytest.mark.slow
def test_a_created_file_reaches_s3_and_the_next_turn_of_the_session_finds_it_and_the_first_turn(
        make_agent, emulator, agent_resources):
    agent = make_agent()
    first = invoke(agent, prompt=HELLO, actor_id="alice", session_id="project-calc")
    assert first["success"] is True and first["model"] == "local-stand-in"
    meta = first["metadata"]
    assert meta["memory_enabled"] is True and meta["num_turns"] >= 2
    (uploaded,) = meta["uploaded_files"]
    assert uploaded["file_name"] == "hello.py" and uploaded["console_url"].startswith("https://")
    s3 = emulator.client("s3")
    bucket = agent_resources["bucket"]
    assert s3.get_object(Bucket=bucket, Key="sessions/alice/project-calc/hello.py")["Body"].read() == \
        b'print("hello")\n'
    out_key = uploaded["s3_url"].split(f"s3://{bucket}/", 1)[1]
    assert out_key.startswith("outputs/") and out_key.endswith("/alice/project-calc/hello.py")
    assert s3.get_object(Bucket=bucket, Key=out_key)["Body"].read() == b'print("hello")\n'

    # A new process (fresh workspace root) for the same session: files come back from S3,
    # the first turn from memory.
    agent2 = make_agent(WORKSPACE_ROOT=str(agent.app.state.settings.workspace_root) + "-second")
    listing = invoke(agent2, prompt="what is in the workspace?", actor_id="alice", session_id="project-calc")
    assert "hello.py" in listing["result"]
    assert listing["metadata"]["memory_context"]["turns"] == 2
    assert listing["metadata"]["uploaded_files"] == []  # restored files are not uploaded again
    recall = invoke(agent2, prompt="hi, what did I ask you before?", actor_id="alice", session_id="project-calc")
    assert HELLO in recall["result"]

    # Another actor with the same session id finds neither the file nor the turns.
    other = invoke(agent2, prompt="what is in the workspace?", actor_id="bob", session_id="project-calc")
    assert "hello.py" not in other["result"]
    other_recall = invoke(agent2, prompt="hi, what did I ask you before?", actor_id="bob", session_id="project-calc")
    assert HELLO not in other_recall["result"]


@pytest.mark.slow
def test_each_turn_is_saved_to_memory_as_a_conversational_event(make_agent, emulator, agent_resources):
    out = invoke(make_agent(), prompt="hello there", actor_id="carol", session_id="events-check")
    events = emulator.client("bedrock-agentcore").list_events(
        memoryId=agent_resources["memory_id"], actorId="carol", sessionId="events-check",
        includePayloads=True)["events"]
    assert len(events) == 1
    roles = [(p["conversational"]["role"], p["conversational"]["content"]["text"]) for p in events[0]["payload"]]
    assert roles == [("USER", "hello there"), ("ASSISTANT", out["result"])]


@pytest.mark.slow
def test_the_event_stream_shows_progress_keeps_alive_and_ends_with_the_output(make_agent):
    agent = make_agent(SSE_KEEPALIVE_SECONDS="0.05")
    with agent.stream("POST", "/invocations", headers={"Accept": "text/event-stream"},
                      json={"input": {"prompt": "create notes.md with hello", "actor_id": "dave",
                                      "session_id": "stream-1"}}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = list(resp.iter_lines())
    assert ": keep-alive" in lines  # a comment line while Claude Code was quiet
    events = sse_events(lines)
    names = [name for name, _ in events]
    assert names[-1] == "output" and "output" in events[-1][1]
    tool = next(data for name, data in events if name == "tool_use")
    assert tool["tool"] == "Write" and tool["target"].endswith("notes.md")
    assert names.index("tool_use") < names.index("file_uploaded") < names.index("output")
    assert any(name == "text" for name in names)
    assert events[-1][1]["output"]["metadata"]["uploaded_files"][0]["file_name"] == "notes.md"


@pytest.mark.slow
def test_without_memory_the_agent_still_answers_and_says_why(make_agent):
    out = invoke(make_agent(MEMORY_ID_PARAMETER="/no/such/parameter"), prompt="hello", actor_id="erin",
                 session_id="no-memory")
    assert out["success"] is True and out["metadata"]["memory_enabled"] is False
    assert any("/no/such/parameter" in w for w in out["warnings"])


@pytest.mark.slow
def test_with_memory_unreachable_the_agent_still_answers_and_says_what_failed(make_agent):
    out = invoke(make_agent(AWS_ENDPOINT_URL_BEDROCK_AGENTCORE="http://127.0.0.1:9",
                            AGENT_AWS_CONNECT_TIMEOUT="0.5"),
                 prompt="hello", actor_id="erin", session_id="memory-down")
    assert out["success"] is True
    assert any("could not read recent turns" in w for w in out["warnings"])
    assert any("could not save this turn" in w for w in out["warnings"])


@pytest.mark.slow
def test_with_s3_unreachable_the_agent_answers_keeps_the_file_and_uploads_it_next_time(
        make_agent, emulator, agent_resources):
    down = make_agent(AWS_ENDPOINT_URL_S3="http://127.0.0.1:9", AGENT_AWS_CONNECT_TIMEOUT="0.5")
    out = invoke(down, prompt=HELLO, actor_id="frank", session_id="s3-down")
    assert out["success"] is True and out["metadata"]["uploaded_files"] == []
    assert any("restore" in w for w in out["warnings"]) and any("hello.py" in w for w in out["warnings"])
    assert (down.app.state.settings.workspace_root / "frank" / "s3-down" / "hello.py").exists()

    up = make_agent(AWS_ENDPOINT_URL_S3=None)
    again = invoke(up, prompt="hi", actor_id="frank", session_id="s3-down")
    assert [f["file_name"] for f in again["metadata"]["uploaded_files"]] == ["hello.py"]
    emulator.client("s3").head_object(Bucket=agent_resources["bucket"], Key="sessions/frank/s3-down/hello.py")


@pytest.mark.slow
def test_a_run_past_its_timeout_is_stopped_and_reported(make_agent):
    out = invoke(make_agent(AGENT_RUN_TIMEOUT_SECONDS="0.2"), prompt="hello", actor_id="gina",
                 session_id="timeout")
    assert out["success"] is False and out["metadata"]["timed_out"] is True and out["error"] == "timeout"
    assert any("run timeout" in w for w in out["warnings"])


def test_when_claude_code_cannot_start_the_agent_answers_500_with_the_reason(make_agent):
    resp = make_agent(CLAUDE_CLI_PATH="/nonexistent/claude").post(
        "/invocations", json={"input": {"prompt": "hello", "actor_id": "hank", "session_id": "no-cli"}})
    assert resp.status_code == 500
    assert resp.json()["error"] == "Claude Code failed" and "/nonexistent/claude" in resp.json()["details"]


@pytest.mark.slow
def test_claude_code_runs_in_bedrock_mode_with_the_configured_token_limits(make_agent, emulator):
    marker = f"limits-check-{uuid.uuid4().hex[:8]}"
    out = invoke(make_agent(CLAUDE_CODE_MAX_OUTPUT_TOKENS="2000", MAX_THINKING_TOKENS="1500"),
                 prompt=marker, actor_id="jack", session_id="limits")
    assert out["success"] is True
    log = emulator.state_dir / "bedrock" / "invocations.jsonl"
    (entry,) = [e for e in map(json.loads, log.read_text().splitlines()) if marker in e["text"]]
    assert entry["model_id"] == "local-stand-in" and entry["max_tokens"] == 2000
    assert entry["thinking"]["budget_tokens"] == 1500


def _records(emulator, memory_id: str, namespace: str) -> list[str]:
    resp = emulator.client("bedrock-agentcore").list_memory_records(memoryId=memory_id, namespace=namespace)
    return [r["content"]["text"] for r in resp["memoryRecordSummaries"]]


@pytest.mark.slow
def test_long_term_records_of_an_actor_reach_its_later_sessions_and_no_one_else(
        make_agent, emulator, agent_resources):
    import time

    agent = make_agent()
    invoke(agent, prompt="I prefer tabs over spaces. My project is called Zephyr.", actor_id="kate",
           session_id="first-session")
    deadline = time.monotonic() + 30
    while not (_records(emulator, agent_resources["memory_id"], "coding/user/kate/preferences")
               and _records(emulator, agent_resources["memory_id"], "coding/user/kate/facts")):
        assert time.monotonic() < deadline, "the emulator extracted no long-term records"
        time.sleep(0.3)
    question = "what is my project called, and which indentation do I like?"
    later = invoke(agent, prompt=question, actor_id="kate", session_id="second-session")
    ctx = later["metadata"]["memory_context"]
    assert ctx["turns"] == 0 and ctx["preferences"] >= 1 and ctx["facts"] >= 1
    assert "tabs" in later["result"] and "Zephyr" in later["result"]
    stranger = invoke(agent, prompt=question, actor_id="liam", session_id="second-session")
    assert "tabs" not in stranger["result"] and "Zephyr" not in stranger["result"]


def test_a_fault_of_the_agent_itself_is_a_500_in_the_contracts_shape(tmp_path):
    from fastapi.testclient import TestClient

    from agent.app import create_app
    from agent.settings import AgentSettings

    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the workspace root should be")
    app = create_app(AgentSettings.from_env({"WORKSPACE_ROOT": str(blocked)}), clients=(None, None, None))
    with TestClient(app) as client:
        resp = client.post("/invocations", json={"input": {"prompt": "hi"}})
        assert resp.status_code == 500 and resp.json()["error"] == "agent failure"
        assert "not-a-directory" in resp.json()["details"]
        with client.stream("POST", "/invocations", json={"input": {"prompt": "hi"}},
                           headers={"Accept": "text/event-stream"}) as streamed:
            events = sse_events(streamed.iter_lines())
        assert events[-1][0] == "error" and events[-1][1]["error"] == "agent failure"
        assert client.get("/ping").json()["status"] == "Healthy"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root is refused bypassPermissions")
def test_bypass_permissions_as_root_is_a_400_saying_why(bare_agent):
    resp = bare_agent.post("/invocations", json={"input": {"prompt": "hi", "permission_mode": "bypassPermissions"}})
    assert resp.status_code == 400 and resp.json()["field"] == "input.permission_mode"
    assert "root" in resp.json()["details"]


def test_each_step_is_logged_as_a_json_line_for_the_timeline(make_agent, capsys):
    client = make_agent()
    output = invoke(client, prompt="create hello.py that prints hello", actor_id="timeline-actor",
                    session_id="timeline-session")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"agent_event"')]
    kinds = [doc["agent_event"] for doc in lines]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert "status" in kinds and "tool_use" in kinds and "tool_result" in kinds
    assert {doc["invocation_id"] for doc in lines} == {lines[0]["invocation_id"]}
    assert all(doc["actor_id"] == "timeline-actor" and doc["session_id"] == "timeline-session" for doc in lines)
    times = [doc["time"] for doc in lines]
    assert times == sorted(times)
    write = next(doc for doc in lines if doc["agent_event"] == "tool_use")
    assert write["tool"] == "Write" and write["target"] == "hello.py"
    assert lines[-1]["success"] is True and lines[-1]["duration_ms"] == output["metadata"]["duration_ms"]


def test_progress_names_workspace_files_relative_to_the_workspace():
    from pathlib import Path

    from agent.runner import tool_target

    workspace = Path("/home/agent/workspaces/alice/s1")
    assert tool_target({"file_path": "/home/agent/workspaces/alice/s1/src/app.py"}, workspace) == "src/app.py"
    assert tool_target({"file_path": "/etc/hosts"}, workspace) == "/etc/hosts"
    assert tool_target({"command": "ls -la"}, workspace) == "ls -la"


@pytest.mark.slow
def test_a_fresh_process_continues_the_sessions_claude_conversation_from_s3(make_agent, emulator, agent_resources,
                                                                             tmp_path):
    agent = make_agent()
    first = invoke(agent, prompt=HELLO, actor_id="carol", session_id="project-resume")
    assert first["metadata"]["resumed"] is False and first["metadata"]["resumed_from"] is None
    claude_id = first["metadata"]["claude_session_id"]
    assert claude_id

    # A new microVM: another workspace root and another home, so nothing of the first is on disk.
    agent2 = make_agent(WORKSPACE_ROOT=str(tmp_path / "second-vm" / "workspaces"),
                        HOME=str(tmp_path / "second-vm" / "home"))
    again = invoke(agent2, prompt="What did I ask you before?", actor_id="carol", session_id="project-resume")
    meta = again["metadata"]
    assert meta["resumed"] is True and meta["resumed_from"] == claude_id
    assert meta["claude_session_id"] == claude_id  # the same Claude conversation, not a copy
    assert meta["transcript_store"].startswith(f"s3://{agent_resources['bucket']}/sessions/carol/project-resume/.claude/")
    # Quoted from the transcript Claude Code resumed, not from memory's summary of it.
    assert f'Earlier in this conversation you asked (quoted from the messages I received):\n1. "{HELLO}"' \
        in again["result"]
    # Claude Code keeps a resumed conversation's first system prompt, so this turn's memory came with the prompt.
    assert meta["memory_context"]["turns"] >= 2 and "Memory context I was given:" in again["result"]
    # Claude Code's transcript is kept where it would have written it, for a look inside the session.
    transcripts = list((tmp_path / "second-vm" / "home" / ".claude" / "projects").glob(f"*/{claude_id}.jsonl"))
    assert transcripts and HELLO in transcripts[0].read_text()

    other = invoke(agent2, prompt="What did I ask you before?", actor_id="dave", session_id="project-resume")
    assert other["metadata"]["resumed"] is False and other["metadata"]["claude_session_id"] != claude_id


@pytest.mark.slow
def test_a_conversation_whose_transcript_is_gone_starts_afresh_and_says_so(make_agent, emulator, agent_resources,
                                                                           tmp_path):
    agent = make_agent()
    first = invoke(agent, prompt="hello", actor_id="gina", session_id="lost-transcript")
    s3, bucket = emulator.client("s3"), agent_resources["bucket"]
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="sessions/gina/lost-transcript/.claude/transcripts/")["Contents"]:
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    agent2 = make_agent(WORKSPACE_ROOT=str(tmp_path / "vm2" / "workspaces"), HOME=str(tmp_path / "vm2" / "home"))
    again = invoke(agent2, prompt="hello again", actor_id="gina", session_id="lost-transcript")
    assert again["success"] and again["metadata"]["resumed"] is False
    assert again["metadata"]["claude_session_id"] != first["metadata"]["claude_session_id"]
    assert any("starting a new conversation" in w for w in again["warnings"])
