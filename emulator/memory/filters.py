"""AgentCore Memory's metadata filters: which events (ListEvents) and records (List/RetrieveMemoryRecords) match."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from .schema import _epoch


def event_matches(row: sqlite3.Row, filters: list[dict]) -> bool:
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    for f in filters:
        key = f["left"]["metadataKey"]
        present = key in metadata
        if f["operator"] == "EXISTS" and not present:
            return False
        if f["operator"] == "NOT_EXISTS" and present:
            return False
        if f["operator"] == "EQUALS_TO":
            want = ((f.get("right") or {}).get("metadataValue") or {}).get("stringValue")
            if not present or metadata[key].get("stringValue") != want:
                return False
    return True


def record_matches(row: sqlite3.Row, filters: list[dict]) -> bool:
    if not filters:
        return True
    metadata = json.loads(row["metadata"]) if row["metadata"] else {}
    for f in filters:
        key, op = f["left"]["metadataKey"], f["operator"]
        value = metadata.get(key)
        want = (f.get("right") or {}).get("metadataValue") or {}
        if op == "EXISTS":
            ok = value is not None
        elif op == "NOT_EXISTS":
            ok = value is None
        elif value is None:
            ok = False
        elif op == "EQUALS_TO":
            ok = _plain(value) == _plain(want)
        elif op == "CONTAINS":
            have = value.get("stringListValue") or [value.get("stringValue")]
            needles = want.get("stringListValue") or [want.get("stringValue")]
            ok = all(n in have for n in needles)
        else:
            a, b = _comparable(value), _comparable(want)
            ok = a is not None and b is not None and {
                "BEFORE": a < b, "AFTER": a > b, "GREATER_THAN": a > b, "GREATER_THAN_OR_EQUALS": a >= b,
                "LESS_THAN": a < b, "LESS_THAN_OR_EQUALS": a <= b}.get(op, False)
        if not ok:
            return False
    return True


def _plain(value: dict) -> Any:
    return next(iter(value.values()), None) if value else None


def _comparable(value: dict) -> float | None:
    if "numberValue" in value:
        return float(value["numberValue"])
    if "dateTimeValue" in value:
        return _epoch(value["dateTimeValue"])
    return None
