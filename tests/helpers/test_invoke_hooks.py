"""helpers.invoke's hooks for interactive front ends: each streamed event as it comes, and a Stop that stops."""
from __future__ import annotations

import uuid

from helpers import invoke


def test_on_event_sees_every_progress_event_as_it_streams(deployed):
    seen = []
    out = invoke.invoke(deployed, "hello there", "alice", f"s-{uuid.uuid4().hex[:6]}", progress=False,
                        on_event=seen.append)
    assert [e["type"] for e in seen] == ["progress", "progress", "progress"]
    assert out.result == "echo: hello there"


def test_should_stop_stops_reading_and_stops_the_session(deployed):
    session = f"s-{uuid.uuid4().hex[:6]}"
    invoke.invoke(deployed, "one", "alice", session, progress=False)
    seen = []
    out = invoke.invoke(deployed, "two", "alice", session, progress=False, on_event=seen.append,
                        should_stop=lambda: len(seen) >= 1)
    assert out["stopped"] is True and out["success"] is False
    assert len(seen) == 1
    # The session's agent was stopped, so the next call starts a fresh one (its first turn).
    assert invoke.invoke(deployed, "three", "alice", session, progress=False)["metadata"]["num_turns"] == 1
