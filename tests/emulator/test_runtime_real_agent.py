"""The real agent (container/) on the emulator's runtime: files and memory carry over a session, not across actors."""
from __future__ import annotations

import pytest

from helpers import invoke, runtime
from tests.emulator.fixtures.workshop import deploy


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
    assert "hello.py" in second["result"]

    other = invoke.invoke(settings, "What files are in the workspace?", "bob", "project-1", progress=False)
    assert not [e for e in other.events if e["type"] == "files_restored"]
    assert other["metadata"]["memory_context"]["turns"] == 0
    assert "hello.py" not in other["result"]
