"""The timeline: model turns and tool calls with their start and duration, from the agent's progress events."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from helpers.logs import event_detail, timeline, timeline_plot  # noqa: E402


def _ev(kind, t, **extra):
    return {"agent_event": kind, "time": 1000.0 + t, "invocation_id": extra.pop("inv", "a"),
            "actor_id": "alice", "session_id": "s", **extra}


EVENTS = [
    _ev("started", 0.0, prompt="create hello.py"),
    _ev("status", 0.5, message="Claude Code started"),
    _ev("tool_use", 2.5, tool="Write", target="hello.py", id="t1"),
    _ev("tool_result", 2.75, tool="Write", id="t1"),
    _ev("text", 4.0, text="Created hello.py"),
    _ev("finished", 4.5),
]


def test_model_turns_and_tool_calls_get_their_own_start_and_duration():
    rows = timeline(EVENTS)
    steps = [(r["step"], r["detail"], r["start_s"], r["duration_s"]) for r in rows]
    assert ("prepare", "restore files, read memory, start Claude Code", 0.0, 0.5) in steps
    assert ("model turn", "turn 1", 0.5, 2.0) in steps
    assert ("tool Write", "hello.py", 2.5, 0.25) in steps
    assert ("model turn", "turn 2", 2.75, 1.25) in steps
    assert ("save", "upload changed files, save the turn to memory", 4.0, 0.5) in steps
    assert ("whole invocation", "prompt: create hello.py", 0.0, 4.5) in steps


def test_the_prompt_heads_its_invocation_s_steps_once():
    rows = timeline(EVENTS)
    assert rows[0]["step"] == "whole invocation" and "prompt" not in rows[0]
    assert sum("create hello.py" in r["detail"] for r in rows) == 1


def test_invocations_are_numbered_in_order_and_timed_from_their_own_start():
    second = [dict(e, invocation_id="b", time=e["time"] + 100) for e in EVENTS]
    rows = timeline(EVENTS + second)
    assert {r["invocation"] for r in rows} == {1, 2}
    assert [r["start_s"] for r in rows if r["invocation"] == 2] == [r["start_s"] for r in rows if r["invocation"] == 1]


def test_the_plot_has_one_bar_per_step():
    import pandas as pd

    df = pd.DataFrame(timeline(EVENTS))
    fig = timeline_plot(df)
    assert len(fig.axes[0].patches) == len(df[df["step"] != "whole invocation"])


def test_log_events_keep_the_newest_lines_when_there_are_more_than_the_limit(local_env, monkeypatch):
    import time as _time

    from helpers import config, logs

    group = "/aws/bedrock-agentcore/runtimes/tail_test-0123456789-DEFAULT"
    client = local_env.client("logs")
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(_time.time() * 1000) - 600_000
    total = 10_050  # more than one page of FilterLogEvents (10,000), so the newest lines are on the last page
    for start in (0, 10_000):
        client.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": now + i * 10, "message": f"line {i}"} for i in range(start, min(start + 10_000, total))])
    monkeypatch.setattr(logs, "log_group", lambda settings: group)
    tail = logs.log_events(config.load(), limit=100)
    assert [e["message"] for e in tail] == [f"line {i}" for i in range(total - 100, total)]


def test_logs_df_shows_only_the_agent_s_own_events_of_the_session_asked_for(local_env, monkeypatch):
    import json
    import time as _time

    from helpers import config, logs

    group = "/aws/bedrock-agentcore/runtimes/events_test-0123456789-DEFAULT"
    client = local_env.client("logs")
    client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName="s")
    now = _time.time() - 60
    lines = ['INFO:     127.0.0.1:5 - "POST /invocations HTTP/1.1" 200 OK',
             "2026-12-02 07:41:27,887 INFO claude_agent_sdk Using bundled Claude Code CLI"]
    lines += [json.dumps(dict(e, time=now + i)) for i, e in enumerate(EVENTS)]
    lines += [json.dumps(dict(EVENTS[0], session_id="another", time=now + 9))]
    client.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": int((now + i) * 1000), "message": m} for i, m in enumerate(lines)])
    monkeypatch.setattr(logs, "log_group", lambda settings: group)
    df = logs.logs_df(config.load(), "alice", "s")
    assert list(df.columns) == ["time", "invocation", "event", "detail"]
    assert list(df["event"]) == [e["agent_event"] for e in EVENTS]
    assert list(df["detail"])[:3] == ["prompt: create hello.py", "Claude Code started", "Write hello.py"]
    assert set(df["invocation"]) == {1}


def test_an_event_s_detail_keeps_its_text_whole_with_its_line_breaks():
    text = "Bash ls -la:\n```\n-rw-r--r-- 1 root root 21 hello.py\n```"
    assert event_detail({"agent_event": "text", "text": text}) == text
    assert event_detail({"agent_event": "tool_result", "tool": "Bash", "is_error": True}) == "Bash failed"
    assert event_detail({"agent_event": "something_new", "time": 1, "a": 2}) == "a=2"
