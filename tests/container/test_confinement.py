"""The agent's file tools stay in the caller's workspace, and one poisoned turn never breaks a session.

Both run the real Claude Code CLI against the stand-in model, whose cues turn "create <path> that
prints X" into a Write call and "show <path>" into a Read call (emulator/bedrock/standin.py).
"""
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from agent.workspace import confine

from .conftest import invoke


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_file_tools_cannot_read_or_write_another_actors_workspace_or_outside_the_root(make_agent, tmp_path):
    client = make_agent()
    root = tmp_path / "workspaces"
    alice, mallory = f"alice-{uuid.uuid4().hex[:6]}", f"mallory-{uuid.uuid4().hex[:6]}"
    out = invoke(client, prompt="create secret.txt that prints alice-private-words", actor_id=alice, session_id="s1")
    assert (root / alice / "s1" / "secret.txt").read_text() == "alice-private-words\n", out
    before = _files(tmp_path)
    climb = f"x/../../../{alice}/s1"
    read = invoke(client, prompt=f"show {climb}/secret.txt", actor_id=mallory, session_id="m1")
    planted = invoke(client, prompt=f"create {climb}/planted.py that prints pwned", actor_id=mallory,
                     session_id="m1")
    escaped = invoke(client, prompt="create x/../../../../escaped.py that prints out", actor_id=mallory,
                     session_id="m1")
    # The same cue inside the workspace works: the refusals above are the confinement's, not the cue's.
    own = invoke(client, prompt="create notes/own.py that prints mine", actor_id=mallory, session_id="m1")

    assert "alice-private-words" not in read["result"], read
    assert any(w.startswith("refused Read") for w in read["warnings"]), read["warnings"]
    for answer in (planted, escaped):
        assert any(w.startswith("refused Write") for w in answer["warnings"]), answer["warnings"]
    assert (root / mallory / "m1" / "notes" / "own.py").read_text() == "print(\"mine\")\n", own
    new = _files(tmp_path) - before
    mine = root / mallory / "m1"
    # Beside the workspace only the agent's own bookkeeping (manifests, conversation pointers) and
    # Claude Code's state under HOME may appear.
    stray = [p for p in new if not (p.is_relative_to(mine) or p.is_relative_to(root / ".manifests")
                                    or p.is_relative_to(root / ".conversations") or p.is_relative_to(tmp_path / "home"))]
    assert stray == []
    assert not (root / alice / "s1" / "planted.py").exists() and not (tmp_path / "escaped.py").exists()


@pytest.mark.parametrize("tool,tool_input", [
    ("Read", {"file_path": "../other/secret.txt"}),
    ("Read", {"file_path": "/etc/passwd"}),
    ("Read", {"file_path": "~/.bashrc"}),
    ("Write", {"file_path": "link/x.py", "content": ""}),  # a symlink in the workspace pointing out
    ("Edit", {"file_path": "../../x", "old_string": "a", "new_string": "b"}),
    ("NotebookEdit", {"notebook_path": "/tmp/n.ipynb", "new_source": ""}),
    ("Glob", {"pattern": "../**/*"}),
    ("Glob", {"pattern": "*", "path": "/"}),
    ("Grep", {"pattern": "secret", "path": ".."}),
    ("Bash", {"command": "cat ../other/secret.txt"}),
    ("Bash", {"command": "cat /etc/passwd"}),
    ("Bash", {"command": "echo x > /usr/local/bin/x"}),
    ("Bash", {"command": "ls ~"}),
    ("Bash", {"command": "cd && ls"}),
    ("Bash", {"command": "cp a.txt --target-directory=/root"}),
    ("Bash", {"command": 'echo "unbalanced'}),
])
def test_tool_calls_naming_paths_outside_the_workspace_are_refused(tmp_path, tool, tool_input):
    ws = tmp_path / "root" / "me" / "s1"
    ws.mkdir(parents=True)
    (ws / "link").symlink_to(tmp_path)
    assert confine(tool, tool_input, ws) is not None


@pytest.mark.parametrize("tool,tool_input", [
    ("Read", {"file_path": "hello.py"}),
    ("Write", {"file_path": "{ws}/src/app.py", "content": ""}),
    ("Glob", {"pattern": "**/*.py"}),
    ("Grep", {"pattern": "x", "path": "src"}),
    ("Bash", {"command": "ls -la"}),
    ("Bash", {"command": "/usr/bin/python3 hello.py > out.txt 2>/dev/null"}),
    ("Bash", {"command": "cat {ws}/hello.py | wc -l"}),
    ("TodoWrite", {"todos": []}),
])
def test_tool_calls_inside_the_workspace_are_left_alone(tmp_path, tool, tool_input):
    ws = tmp_path / "root" / "me" / "s1"
    ws.mkdir(parents=True)
    filled = {k: v.replace("{ws}", str(ws)) if isinstance(v, str) else v for k, v in tool_input.items()}
    assert confine(tool, filled, ws) is None


def test_a_turn_holding_a_nul_byte_in_memory_does_not_break_the_session(make_agent, emulator, agent_resources):
    client = make_agent()
    actor, session = f"poison-{uuid.uuid4().hex[:6]}", "s1"
    # Written as another client (or an older agent) could: straight through boto3, not through the agent.
    emulator.client("bedrock-agentcore").create_event(
        memoryId=agent_resources["memory_id"], actorId=actor, sessionId=session,
        eventTimestamp=dt.datetime.now(dt.timezone.utc),
        payload=[{"conversational": {"role": "USER", "content": {"text": "remember a\x00b"}}},
                 {"conversational": {"role": "ASSISTANT", "content": {"text": "ok\x00"}}}])
    for _ in range(2):  # the second call reads both the poisoned turn and the first call's own
        out = invoke(client, prompt="hi", actor_id=actor, session_id=session)
        assert out["success"] is True, out
        assert "remember ab" in out["result"]  # the turn reached the model, without its NUL
        assert any("NUL bytes" in w for w in out["warnings"]), out["warnings"]
