"""helpers.invoke: session ids AWS accepts, streamed progress, never a second attempt, errors that say what to do."""
from __future__ import annotations

import http.server
import json
import re
import threading
import uuid

import pytest

from helpers import chat, config, image, invoke, runtime
from helpers.errors import InvocationError
from tests.emulator.fixtures.runtime import FAKE_AGENT_DIR, ROLE_ARN


def test_runtime_session_ids_are_deterministic_valid_and_distinct():
    rsid = invoke.runtime_session_id("alice", "project-1")
    assert rsid == invoke.runtime_session_id("alice", "project-1")
    assert 33 <= len(rsid) <= 100 and re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9-_]*", rsid)
    assert rsid.startswith("alice-project-1-")
    # Pairs that read alike, or that swap parts, still differ.
    ids = {invoke.runtime_session_id(a, s) for a, s in
           [("alice", "project-1"), ("bob", "project-1"), ("alice", "project 1"), ("project-1", "alice"),
            ("a" * 300, "s" * 300), ("a" * 300, "s" * 299)]}
    assert len(ids) == 6 and all(33 <= len(i) <= 100 for i in ids)
    with pytest.raises(InvocationError, match="actor_id"):
        invoke.runtime_session_id("", "x")


def test_the_invoke_client_makes_one_attempt_and_outwaits_the_agent():
    cfg = invoke.INVOKE_CONFIG
    assert cfg.retries["total_max_attempts"] == 1
    assert cfg.read_timeout > runtime.AGENT_RUN_TIMEOUT_SECONDS and cfg.read_timeout > 15 * 60


def test_an_invocation_that_fails_with_a_server_error_is_sent_only_once(monkeypatch, tmp_path):
    hits = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"message": "boom"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("x-amzn-ErrorType", "InternalServerException")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        settings = config.load(target="local", state_dir=tmp_path).with_(endpoint_url=endpoint)
        monkeypatch.setattr(invoke.aws, "ensure_emulator", lambda settings: {})
        arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/x_rt-abcdefghij"
        with pytest.raises(InvocationError, match="InternalServerException"):
            invoke.invoke(settings, "do it", "alice", "s1", runtime_arn=arn, progress=False)
    finally:
        server.shutdown()
    assert len(hits) == 1


def test_only_a_retryable_conflict_is_retried_with_progress_until_the_call_reaches_the_agent(monkeypatch, tmp_path,
                                                                                           capsys):
    hits = []

    class Conflicting(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if len(hits) <= 2:  # the session is still being torn down: nothing reached the agent
                status, kind, body = 409, "RetryableConflictException", b'{"message": "session terminating"}'
            else:
                status, kind, body = 200, None, json.dumps({"output": {"success": True, "result": "ran once"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if kind:
                self.send_header("x-amzn-ErrorType", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Conflicting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(invoke, "CONFLICT_RETRY_DELAYS", (0.05, 0.05, 0.05))
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        settings = config.load(target="local", state_dir=tmp_path).with_(endpoint_url=endpoint)
        monkeypatch.setattr(invoke.aws, "ensure_emulator", lambda settings: {})
        arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/x_rt-abcdefghij"
        out = invoke.invoke(settings, "do it", "alice", "s1", runtime_arn=arn, stream=False)
        assert out.result == "ran once" and len(hits) == 3
        assert "RetryableConflictException); retry 1 of 3" in capsys.readouterr().err
        hits.clear()
        monkeypatch.setattr(invoke, "CONFLICT_RETRY_DELAYS", (0.05,))
        with pytest.raises(InvocationError, match="RetryableConflictException"):  # it gives up, and says so
            invoke.invoke(settings, "do it", "alice", "s1", runtime_arn=arn, stream=False, progress=False)
        assert len(hits) == 2
    finally:
        server.shutdown()


def test_invoke_streams_progress_and_returns_the_output(deployed, capsys):
    out = invoke.invoke(deployed, "hello there", "alice", f"s-{uuid.uuid4().hex[:6]}")
    assert out["result"] == "echo: hello there" and out.result == "echo: hello there"
    assert [e["type"] for e in out.events] == ["progress", "progress", "progress", "output"]
    assert 0 < out.first_event_seconds < out.seconds
    assert "Agent (alice/" in capsys.readouterr().err  # the progress line, outside a notebook
    assert out.runtime_session_id == invoke.runtime_session_id("alice", out["session_id"])


def test_the_same_session_continues_and_another_actor_gets_its_own(deployed):
    session = f"s-{uuid.uuid4().hex[:6]}"
    first = invoke.invoke(deployed, "one", "alice", session, progress=False)
    second = invoke.invoke(deployed, "two", "alice", session, stream=False, progress=False)
    other = invoke.invoke(deployed, "three", "bob", session, progress=False)
    assert first["metadata"]["pid"] == second["metadata"]["pid"] != other["metadata"]["pid"]
    assert (second["metadata"]["num_turns"], other["metadata"]["num_turns"]) == (2, 1)


def test_an_agent_failure_is_an_invocation_error_naming_the_session(deployed):
    with pytest.raises(InvocationError, match="RuntimeClientError") as err:
        invoke.invoke(deployed, "fail", "alice", "failing", progress=False)
    assert invoke.runtime_session_id("alice", "failing") in str(err.value)
    with pytest.raises(InvocationError, match="died mid-stream"):
        invoke.invoke(deployed, "die mid-stream", "alice", "dying", progress=False)


def test_stop_session_ends_the_agent_and_the_next_call_starts_afresh(deployed, capsys):
    session = f"s-{uuid.uuid4().hex[:6]}"
    invoke.invoke(deployed, "one", "alice", session, progress=False)
    assert invoke.stop_session(deployed, "alice", session) is True
    assert invoke.stop_session(deployed, "alice", session) is False  # being torn down: nothing left to stop
    # At once, while the emulator (as AWS) still tears the session down: the 409 is ridden out.
    assert invoke.invoke(deployed, "two", "alice", session)["metadata"]["num_turns"] == 1
    assert "RetryableConflictException" in capsys.readouterr().err
    assert invoke.stop_session(deployed, "nobody", session) is False


def test_after_an_update_a_session_started_on_the_old_version_is_restarted_on_the_new_one(emulator, tmp_path):
    tag = uuid.uuid4().hex[:8]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WORKSHOP_TARGET", "local")
        env.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
        env.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "state"))
        settings = config.load(runtime_name=f"upd_rt_{tag}")
    emulator.client("s3").create_bucket(Bucket=f"upd-{tag}")
    repo = emulator.client("ecr").create_repository(repositoryName=f"upd-{tag}")["repository"]["repositoryUri"]
    uri = image.build_and_push(settings, "local", context_dir=FAKE_AGENT_DIR, repository_uri=repo,
                               bucket=f"upd-{tag}").image_uri
    deploy = lambda hello: runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=f"upd-{tag}",
                                                         environment={"HELLO": hello}, progress=False)
    try:
        first = deploy("old")
        kept, renewed = f"kept-{tag}", f"renewed-{tag}"
        for session in (kept, renewed):
            assert invoke.invoke(settings, "env HELLO", "alice", session, progress=False).result == "old"
        assert invoke.session_version(settings, first.agent_runtime_arn, "alice", renewed) == first.agent_runtime_version
        updated = deploy("new")
        assert updated.action == "updated" and "keep running" in updated.note
        # Opting out shows what AWS does: the live session still runs the code it started with.
        assert invoke.invoke(settings, "env HELLO", "alice", kept, progress=False,
                             restart_outdated=False).result == "old"
        assert invoke.session_version(settings, first.agent_runtime_arn, "alice", kept) == first.agent_runtime_version
        out = invoke.invoke(settings, "env HELLO", "alice", renewed, progress=False)
        assert out.result == "new", "a session started on the old version kept running it"
        assert invoke.session_version(settings, first.agent_runtime_arn, "alice", renewed) == \
            updated.agent_runtime_version
        # The chat goes through the same helper, and says what happened in the reply's progress lines.
        chatting = chat.ChatSession(chat.invoker_for(settings), "alice", f"chat-{tag}")
        assert chatting.send("env HELLO").text == "new"
        deploy("newer")
        reply = chatting.send("env HELLO")
        assert reply.text == "newer"
        assert any("started on version" in line and "runs the new version" in line for line in reply.progress)
    finally:
        runtime.delete_runtime(settings, progress=False)


def test_run_command_returns_stdout_stderr_and_exit_code_of_a_command_in_the_session(deployed):
    session = f"s-{uuid.uuid4().hex[:6]}"
    invoke.invoke(deployed, "one", "alice", session, progress=False)
    result = invoke.run_command(deployed, "alice", session, "echo in-the-session; echo oops >&2; exit 2")
    assert (result.stdout, result.stderr, result.exit_code, result.status) == \
        ("in-the-session\n", "oops\n", 2, "COMPLETED")
    assert not result.ok and "[exit code 2, COMPLETED" in repr(result) and "$ echo in-the-session" in repr(result)


def test_run_command_in_a_session_without_a_microvm_says_to_invoke_first(deployed):
    with pytest.raises(InvocationError, match="ResourceNotFoundException") as err:
        invoke.run_command(deployed, "nobody", f"s-{uuid.uuid4().hex[:6]}", "ls")
    assert "invoke the agent in it first" in err.value.hint


def test_session_files_lists_the_workspace_and_claude_codes_transcripts_inside_the_session(deployed):
    session = f"s-{uuid.uuid4().hex[:6]}"
    invoke.invoke(deployed, "write alice/" + session + "/notes.txt", "alice", session, progress=False)
    listing = invoke.session_files(deployed, "alice", session)
    assert listing.ok and "notes.txt" in listing.stdout and "== Claude Code transcripts" in listing.stdout


@pytest.mark.parametrize("actor", ["a/b", "..", ""])
def test_session_files_refuses_ids_that_cannot_name_a_folder(actor):
    with pytest.raises(InvocationError):
        invoke.session_files_command(actor, "s1")


def test_a_multi_line_text_event_is_described_by_its_first_line_not_run_together():
    doc = {"type": "text", "text": "Bash ls -la:\n```\ntotal 8\n-rw-r--r-- 1 u u 21 hello.py\n```"}
    assert invoke.describe_event("text", doc) == "Bash ls -la: (+4 more lines)"
    assert "earlier messages" in invoke.describe_event("memory", {"type": "memory", "turns": 2})
