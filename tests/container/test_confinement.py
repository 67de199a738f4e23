"""The agent's file tools stay in the caller's workspace, and one poisoned turn never breaks a session.

The same rules are proved end to end, through the real Claude Code CLI and a real agent process, by
proof/agent_input.py (run by tests/proof in `make test`): another actor's files read and written through
`x/../../../alice/...` paths, files outside the workspace root, NUL bytes in memory.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import uuid
from pathlib import Path

import pytest

from agent.workspace import confine, isolated_command, probe_isolation

from .conftest import invoke


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


def test_bash_in_its_namespace_sees_and_changes_only_its_own_workspace(tmp_path):
    root, home = tmp_path / "root", tmp_path / "home"
    mine, theirs = root / "me" / "s1", root / "alice" / "s1"
    for d in (mine, theirs, home):
        d.mkdir(parents=True)
    (theirs / "secret.txt").write_text("alice-private-words")
    (home / ".aws-like").write_text("home-private-words")
    problem = probe_isolation(root, [home])
    if problem:
        pytest.skip(f"this machine cannot isolate Bash: {problem}")
    # What the path check cannot see: paths built at run time.
    command = ("ls -R " + str(root) + "; cat $(printf '%s' " + str(theirs) + ")/secret.txt; "
               "cat \"$(dirname $(pwd))/../alice/s1/secret.txt\"; cat " + str(home) + "/.aws-like; "
               "python3 -c \"open('/'+'" + str(tmp_path)[1:] + "/escaped.txt','w').write('x')\"; "
               "echo x > " + str(root) + "/planted.txt; echo x > " + str(theirs) + "/planted.txt; "
               "echo x > /usr/local/planted.txt; echo mine > own.txt; mkdir -p sub && echo deep > sub/f.txt; pwd")
    run = subprocess.run(["sh", "-c", isolated_command(command, mine, [root, home])], cwd=mine,
                         capture_output=True, text=True, timeout=30)
    assert "private-words" not in run.stdout
    assert "alice" not in run.stdout.split(str(mine))[0]  # the listing of the root shows only this actor
    assert run.stdout.strip().endswith(str(mine))  # it ran where Claude Code's shell was
    assert (mine / "own.txt").read_text() == "mine\n" and (mine / "sub" / "f.txt").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [".aws-like", "f.txt", "own.txt",
                                                                         "secret.txt"]
    assert not Path("/usr/local/planted.txt").exists()
