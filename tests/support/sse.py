"""Server-sent events as the agent streams them: `event: <name>` then `data: <json>` lines."""
from __future__ import annotations

import json
from typing import Iterable


def sse_events(lines: Iterable[str]) -> list[tuple[str | None, dict]]:
    """(event name, data) pairs in the order they came; a data line with no event line before it has name None."""
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events
