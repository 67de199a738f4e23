"""The runtime's CloudWatch logs as tables, and a timeline of where an invocation's time went.

The agent writes one JSON line per progress event (`{"agent_event": ..., "time": ...}`) to its
standard output, which AgentCore Runtime (and the emulator) ships to CloudWatch Logs. The timeline
is built from those lines, so it works after a kernel restart and on AWS alike.
"""
from __future__ import annotations

import collections
import json
import time

from botocore.exceptions import ClientError

from . import aws
from .config import Settings
from .deployment import Deployment
from .errors import AgentRuntimeError, aws_error_code


# AgentCore Runtime creates one log group per runtime endpoint, outside any stack:
# /aws/bedrock-agentcore/runtimes/<runtime id>-<endpoint name> (the stack's role grants this prefix).
RUNTIME_LOG_GROUP_PREFIX = "/aws/bedrock-agentcore/runtimes/"


def runtime_log_group(runtime_id: str, endpoint: str = "DEFAULT") -> str:
    """The log group of one endpoint of a runtime."""
    return f"{RUNTIME_LOG_GROUP_PREFIX}{runtime_id}-{endpoint}"


def log_group(settings: Settings | Deployment) -> str:
    """The log group of the runtime's DEFAULT endpoint (a Deployment's, if given one)."""
    from . import runtime

    if isinstance(settings, Deployment):
        return settings.log_group
    found = runtime.find_runtime(settings)
    if found is None:
        raise AgentRuntimeError(f"No AgentCore runtime named {settings.runtime_name}, so no logs to read.",
                                hint="Create it first (notebook 04_create_runtime).")
    return runtime_log_group(found["agentRuntimeId"])


def log_events(settings: Settings | Deployment, *, minutes: float = 60, limit: int = 1000,
               pattern: str | None = None) -> list[dict]:
    """Log events of the runtime's DEFAULT endpoint from the last `minutes`, oldest first (paginated)."""
    group = log_group(settings)
    client = aws.client("logs", settings.settings if isinstance(settings, Deployment) else settings)
    kwargs = {"logGroupName": group, "startTime": int((time.time() - minutes * 60) * 1000)}
    if pattern:
        kwargs["filterPattern"] = pattern
    # Pages come oldest first: read them all and keep the newest `limit` (a tail, not a head).
    events: collections.deque = collections.deque(maxlen=limit)
    try:
        for page in client.get_paginator("filter_log_events").paginate(**kwargs):
            events.extend(page.get("events", []))
    except ClientError as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            return []  # no invocation has written anything yet
        raise
    return sorted(events, key=lambda e: (e["timestamp"], e.get("eventId", "")))


def logs_df(settings: Settings | Deployment, actor_id: str, session_id: str, *, minutes: float = 240,
            tail: int = 50):
    """The agent's own events for one actor and session, the last `tail` of them: time, invocation, event, detail.

    Read from the JSON line the agent logs for each step; the log group's other lines (the web server's
    access log, the SDK's chatter) and other sessions' events are left out.
    """
    import pandas as pd

    events = agent_events(settings, actor_id, session_id, minutes=minutes)
    numbers: dict[str, int] = {}
    rows = []
    for doc in events:
        number = numbers.setdefault(doc.get("invocation_id", "?"), len(numbers) + 1)
        rows.append({"time": pd.Timestamp(doc.get("time", 0), unit="s", tz="UTC").floor("ms").tz_convert(None),
                     "invocation": number, "event": doc.get("agent_event"), "detail": event_detail(doc)})
    return pd.DataFrame(rows[-tail:] if tail else rows,
                        columns=["time", "invocation", "event", "detail"]).reset_index(drop=True)


# The keys every agent event carries; the rest is what the event is about.
_COMMON = {"agent_event", "time", "invocation_id", "actor_id", "session_id"}


def event_detail(doc: dict) -> str:
    """What one of the agent's events says, in a few words (its text whole, line breaks kept)."""
    kind = doc.get("agent_event")
    if kind == "started":
        return f"prompt: {doc.get('prompt', '')}"
    if kind == "tool_use":
        return f"{doc.get('tool')} {doc.get('target') or ''}".strip()
    if kind == "tool_result":
        return f"{doc.get('tool')} {'failed' if doc.get('is_error') else 'done'}"
    if kind in ("text", "status"):
        return str(doc.get("text") if kind == "text" else doc.get("message") or "")
    if kind == "files_restored":
        return f"{doc.get('files', 0)} file(s) restored from the session"
    if kind == "memory":
        return (f"{doc.get('turns', 0)} earlier message(s), {doc.get('facts', 0)} fact(s), "
                f"{doc.get('preferences', 0)} preference(s), {doc.get('summaries', 0)} summary(ies)")
    if kind == "file_uploaded":
        return f"{doc.get('file_name')} -> {doc.get('s3_url') or doc.get('s3_key') or ''}".rstrip(" ->")
    if kind == "finished":
        ms = doc.get("duration_ms")
        return f"{'succeeded' if doc.get('success') else 'failed'}" + (f" in {ms / 1000:.1f}s" if ms else "")
    return ", ".join(f"{k}={v}" for k, v in doc.items() if k not in _COMMON)


def agent_events(settings: Settings | Deployment, actor_id: str, session_id: str, *, minutes: float = 240) -> list[dict]:
    """The agent's structured progress events for one actor and session, oldest first."""
    found = []
    for event in log_events(settings, minutes=minutes, limit=100_000, pattern='"agent_event"'):
        try:
            doc = json.loads(event["message"])
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("actor_id") == actor_id and doc.get("session_id") == session_id:
            found.append(doc)
    return sorted(found, key=lambda d: d.get("time", 0))


def timeline(events: list[dict]) -> list[dict]:
    """Steps of each invocation with start (seconds from its start) and duration, from progress events.

    A model turn runs from the moment Claude Code could start thinking (its start, or the last tool
    result) to the next thing the model said (text or a tool call); a tool call from its use to its result.
    """
    by_invocation: dict[str, list[dict]] = {}
    for event in events:
        by_invocation.setdefault(event.get("invocation_id", "?"), []).append(event)
    rows: list[dict] = []
    for number, (invocation, evs) in enumerate(by_invocation.items(), start=1):
        evs.sort(key=lambda e: e["time"])
        t0 = evs[0]["time"]
        turn, boundary, open_tools = 0, None, {}
        prompt = next((e.get("prompt") for e in evs if e.get("prompt")), "")

        def add(step, detail, start, end, at=None):
            row = {"invocation": number, "step": step, "detail": detail,
                   "start_s": round(start - t0, 3), "duration_s": round(max(end - start, 0.0), 3)}
            if at is None:
                rows.append(row)
            else:
                rows.insert(at, row)

        first_row = len(rows)

        for e in evs:
            kind = e.get("agent_event")
            if kind == "status" and boundary is None:
                add("prepare", "restore files, read memory, start Claude Code", t0, e["time"])
                boundary = e["time"]
            elif kind in ("text", "tool_use"):
                if boundary is not None:
                    turn += 1
                    add("model turn", f"turn {turn}", boundary, e["time"])
                    boundary = None
                if kind == "tool_use":
                    open_tools[e.get("id") or e.get("tool")] = e
            elif kind == "tool_result":
                started = open_tools.pop(e.get("id") or e.get("tool"), None)
                if started is not None:
                    add(f"tool {started.get('tool')}", started.get("target") or "", started["time"], e["time"])
                boundary = e["time"]
            elif kind == "finished":
                last = max((r for r in rows if r["invocation"] == number),
                           key=lambda r: r["start_s"] + r["duration_s"], default=None)
                end_of_last = t0 + (last["start_s"] + last["duration_s"] if last else 0)
                add("save", "upload changed files, save the turn to memory", end_of_last, e["time"])
                # First, so the prompt heads its steps instead of repeating on every row.
                add("whole invocation", f"prompt: {prompt}" if prompt else "", t0, e["time"], at=first_row)
    return rows


def timeline_df(settings: Settings | Deployment, actor_id: str, session_id: str):
    """The session's invocations step by step: model turns, tool calls, and the agent's own work."""
    import pandas as pd

    return pd.DataFrame(timeline(agent_events(settings, actor_id, session_id)),
                        columns=["invocation", "step", "detail", "start_s", "duration_s"])


def timeline_plot(df):
    """A Gantt-style chart of `timeline_df`: one row per step, one colour per kind of step."""
    import matplotlib.pyplot as plt

    steps = df[df["step"] != "whole invocation"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(10, max(2.0, 0.35 * len(steps) + 1)))
    colours = {"prepare": "#9e9e9e", "model turn": "#5c6bc0", "save": "#8d6e63"}
    for i, row in steps.iterrows():
        colour = colours.get(row["step"], "#43a047")  # tools in green
        ax.barh(i, max(row["duration_s"], 0.01), left=row["start_s"], color=colour)
        ax.text(row["start_s"] + row["duration_s"], i, f" {row['duration_s']:.2f}s", va="center", fontsize=8)
    ax.set_yticks(range(len(steps)))
    ax.set_yticklabels([_label(r) for r in steps.itertuples()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the start of the invocation")
    ax.set_title("Where the time went")
    fig.tight_layout()
    return fig


def _label(row) -> str:
    if row.step == "model turn":
        return f"#{row.invocation} model {row.detail}"
    if row.step.startswith("tool "):
        return f"#{row.invocation} {row.step[5:]} {row.detail}"[:40]
    return f"#{row.invocation} {row.step}"
