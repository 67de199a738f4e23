"""AgentCore Memory's short-term memory: events, sessions and actors (bedrock-agentcore data plane)."""
from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
from typing import Any

from ..core import paginator
from . import strategies as rules
from .exceptions import ResourceNotFoundException, ValidationException
from .filters import event_matches
from .schema import _json_default, _now, _ts

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MILLISECOND = dt.timedelta(milliseconds=1)


def event_millis(value: dt.datetime | float) -> int:
    """An eventTimestamp in whole milliseconds since the epoch, truncated as AgentCore stores it.

    AgentCore Memory stores and orders eventTimestamp at millisecond resolution: AWS's own Strands session
    manager (bedrock-agentcore-sdk-python, memory/integrations/strands/session_manager.py,
    _get_monotonic_timestamp) floors to milliseconds for that reason, and the event id's leading number is that
    millisecond count. An event id must match the model's EventId pattern `[0-9]+#[a-fA-F0-9]+`, which has no
    room for a sign, and AWS documents no meaning for a time before 1970, so such a time is refused.
    """
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    millis = (when - _EPOCH) // _MILLISECOND
    if millis < 0:
        raise ValidationException(
            f"eventTimestamp {when.isoformat()} is before 1970-01-01T00:00:00Z; give the time the event happened, "
            f"in epoch seconds of 0 or more.")
    return millis


class Events:
    """Events and the sessions and actors they make (mixed into MemoryBackend)."""

    # -- events ----------------------------------------------------------------------------------
    def create_event(self, params: dict, account: str, region: str) -> dict:
        session_id = params.get("sessionId")
        if not session_id:
            raise ValidationException("sessionId is required: every event belongs to an actor's session.")
        token = params.get("clientToken") or None
        branch = params.get("branch") or {}
        with self._lock:
            memory = self._usable_memory(params["memoryId"], account, region)
            mid = memory["id"]
            db = self._db
            if token:
                same = db.execute("SELECT * FROM events WHERE memory_id=? AND client_token=?", (mid, token)).fetchone()
                if same is not None:
                    return {"event": self._event_doc(same, True)}
            if branch.get("rootEventId"):
                root = db.execute("SELECT 1 FROM events WHERE memory_id=? AND actor_id=? AND session_id=? AND "
                                  "event_id=?", (mid, params["actorId"], session_id, branch["rootEventId"])).fetchone()
                if root is None:
                    raise ResourceNotFoundException(
                        f"branch.rootEventId {branch['rootEventId']} is not an event of session {session_id} "
                        f"of actor {params['actorId']}.")
            millis = event_millis(params["eventTimestamp"])
            timestamp = millis / 1000
            now = _now()
            event_id = f"{millis:019d}#{secrets.token_hex(8)}"
            with self._tx():
                cur = db.execute(
                    "INSERT INTO events (memory_id, actor_id, session_id, event_id, ts, payload, branch_name,"
                    " branch_root, metadata, client_token, created_at, skip_extraction)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (mid, params["actorId"], session_id, event_id, timestamp,
                     json.dumps(params["payload"], default=_json_default), branch.get("name"),
                     branch.get("rootEventId"), json.dumps(params["metadata"]) if params.get("metadata") else None,
                     token, now, int(params.get("extractionMode") == "SKIP")))
                db.execute("INSERT OR IGNORE INTO sessions (memory_id, actor_id, session_id, created_at) "
                           "VALUES (?,?,?,?)", (mid, params["actorId"], session_id, now))
                if params.get("extractionMode") != "SKIP" and self._has_extracting_strategies(mid):
                    db.execute("INSERT INTO extraction_jobs (memory_id, actor_id, session_id, due_at) "
                               "VALUES (?,?,?,?) ON CONFLICT (memory_id, actor_id, session_id) "
                               "DO UPDATE SET due_at=excluded.due_at",
                               (mid, params["actorId"], session_id, now + self.extraction_delay))
                    self._wake.notify_all()
            row = db.execute("SELECT * FROM events WHERE seq=?", (cur.lastrowid,)).fetchone()
            return {"event": self._event_doc(row, True)}

    def _has_extracting_strategies(self, memory_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM strategies WHERE memory_id=? AND type IN (?,?,?,?,?)",
                                (memory_id, rules.SEMANTIC, rules.SUMMARIZATION, rules.USER_PREFERENCE,
                                 rules.CUSTOM, rules.EPISODIC)).fetchone() is not None

    @staticmethod
    def _event_doc(row: sqlite3.Row, include_payload: bool) -> dict:
        doc = {
            "memoryId": row["memory_id"], "actorId": row["actor_id"], "sessionId": row["session_id"],
            "eventId": row["event_id"], "eventTimestamp": _ts(row["ts"]),
            "payload": json.loads(row["payload"]) if include_payload else [],
        }
        if row["branch_name"]:
            doc["branch"] = {"name": row["branch_name"]}
            if row["branch_root"]:
                doc["branch"]["rootEventId"] = row["branch_root"]
        if row["metadata"]:
            doc["metadata"] = json.loads(row["metadata"])
        return doc

    def _event_row(self, params: dict, account: str, region: str) -> sqlite3.Row:
        memory = self._usable_memory(params["memoryId"], account, region)
        row = self._db.execute(
            "SELECT * FROM events WHERE memory_id=? AND actor_id=? AND session_id=? AND event_id=?",
            (memory["id"], params["actorId"], params["sessionId"], params["eventId"])).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Event {params['eventId']} was not found in session "
                                            f"{params['sessionId']} of actor {params['actorId']}.")
        return row

    def get_event(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            return {"event": self._event_doc(self._event_row(params, account, region), True)}

    def delete_event(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            row = self._event_row(params, account, region)
            with self._tx():
                self._db.execute("DELETE FROM events WHERE seq=?", (row["seq"],))
            return {"eventId": row["event_id"]}

    def list_events(self, params: dict, account: str, region: str) -> dict:
        limit = params.get("maxResults") or 20
        include = params.get("includePayloads", True)
        flt = params.get("filter") or {}
        scope = paginator.scope("ListEvents", params)
        position = paginator.decode(params.get("nextToken"), scope, {"t": float, "q": int})
        with self._lock:
            memory = self._usable_memory(params["memoryId"], account, region)
            mid = memory["id"]
            where = ["memory_id=?", "actor_id=?", "session_id=?"]
            args: list[Any] = [mid, params["actorId"], params["sessionId"]]
            branch = flt.get("branch")
            if branch:
                clauses = ["branch_name=?"]
                args_b: list[Any] = [branch["name"]]
                if branch.get("includeParentBranches"):
                    root = self._db.execute(
                        "SELECT e.ts, e.seq FROM events b JOIN events e ON e.memory_id=b.memory_id AND "
                        "e.event_id=b.branch_root WHERE b.memory_id=? AND b.actor_id=? AND b.session_id=? AND "
                        "b.branch_name=? AND b.branch_root IS NOT NULL ORDER BY b.seq LIMIT 1",
                        (mid, params["actorId"], params["sessionId"], branch["name"])).fetchone()
                    if root is not None:
                        # The parent's history up to and including the event the branch forked at.
                        clauses.append("(branch_name IS NULL AND (ts < ? OR (ts = ? AND seq <= ?)))")
                        args_b += [root["ts"], root["ts"], root["seq"]]
                where.append("(" + " OR ".join(clauses) + ")")
                args += args_b
            metadata_filters = flt.get("eventMetadata") or []
            base_sql = f"SELECT * FROM events WHERE {' AND '.join(where)}"
            after = (position["t"], position["q"]) if position else None
            # Metadata filters are applied after the index scan: read in chunks until the page is full.
            chunk = limit + 1 if not metadata_filters else max(100, limit * 4)
            picked: list[sqlite3.Row] = []
            more = False
            while True:
                sql, page_args = base_sql, list(args)
                if after is not None:
                    # A row value, so SQLite seeks the index to the position instead of scanning to it.
                    sql += " AND (ts, seq) < (?, ?)"
                    page_args += [after[0], after[1]]
                rows = self._db.execute(sql + " ORDER BY ts DESC, seq DESC LIMIT ?", page_args + [chunk]).fetchall()
                for row in rows:
                    if metadata_filters and not event_matches(row, metadata_filters):
                        continue
                    if len(picked) == limit:
                        more = True
                        break
                    picked.append(row)
                if more or len(rows) < chunk:
                    break
                after = (rows[-1]["ts"], rows[-1]["seq"])
        out = {"events": [self._event_doc(r, include) for r in picked]}
        if more:
            last = picked[-1]
            out["nextToken"] = paginator.encode(scope, {"t": last["ts"], "q": last["seq"]})
        return out

    def list_sessions(self, params: dict, account: str, region: str) -> dict:
        limit = params.get("maxResults") or 20
        has_events = (params.get("filter") or {}).get("eventFilter") == "HAS_EVENTS"
        scope = paginator.scope("ListSessions", params)
        offset = paginator.decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
            extra = (" AND EXISTS (SELECT 1 FROM events e WHERE e.memory_id=s.memory_id AND "
                     "e.actor_id=s.actor_id AND e.session_id=s.session_id)") if has_events else ""
            rows = self._db.execute(
                f"SELECT * FROM sessions s WHERE memory_id=? AND actor_id=?{extra} "
                f"ORDER BY created_at DESC, session_id LIMIT ? OFFSET ?",
                (mid, params["actorId"], limit + 1, offset)).fetchall()
        out = {"sessionSummaries": [{"sessionId": r["session_id"], "actorId": r["actor_id"],
                                     "createdAt": _ts(r["created_at"])} for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = paginator.encode(scope, {"o": offset + limit})
        return out

    def list_actors(self, params: dict, account: str, region: str) -> dict:
        limit = params.get("maxResults") or 20
        scope = paginator.scope("ListActors", params)
        offset = paginator.decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
            rows = self._db.execute(
                "SELECT actor_id FROM sessions WHERE memory_id=? GROUP BY actor_id ORDER BY actor_id "
                "LIMIT ? OFFSET ?", (mid, limit + 1, offset)).fetchall()
        out = {"actorSummaries": [{"actorId": r["actor_id"]} for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = paginator.encode(scope, {"o": offset + limit})
        return out
