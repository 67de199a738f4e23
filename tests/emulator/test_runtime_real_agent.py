"""The real agent (container/) on the emulator's runtime: files and memory carry over a session, not across actors."""
from __future__ import annotations

import time

import pytest

from tests.support.emulator import EmulatorProcess

from helpers import invoke, runtime
from helpers.errors import InvocationError
from tests.emulator.fixtures.workshop import deploy, snapshot_role


@pytest.mark.slow
def test_the_agent_keeps_a_sessions_files_and_turns_and_a_second_actor_sees_none(local_env):
    # The workshop's own stack: the agent runs as its execution role, and IAM is enforced.
    settings = deploy().settings
    try:
        _scenario(settings)
    finally:
        runtime.delete_runtime(settings, progress=False)  # stops the sessions' agents


def _scenario(settings) -> None:

    first = invoke.invoke(settings, "Create a file hello.py that prints hello world", "alice", "project-1",
                          progress=False)
    assert first["success"], first
    uploaded = [f["file_name"] for f in first["metadata"]["uploaded_files"]]
    assert any(name.endswith("hello.py") for name in uploaded), first["metadata"]
    assert any(e["type"] == "tool_use" and e.get("tool") == "Write" for e in first.events)

    # AgentCore reclaims an idle session's microVM; the next call gets a fresh one.
    assert invoke.stop_session(settings, "alice", "project-1")
    second = invoke.invoke(settings, "What files are in the workspace?", "alice", "project-1", progress=False)
    restored = [e for e in second.events if e["type"] == "files_restored"]
    assert restored and any(str(f).endswith("hello.py") for f in restored[0]["files"]), second.events
    assert second["metadata"]["memory_context"]["turns"] >= 2  # the first turn, prompt and answer
    # The fresh microVM continued the first call's Claude conversation, rebuilt from S3.
    assert second["metadata"]["resumed_from"] == first["metadata"]["claude_session_id"]
    assert "hello.py" in second["result"]

    other = invoke.invoke(settings, "What files are in the workspace?", "bob", "project-1", progress=False)
    assert not [e for e in other.events if e["type"] == "files_restored"]
    assert other["metadata"]["memory_context"]["turns"] == 0
    assert "hello.py" not in other["result"]


HELLO = "Create a file hello.py that prints hello world"
RECALL = "What did I ask you before?"


@pytest.mark.slow
def test_the_conversation_resumes_after_stop_the_idle_reaper_and_an_emulator_restart(tmp_path, monkeypatch):
    state = tmp_path / "emulator"
    emu = EmulatorProcess(state, env={"EMULATOR_IDLE_TIMEOUT": "2", "EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    monkeypatch.setenv("WORKSHOP_TARGET", "local")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "workshop"))
    try:
        # The workshop's own stack, so the agent runs as its execution role with IAM enforced.
        workshop = deploy(session_storage="/mnt/workspace")
        settings, iam = workshop.settings, emu.client("iam")
        first = invoke.invoke(settings, HELLO, "erin", "resume-1", progress=False)
        claude_id = first["metadata"]["claude_session_id"]
        assert first["success"] and claude_id and first["metadata"]["resumed"] is False
        assert first["metadata"]["session_storage"]  # the agent found the mount

        def continues(label: str):
            out = invoke.invoke(settings, RECALL, "erin", "resume-1", progress=False)
            meta = out["metadata"]
            assert (meta["resumed_from"], meta["claude_session_id"]) == (claude_id, claude_id), label
            assert f'1. "{HELLO}"' in out["result"], label
            return out

        assert invoke.stop_session(settings, "erin", "resume-1")
        continues("after StopRuntimeSession")

        # Idle for longer than the idle timeout: the reaper reclaims the microVM.
        time.sleep(5)
        with pytest.raises(InvocationError, match="ResourceNotFoundException"):
            invoke.run_command(settings, "erin", "resume-1", "true")
        continues("after the idle reaper")
        role = snapshot_role(iam, workshop.role_arn)
    finally:
        emu.stop()

    emu = EmulatorProcess(state, port=emu.port, env={"EMULATOR_IDLE_TIMEOUT": "2"}).start()
    try:
        # The restarted emulator still has the role the runtime names, with its policies, as AWS would.
        assert snapshot_role(emu.client("iam"), workshop.role_arn) == role
        continues("after an emulator restart")
        listing = invoke.run_command(settings, "erin", "resume-1",
                                     'ls "$SESSION_STORAGE_PATH/workspaces/erin/resume-1"; '
                                     'ls "$SESSION_STORAGE_PATH"/claude/projects/*/')
        assert listing.ok and "hello.py" in listing.stdout and f"{claude_id}.jsonl" in listing.stdout
    finally:
        runtime.delete_runtime(settings, progress=False)
        emu.stop()
