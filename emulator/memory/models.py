"""AgentCore Memory's state and rules: memories, events, sessions, long-term records, in SQLite.

Everything lives in one SQLite file under the state dir, so a restarted emulator finds every
memory, event, record and pending extraction where it left them. One lock serialises access:
the server is threaded, and SQLite work here is short (keyed reads and single-row writes);
the slow parts (embedding text) run outside it.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import string
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import strategies as rules
from .exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
)
from .ranking import DIMENSIONS, Embedder, from_blob, to_blob

log = logging.getLogger("emulator.memory")

# Seconds a new memory stays CREATING (AWS: a few minutes) and a deleted one DELETING, so that
# waiting code really waits. The environment may shorten them (tests) or lengthen them.
ACTIVATION_DELAY = float(os.environ.get("EMULATOR_MEMORY_ACTIVATION_DELAY", "1.0"))
DELETION_DELAY = float(os.environ.get("EMULATOR_MEMORY_DELETION_DELAY", "0.5"))
# Memories per account and region before CreateMemory answers ServiceQuotaExceededException.
MAX_MEMORIES = int(os.environ.get("EMULATOR_MAX_MEMORIES", "150"))
# How long a CreateMemory clientToken is remembered after its memory is gone. botocore's model says of
# CreateMemory's clientToken: "If this token matches a previous request, Amazon Bedrock ignores the request
# but does not return an error" -- even when that memory has since been deleted. AgentCore documents no
# window; EC2's idempotency guide says a token stays valid "at least 24 hours", which is used here.
IDEMPOTENCY_WINDOW = float(os.environ.get("EMULATOR_IDEMPOTENCY_WINDOW", str(24 * 3600)))
MAX_STRATEGIES = 6
# AWS documents event expiry of up to 365 days (the model's own bound is looser).
MAX_EVENT_EXPIRY_DAYS = 365
# Records whose similarity to the query is below this are not relevant enough to return.
MIN_SCORE = float(os.environ.get("EMULATOR_MEMORY_MIN_SCORE", "0.05"))
DEFAULT_TOP_K = 10
DEFAULT_PAGE = 20
# Candidates this similar to a record already in the namespace are duplicates of it.
DUPLICATE_SIMILARITY = 0.95

TEMPLATE_VARIABLES = {"actorId", "sessionId", "memoryStrategyId"}
DEFAULT_TEMPLATES = {
    rules.SEMANTIC: "/strategies/{memoryStrategyId}/actors/{actorId}/",
    rules.SUMMARIZATION: "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/",
    rules.USER_PREFERENCE: "/strategies/{memoryStrategyId}/actors/{actorId}/",
    rules.EPISODIC: "/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/",
    rules.CUSTOM: "custom/{actorId}/{sessionId}/",
}
_MEMORY_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:memory/(.+)$")
_ALNUM = string.ascii_letters + string.digits

SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT, encryption_key_arn TEXT, role_arn TEXT, event_expiry INTEGER NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    ready_at REAL, gone_at REAL, client_token TEXT, request_hash TEXT, extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS memories_by_place ON memories(account, region, created_at);
CREATE TABLE IF NOT EXISTS strategies (
    id TEXT PRIMARY KEY, memory_id TEXT NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL,
    description TEXT, type TEXT NOT NULL, template TEXT NOT NULL, configuration TEXT,
    status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS strategies_by_memory ON strategies(memory_id, position);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, memory_id TEXT NOT NULL, actor_id TEXT NOT NULL,
    session_id TEXT NOT NULL, event_id TEXT NOT NULL, ts REAL NOT NULL, payload TEXT NOT NULL,
    branch_name TEXT, branch_root TEXT, metadata TEXT, client_token TEXT, created_at REAL NOT NULL,
    skip_extraction INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events(memory_id, event_id);
CREATE INDEX IF NOT EXISTS events_by_session ON events(memory_id, actor_id, session_id, ts, seq);
CREATE INDEX IF NOT EXISTS events_by_token ON events(memory_id, client_token);
CREATE TABLE IF NOT EXISTS sessions (
    memory_id TEXT NOT NULL, actor_id TEXT NOT NULL, session_id TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (memory_id, actor_id, session_id)
);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY, memory_id TEXT NOT NULL, strategy_id TEXT NOT NULL, namespace TEXT NOT NULL,
    text TEXT NOT NULL, norm TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    ts REAL, metadata TEXT, embedding BLOB, session_id TEXT
);
CREATE INDEX IF NOT EXISTS records_by_namespace ON records(memory_id, namespace);
CREATE INDEX IF NOT EXISTS records_by_session ON records(memory_id, strategy_id, namespace, session_id);
CREATE TABLE IF NOT EXISTS extraction_jobs (
    memory_id TEXT NOT NULL, actor_id TEXT NOT NULL, session_id TEXT NOT NULL, due_at REAL NOT NULL,
    PRIMARY KEY (memory_id, actor_id, session_id)
);
CREATE TABLE IF NOT EXISTS deleted_tokens (
    account TEXT NOT NULL, region TEXT NOT NULL, client_token TEXT NOT NULL, request_hash TEXT NOT NULL,
    answer TEXT NOT NULL, forget_at REAL NOT NULL, PRIMARY KEY (account, region, client_token)
);
CREATE TABLE IF NOT EXISTS extraction_progress (
    memory_id TEXT NOT NULL, actor_id TEXT NOT NULL, session_id TEXT NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (memory_id, actor_id, session_id)
);
"""


def _now() -> float:
    return time.time()


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def _with_times(doc: dict) -> dict:
    """A memory document read back from JSON, its epoch-second times datetimes again."""
    times = {k: _ts(doc[k]) for k in ("createdAt", "updatedAt") if doc.get(k) is not None}
    strategies = [_with_times(s) for s in doc.get("strategies") or []]
    return {**doc, **times, **({"strategies": strategies} if "strategies" in doc else {})}


def _suffix(n: int = 10) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _fingerprint(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def encode_token(doc: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def decode_token(token: str | None, scope: str, fields: dict[str, type] | None = None) -> dict | None:
    """The position a nextToken carries, checked against the request it was issued for.

    `fields` names the keys the position must hold and their types (ints must be non-negative):
    a token edited by hand is a ValidationException, never a KeyError answered as a 500.
    """
    if not token:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        raise ValidationException("nextToken is not a token this operation issued; "
                                  "pass the nextToken of the previous page unchanged.") from None
    if not isinstance(doc, dict) or doc.get("s") != scope:
        raise ValidationException("nextToken belongs to a different request; repeat the request with "
                                  "the same parameters as the one that returned it.")
    for key, kind in (fields or {}).items():
        value = doc.get(key)
        ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0 if kind is int
              else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
              else isinstance(value, kind))
        if not ok:
            raise ValidationException("nextToken is not a token this operation issued (its position is "
                                      "malformed); pass the nextToken of the previous page unchanged.")
    return doc


def decode_offset(token: str | None, scope: str) -> int:
    """The offset an offset-paged nextToken carries (0 for the first page)."""
    doc = decode_token(token, scope, {"o": int})
    return doc["o"] if doc else 0


def memory_id_of(value: str) -> str:
    """The id from a memory id or ARN (the data plane takes either)."""
    m = _MEMORY_ARN.match(value)
    return m.group(1) if m else value


def resolve_namespace(template: str, *, actor_id: str, session_id: str, strategy_id: str) -> str:
    return (template.replace("{actorId}", actor_id)
            .replace("{sessionId}", session_id)
            .replace("{memoryStrategyId}", strategy_id))


class MemoryBackend:
    """State and rules of both planes, over one SQLite database."""

    def __init__(self, state_dir: Path, extraction_delay: float = 1.0, embedder: Embedder | None = None):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "memory.sqlite3"
        self.extraction_delay = extraction_delay
        self.embedder = embedder or Embedder()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # State dirs from before events recorded extractionMode: add the column (SQLite keeps the rows).
        if "skip_extraction" not in {c["name"] for c in self._db.execute("PRAGMA table_info(events)")}:
            self._db.execute("ALTER TABLE events ADD COLUMN skip_extraction INTEGER NOT NULL DEFAULT 0")
        # memory id -> namespace (or path) -> (record ids, strategy ids, embedding matrix)
        self._vectors: dict[str, dict] = {}
        self._next_transition = 0.0  # earliest ready_at/gone_at still pending: skip the check before it
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._worker = threading.Thread(target=self._extraction_loop, name="memory-extraction", daemon=True)
        self._worker.start()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        self._worker.join(timeout=10)
        with self._lock:
            self._db.close()

    # -- plumbing ----------------------------------------------------------------------------
    def _tx(self):
        return _Transaction(self._db)

    def _advance(self) -> None:
        """Move memories whose time has come from CREATING to ACTIVE, and DELETING to gone."""
        now = _now()
        if now < self._next_transition:
            return
        db = self._db
        with self._tx():
            ready = [r["id"] for r in db.execute(
                "SELECT id FROM memories WHERE status='CREATING' AND ready_at<=?", (now,))]
            for mid in ready:
                db.execute("UPDATE memories SET status='ACTIVE', updated_at=ready_at WHERE id=?", (mid,))
                db.execute("UPDATE strategies SET status='ACTIVE', updated_at=? WHERE memory_id=? "
                           "AND status='CREATING'", (now, mid))
            gone_rows = db.execute("SELECT * FROM memories WHERE status='DELETING' AND gone_at<=?", (now,)).fetchall()
            for row in gone_rows:
                if row["client_token"]:
                    # The answer a retried create gets once the memory is gone: the one its creation got.
                    answer = {**self._memory_doc(row), "status": "CREATING"}
                    answer["updatedAt"] = answer["createdAt"]
                    for strategy in answer["strategies"]:
                        strategy.update(status="CREATING", updatedAt=strategy["createdAt"])
                    db.execute("INSERT OR REPLACE INTO deleted_tokens VALUES (?,?,?,?,?,?)",
                               (row["account"], row["region"], row["client_token"], row["request_hash"] or "",
                                json.dumps(answer, default=_epoch), now + IDEMPOTENCY_WINDOW))
            db.execute("DELETE FROM deleted_tokens WHERE forget_at<=?", (now,))
            gone = [r["id"] for r in gone_rows]
            for mid in gone:
                for table in ("strategies", "events", "sessions", "records", "extraction_jobs",
                              "extraction_progress"):
                    db.execute(f"DELETE FROM {table} WHERE memory_id=?", (mid,))
                db.execute("DELETE FROM memories WHERE id=?", (mid,))
                self._vectors.pop(mid, None)
            # Strategies added by UpdateMemory become ACTIVE on the same clock.
            db.execute("UPDATE strategies SET status='ACTIVE', updated_at=? WHERE status='CREATING' AND "
                       "created_at<=? AND memory_id IN (SELECT id FROM memories WHERE status='ACTIVE')",
                       (now, now - ACTIVATION_DELAY))
            row = db.execute(
                "SELECT MIN(t) FROM (SELECT ready_at AS t FROM memories WHERE status='CREATING' "
                "UNION ALL SELECT gone_at FROM memories WHERE status='DELETING' "
                "UNION ALL SELECT created_at + ? FROM strategies WHERE status='CREATING')",
                (ACTIVATION_DELAY,)).fetchone()
            self._next_transition = row[0] if row[0] is not None else float("inf")

    def _memory_row(self, memory_id: str, region: str, account: str) -> sqlite3.Row:
        row = self._db.execute("SELECT * FROM memories WHERE id=? AND account=? AND region=?",
                               (memory_id_of(memory_id), account, region)).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Memory {memory_id_of(memory_id)} was not found in {region}.")
        return row

    def _usable_memory(self, memory_id: str, region: str, account: str) -> sqlite3.Row:
        """A memory the data plane may use: it exists and is ACTIVE."""
        self._advance()
        row = self._memory_row(memory_id, region, account)
        if row["status"] == "DELETING":
            raise ResourceNotFoundException(f"Memory {row['id']} is being deleted.")
        if row["status"] != "ACTIVE":
            raise ValidationException(f"Memory {row['id']} is {row['status']}; it accepts data operations "
                                      f"once it is ACTIVE. Wait for GetMemory to report ACTIVE.")
        return row

    # -- control plane -------------------------------------------------------------------------
    def create_memory(self, params: dict, region: str, account: str) -> dict:
        name = params["name"]
        expiry = params["eventExpiryDuration"]
        if expiry > MAX_EVENT_EXPIRY_DAYS:
            raise ValidationException(f"eventExpiryDuration is {expiry} days; it must be between 3 and "
                                      f"{MAX_EVENT_EXPIRY_DAYS} days.")
        token = params.get("clientToken") or None
        request = {k: v for k, v in params.items() if k != "clientToken"}
        request_hash = _fingerprint(request)
        namespace_keys = {k["key"] for k in params.get("namespaceKeys") or []}
        specs = [self._strategy_spec(s, i, namespace_keys, "memoryStrategies")
                 for i, s in enumerate(params.get("memoryStrategies") or [])]
        self._check_strategy_set(specs, "memoryStrategies")
        with self._lock:
            self._advance()
            db = self._db
            if token:
                same = db.execute("SELECT * FROM memories WHERE account=? AND region=? AND client_token=?",
                                  (account, region, token)).fetchone()
                if same is not None:
                    if same["request_hash"] != request_hash:
                        raise ConflictException(
                            f"clientToken {token!r} was already used to create memory {same['id']} with "
                            f"different parameters; use a new clientToken for a different request.")
                    return {"memory": self._memory_doc(same)}
                spent = db.execute("SELECT * FROM deleted_tokens WHERE account=? AND region=? AND client_token=?"
                                   " AND forget_at>?", (account, region, token, _now())).fetchone()
                if spent is not None:
                    answer = json.loads(spent["answer"])
                    if spent["request_hash"] != request_hash:
                        raise ConflictException(
                            f"clientToken {token!r} was already used to create memory {answer['id']} with "
                            f"different parameters; use a new clientToken for a different request.")
                    # Ignored, as AWS ignores a repeated token: the first answer again, for a memory now gone.
                    return {"memory": _with_times(answer)}
            if db.execute("SELECT 1 FROM memories WHERE account=? AND region=? AND name=?",
                          (account, region, name)).fetchone():
                raise ValidationException(f"Memory with name {name} already exists in {region}; "
                                          f"choose another name or use the existing memory.")
            count = db.execute("SELECT COUNT(*) FROM memories WHERE account=? AND region=?",
                               (account, region)).fetchone()[0]
            if count >= MAX_MEMORIES:
                raise ServiceQuotaExceededException(
                    f"This account already has {count} memories in {region}, the most allowed; "
                    f"delete one first.")
            now = _now()
            mid = f"{name}-{_suffix()}"
            extra = {k: params[k] for k in ("indexedKeys", "namespaceKeys", "streamDeliveryResources", "tags")
                     if params.get(k)}
            with self._tx():
                db.execute(
                    "INSERT INTO memories (id, account, region, name, description, encryption_key_arn, role_arn,"
                    " event_expiry, status, created_at, updated_at, ready_at, client_token, request_hash, extra)"
                    " VALUES (?,?,?,?,?,?,?,?,'CREATING',?,?,?,?,?,?)",
                    (mid, account, region, name, params.get("description"), params.get("encryptionKeyArn"),
                     params.get("memoryExecutionRoleArn"), expiry, now, now, now + ACTIVATION_DELAY, token,
                     request_hash, json.dumps(extra, default=str)))
                for spec in specs:
                    self._insert_strategy(mid, spec, now)
            self._next_transition = min(self._next_transition, now + ACTIVATION_DELAY)
            return {"memory": self._memory_doc(self._memory_row(mid, region, account))}

    def _strategy_spec(self, union: dict, position: int, namespace_keys: set[str], field: str) -> dict:
        (member, body), = union.items()
        kind = rules.INPUT_TYPES[member]
        configuration = None
        if kind == rules.CUSTOM:
            config = body.get("configuration") or {}
            override = next(iter(config), None)
            configuration = {
                "semanticOverride": "SEMANTIC_OVERRIDE", "summaryOverride": "SUMMARY_OVERRIDE",
                "userPreferenceOverride": "USER_PREFERENCE_OVERRIDE", "episodicOverride": "EPISODIC_OVERRIDE",
                "selfManagedConfiguration": "SELF_MANAGED",
            }.get(override)
        template = self._template(body, kind, namespace_keys, f"{field}[{position}].{member}")
        return {"name": body["name"], "description": body.get("description"), "type": kind,
                "template": template, "override": configuration, "position": position}

    @staticmethod
    def _template(body: dict, kind: str, namespace_keys: set[str], where: str) -> str:
        templates = body.get("namespaceTemplates")
        legacy = body.get("namespaces")
        if templates and legacy and templates != legacy:
            raise ValidationException(f"{where}: namespaces and namespaceTemplates differ; give only "
                                      f"namespaceTemplates (namespaces is its older name).")
        chosen = (templates or legacy or [DEFAULT_TEMPLATES[kind]])[0]
        allowed = TEMPLATE_VARIABLES | namespace_keys
        for variable in re.findall(r"\{([^}]*)\}", chosen):
            if variable not in allowed:
                raise ValidationException(
                    f"{where}.namespaceTemplates: {{{variable}}} is not a namespace variable; use "
                    f"{{actorId}}, {{sessionId}} or {{memoryStrategyId}} (or declare it in namespaceKeys).")
        return chosen

    @staticmethod
    def _check_strategy_set(specs: list[dict], field: str, existing: Iterable[str] = ()) -> None:
        names = list(existing)
        for spec in specs:
            if spec["name"] in names:
                raise ValidationException(f"{field}: two strategies are named {spec['name']}; "
                                          f"strategy names must be unique within a memory.")
            names.append(spec["name"])
        if len(names) > MAX_STRATEGIES:
            raise ValidationException(f"{field}: a memory has at most {MAX_STRATEGIES} strategies; "
                                      f"this request would give it {len(names)}.")

    def _insert_strategy(self, memory_id: str, spec: dict, now: float) -> str:
        sid = f"{spec['name']}-{_suffix()}"
        self._db.execute(
            "INSERT INTO strategies (id, memory_id, position, name, description, type, template, configuration,"
            " status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,'CREATING',?,?)",
            (sid, memory_id, spec["position"], spec["name"], spec["description"], spec["type"],
             spec["template"], spec["override"], now, now))
        return sid

    def _memory_doc(self, row: sqlite3.Row) -> dict:
        doc = {
            "arn": f"arn:aws:bedrock-agentcore:{row['region']}:{row['account']}:memory/{row['id']}",
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "encryptionKeyArn": row["encryption_key_arn"],
            "memoryExecutionRoleArn": row["role_arn"],
            "eventExpiryDuration": row["event_expiry"],
            "status": row["status"],
            "createdAt": _ts(row["created_at"]),
            "updatedAt": _ts(row["updated_at"]),
            "strategies": [self._strategy_doc(s) for s in self._db.execute(
                "SELECT * FROM strategies WHERE memory_id=? ORDER BY position, created_at", (row["id"],))],
        }
        extra = json.loads(row["extra"] or "{}")
        for key in ("indexedKeys", "namespaceKeys", "streamDeliveryResources"):
            if key in extra:
                doc[key] = extra[key]
        return doc

    @staticmethod
    def _strategy_doc(row: sqlite3.Row) -> dict:
        doc = {
            "strategyId": row["id"],
            "name": row["name"],
            "description": row["description"],
            "type": row["type"],
            # AWS answers both names for the one template a strategy has.
            "namespaces": [row["template"]],
            "namespaceTemplates": [row["template"]],
            "createdAt": _ts(row["created_at"]),
            "updatedAt": _ts(row["updated_at"]),
            "status": row["status"],
        }
        if row["configuration"]:
            doc["configuration"] = {"type": row["configuration"]}
        return doc

    def get_memory(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            self._advance()
            return {"memory": self._memory_doc(self._memory_row(params["memoryId"], region, account))}

    def list_memories(self, params: dict, region: str, account: str) -> dict:
        limit = params.get("maxResults") or 100
        offset = decode_offset(params.get("nextToken"), "ListMemories")
        with self._lock:
            self._advance()
            rows = self._db.execute(
                "SELECT * FROM memories WHERE account=? AND region=? ORDER BY created_at, id LIMIT ? OFFSET ?",
                (account, region, limit + 1, offset)).fetchall()
        out = {"memories": [{
            "arn": f"arn:aws:bedrock-agentcore:{r['region']}:{r['account']}:memory/{r['id']}",
            "id": r["id"], "status": r["status"],
            "createdAt": _ts(r["created_at"]), "updatedAt": _ts(r["updated_at"]),
        } for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = encode_token({"s": "ListMemories", "o": offset + limit})
        return out

    def update_memory(self, params: dict, region: str, account: str) -> dict:
        expiry = params.get("eventExpiryDuration")
        if expiry is not None and expiry > MAX_EVENT_EXPIRY_DAYS:
            raise ValidationException(f"eventExpiryDuration is {expiry} days; it must be between 3 and "
                                      f"{MAX_EVENT_EXPIRY_DAYS} days.")
        with self._lock:
            self._advance()
            row = self._memory_row(params["memoryId"], region, account)
            if row["status"] != "ACTIVE":
                raise ConflictException(f"Memory {row['id']} is {row['status']}; it can be updated once it "
                                        f"is ACTIVE.")
            mid = row["id"]
            db = self._db
            extra = json.loads(row["extra"] or "{}")
            namespace_keys = {k["key"] for k in (params.get("namespaceKeys") or extra.get("namespaceKeys") or [])}
            changes = params.get("memoryStrategies") or {}
            current = {s["id"]: s for s in db.execute("SELECT * FROM strategies WHERE memory_id=?", (mid,))}
            deleted = [d["memoryStrategyId"] for d in changes.get("deleteMemoryStrategies") or []]
            for i, sid in enumerate(deleted):
                if sid not in current:
                    raise ValidationException(f"memoryStrategies.deleteMemoryStrategies[{i}]: memory {mid} has "
                                              f"no strategy {sid}.")
            modified = changes.get("modifyMemoryStrategies") or []
            for i, mod in enumerate(modified):
                if mod["memoryStrategyId"] not in current:
                    raise ValidationException(f"memoryStrategies.modifyMemoryStrategies[{i}]: memory {mid} has "
                                              f"no strategy {mod['memoryStrategyId']}.")
            base = max([s["position"] for s in current.values()] + [-1]) + 1
            added = [self._strategy_spec(s, base + i, namespace_keys, "memoryStrategies.addMemoryStrategies")
                     for i, s in enumerate(changes.get("addMemoryStrategies") or [])]
            remaining = [s["name"] for sid, s in current.items() if sid not in deleted]
            self._check_strategy_set(added, "memoryStrategies.addMemoryStrategies", remaining)
            now = _now()
            with self._tx():
                for sid in deleted:
                    db.execute("DELETE FROM strategies WHERE id=?", (sid,))
                for i, mod in enumerate(modified):
                    old = current[mod["memoryStrategyId"]]
                    template = old["template"]
                    if mod.get("namespaceTemplates") or mod.get("namespaces"):
                        template = self._template(mod, old["type"], namespace_keys,
                                                  f"memoryStrategies.modifyMemoryStrategies[{i}]")
                    db.execute("UPDATE strategies SET description=COALESCE(?, description), template=?, "
                               "updated_at=? WHERE id=?", (mod.get("description"), template, now, old["id"]))
                for spec in added:
                    self._insert_strategy(mid, spec, now)
                if params.get("namespaceKeys") is not None:
                    extra["namespaceKeys"] = params["namespaceKeys"]
                if params.get("addIndexedKeys"):
                    extra["indexedKeys"] = (extra.get("indexedKeys") or []) + params["addIndexedKeys"]
                if params.get("streamDeliveryResources") is not None:
                    extra["streamDeliveryResources"] = params["streamDeliveryResources"]
                db.execute("UPDATE memories SET description=COALESCE(?, description), "
                           "event_expiry=COALESCE(?, event_expiry), role_arn=COALESCE(?, role_arn), "
                           "extra=?, updated_at=? WHERE id=?",
                           (params.get("description"), expiry, params.get("memoryExecutionRoleArn"),
                            json.dumps(extra, default=str), now, mid))
            if added:
                self._next_transition = min(self._next_transition, now + ACTIVATION_DELAY)
            return {"memory": self._memory_doc(self._memory_row(mid, region, account))}

    def delete_memory(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            self._advance()
            row = self._memory_row(params["memoryId"], region, account)
            if row["status"] != "DELETING":
                gone_at = _now() + DELETION_DELAY
                with self._tx():
                    self._db.execute("UPDATE memories SET status='DELETING', gone_at=?, updated_at=? WHERE id=?",
                                     (gone_at, _now(), row["id"]))
                    self._db.execute("DELETE FROM extraction_jobs WHERE memory_id=?", (row["id"],))
                self._next_transition = min(self._next_transition, gone_at)
            return {"memoryId": row["id"], "status": "DELETING"}

    # -- events ----------------------------------------------------------------------------------
    def create_event(self, params: dict, region: str, account: str) -> dict:
        session_id = params.get("sessionId")
        if not session_id:
            raise ValidationException("sessionId is required: every event belongs to an actor's session.")
        token = params.get("clientToken") or None
        branch = params.get("branch") or {}
        with self._lock:
            memory = self._usable_memory(params["memoryId"], region, account)
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
            timestamp = _epoch(params["eventTimestamp"])
            now = _now()
            event_id = f"{int(timestamp * 1000):019d}#{secrets.token_hex(8)}"
            with self._tx():
                cur = db.execute(
                    "INSERT INTO events (memory_id, actor_id, session_id, event_id, ts, payload, branch_name,"
                    " branch_root, metadata, client_token, created_at, skip_extraction) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
        return self._db.execute("SELECT 1 FROM strategies WHERE memory_id=? AND type IN (?,?,?,?)",
                                (memory_id, rules.SEMANTIC, rules.SUMMARIZATION, rules.USER_PREFERENCE,
                                 rules.CUSTOM)).fetchone() is not None

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

    def _event_row(self, params: dict, region: str, account: str) -> sqlite3.Row:
        memory = self._usable_memory(params["memoryId"], region, account)
        row = self._db.execute(
            "SELECT * FROM events WHERE memory_id=? AND actor_id=? AND session_id=? AND event_id=?",
            (memory["id"], params["actorId"], params["sessionId"], params["eventId"])).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Event {params['eventId']} was not found in session "
                                            f"{params['sessionId']} of actor {params['actorId']}.")
        return row

    def get_event(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            return {"event": self._event_doc(self._event_row(params, region, account), True)}

    def delete_event(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            row = self._event_row(params, region, account)
            with self._tx():
                self._db.execute("DELETE FROM events WHERE seq=?", (row["seq"],))
            return {"eventId": row["event_id"]}

    def list_events(self, params: dict, region: str, account: str) -> dict:
        limit = params.get("maxResults") or 20
        include = params.get("includePayloads", True)
        flt = params.get("filter") or {}
        scope = "ListEvents:" + _fingerprint([params["actorId"], params["sessionId"], flt])[:16]
        position = decode_token(params.get("nextToken"), scope, {"t": float, "q": int})
        with self._lock:
            memory = self._usable_memory(params["memoryId"], region, account)
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
                    if metadata_filters and not _event_matches(row, metadata_filters):
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
            out["nextToken"] = encode_token({"s": scope, "t": last["ts"], "q": last["seq"]})
        return out

    def list_sessions(self, params: dict, region: str, account: str) -> dict:
        limit = params.get("maxResults") or 20
        has_events = (params.get("filter") or {}).get("eventFilter") == "HAS_EVENTS"
        scope = "ListSessions:" + _fingerprint([params["actorId"], has_events])[:16]
        offset = decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
            extra = (" AND EXISTS (SELECT 1 FROM events e WHERE e.memory_id=s.memory_id AND "
                     "e.actor_id=s.actor_id AND e.session_id=s.session_id)") if has_events else ""
            rows = self._db.execute(
                f"SELECT * FROM sessions s WHERE memory_id=? AND actor_id=?{extra} "
                f"ORDER BY created_at DESC, session_id LIMIT ? OFFSET ?",
                (mid, params["actorId"], limit + 1, offset)).fetchall()
        out = {"sessionSummaries": [{"sessionId": r["session_id"], "actorId": r["actor_id"],
                                     "createdAt": _ts(r["created_at"])} for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = encode_token({"s": scope, "o": offset + limit})
        return out

    def list_actors(self, params: dict, region: str, account: str) -> dict:
        limit = params.get("maxResults") or 20
        offset = decode_offset(params.get("nextToken"), "ListActors")
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
            rows = self._db.execute(
                "SELECT actor_id FROM sessions WHERE memory_id=? GROUP BY actor_id ORDER BY actor_id "
                "LIMIT ? OFFSET ?", (mid, limit + 1, offset)).fetchall()
        out = {"actorSummaries": [{"actorId": r["actor_id"]} for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = encode_token({"s": "ListActors", "o": offset + limit})
        return out

    # -- long-term records --------------------------------------------------------------------
    @staticmethod
    def _namespace_filter(params: dict) -> tuple[str | None, str | None]:
        namespace, path = params.get("namespace"), params.get("namespacePath")
        if namespace and path:
            raise ValidationException("Give either namespace (exact) or namespacePath (prefix), not both.")
        if not namespace and not path:
            raise ValidationException("namespace or namespacePath is required: name the namespace to read, "
                                      "exactly (namespace) or as a prefix (namespacePath).")
        return namespace, path

    def _record_rows(self, mid: str, namespace: str | None, path: str | None,
                     strategy_id: str | None) -> list[sqlite3.Row]:
        if namespace:
            sql, args = "SELECT * FROM records WHERE memory_id=? AND namespace=?", [mid, namespace]
        else:
            base = path.rstrip("/")
            sql = "SELECT * FROM records WHERE memory_id=?"
            args = [mid]
            if base and path not in ("*",):
                sql += " AND (namespace=? OR namespace=? OR substr(namespace, 1, ?)=?)"
                args += [base, base + "/", len(base) + 1, base + "/"]
        if strategy_id:
            sql += " AND strategy_id=?"
            args.append(strategy_id)
        return self._db.execute(sql + " ORDER BY updated_at DESC, id", args).fetchall()

    @staticmethod
    def _record_doc(row: sqlite3.Row, score: float | None = None, full: bool = False) -> dict:
        doc = {
            "memoryRecordId": row["id"],
            "content": {"text": row["text"]},
            "memoryStrategyId": row["strategy_id"],
            "namespaces": [row["namespace"]],
            "createdAt": _ts(row["created_at"]),
            "timestamp": _ts(row["ts"] if row["ts"] is not None else row["updated_at"]),
        }
        if score is not None:
            doc["score"] = score
        if row["metadata"]:
            doc["metadata"] = json.loads(row["metadata"])
        return doc

    def list_memory_records(self, params: dict, region: str, account: str) -> dict:
        namespace, path = self._namespace_filter(params)
        limit = params.get("maxResults") or 20
        filters = params.get("metadataFilters") or []
        scope = "ListMemoryRecords:" + _fingerprint([namespace, path, params.get("memoryStrategyId"), filters])[:16]
        offset = decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
            rows = self._record_rows(mid, namespace, path, params.get("memoryStrategyId"))
        rows = [r for r in rows if _record_matches(r, filters)]
        page = rows[offset:offset + limit]
        out = {"memoryRecordSummaries": [self._record_doc(r) for r in page]}
        if offset + limit < len(rows):
            out["nextToken"] = encode_token({"s": scope, "o": offset + limit})
        return out

    def retrieve_memory_records(self, params: dict, region: str, account: str) -> dict:
        namespace, path = self._namespace_filter(params)
        criteria = params["searchCriteria"]
        top_k = criteria.get("topK") or DEFAULT_TOP_K
        limit = params.get("maxResults") or DEFAULT_PAGE
        filters = criteria.get("metadataFilters") or []
        scope = "Retrieve:" + _fingerprint([namespace, path, criteria])[:16]
        offset = decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
        query = self.embedder.embed_query(criteria["searchQuery"])
        with self._lock:
            ids, strategy_ids, matrix = (self._namespace_index(mid, namespace) if namespace
                                         else self._path_index(mid, path))
            if criteria.get("memoryStrategyId") and len(ids):
                keep = np.nonzero(strategy_ids == criteria["memoryStrategyId"])[0]
                ids, matrix = [ids[i] for i in keep], matrix[keep]
            if len(ids) == 0:
                return {"memoryRecordSummaries": []}
            scores = matrix @ query
            # Only the best top_k need ordering: partition first, then sort those few.
            best = (np.argpartition(-scores, top_k - 1)[:top_k] if len(scores) > top_k
                    else np.arange(len(scores)))
            best = best[np.argsort(-scores[best], kind="stable")]
            hits = [(ids[i], float(scores[i])) for i in best if scores[i] >= MIN_SCORE]
            rows = {r["id"]: r for r in self._db.execute(
                f"SELECT * FROM records WHERE id IN ({','.join('?' * len(hits))})", [h[0] for h in hits])}
        ranked = [(rows[i], s) for i, s in hits if i in rows and _record_matches(rows[i], filters)]
        page = ranked[offset:offset + limit]
        out = {"memoryRecordSummaries": [self._record_doc(r, round(min(1.0, s), 6)) for r, s in page]}
        if offset + limit < len(ranked):
            out["nextToken"] = encode_token({"s": scope, "o": offset + limit})
        return out

    def _namespace_index(self, mid: str, namespace: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The embeddings of one namespace's records as a matrix, kept until a record of the memory changes."""
        cache = self._vectors.setdefault(mid, {})
        if namespace not in cache:
            rows = self._db.execute("SELECT id, strategy_id, embedding FROM records WHERE memory_id=? AND "
                                    "namespace=? AND embedding IS NOT NULL", (mid, namespace)).fetchall()
            cache[namespace] = _index(rows)
        return cache[namespace]

    def _path_index(self, mid: str, path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        cache = self._vectors.setdefault(mid, {})
        key = ("path", path)
        if key not in cache:
            rows = [r for r in self._record_rows(mid, None, path, None) if r["embedding"] is not None]
            cache[key] = _index(rows)
        return cache[key]

    def _record_row(self, params: dict, region: str, account: str) -> sqlite3.Row:
        mid = self._usable_memory(params["memoryId"], region, account)["id"]
        row = self._db.execute("SELECT * FROM records WHERE memory_id=? AND id=?",
                               (mid, params["memoryRecordId"])).fetchone()
        if row is None or (params.get("namespace") and row["namespace"] != params["namespace"]):
            raise ResourceNotFoundException(f"Memory record {params['memoryRecordId']} was not found in "
                                            f"memory {mid}" + (f" under namespace {params['namespace']}."
                                                              if params.get("namespace") else "."))
        return row

    def get_memory_record(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            return {"memoryRecord": self._record_doc(self._record_row(params, region, account), full=True)}

    def delete_memory_record(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            row = self._record_row(params, region, account)
            with self._tx():
                self._db.execute("DELETE FROM records WHERE id=?", (row["id"],))
            self._vectors.pop(row["memory_id"], None)
            return {"memoryRecordId": row["id"]}

    def batch_create_memory_records(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
            strategy_ids = {r["id"] for r in self._db.execute("SELECT id FROM strategies WHERE memory_id=?", (mid,))}
        ok, failed, todo = [], [], []
        for item in params["records"]:
            text = (item.get("content") or {}).get("text")
            problem = None
            if not item.get("namespaces"):
                problem = "namespaces must hold the record's one namespace."
            elif not text:
                problem = "content.text is required."
            elif item.get("memoryStrategyId") and item["memoryStrategyId"] not in strategy_ids:
                problem = f"memory {mid} has no strategy {item['memoryStrategyId']}."
            if problem:
                failed.append({"memoryRecordId": _record_id(), "status": "FAILED", "errorCode": 400,
                               "requestIdentifier": item["requestIdentifier"], "errorMessage": problem})
            else:
                todo.append(item)
        vectors = self.embedder.embed([i["content"]["text"] for i in todo])
        with self._lock, self._tx():
            now = _now()
            for item, vector in zip(todo, vectors):
                rid = _record_id()
                self._db.execute(
                    "INSERT INTO records (id, memory_id, strategy_id, namespace, text, norm, created_at, updated_at,"
                    " ts, metadata, embedding) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (rid, mid, item.get("memoryStrategyId") or "self-managed", item["namespaces"][0],
                     item["content"]["text"], rules.normalise(item["content"]["text"]), now, now,
                     _epoch(item["timestamp"]), json.dumps(item["metadata"], default=_json_default)
                     if item.get("metadata") else None, to_blob(vector)))
                ok.append({"memoryRecordId": rid, "status": "SUCCEEDED",
                           "requestIdentifier": item["requestIdentifier"]})
            self._vectors.pop(mid, None)
        return {"successfulRecords": ok, "failedRecords": failed}

    def batch_update_memory_records(self, params: dict, region: str, account: str) -> dict:
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
        texts = [(r.get("content") or {}).get("text") for r in params["records"]]
        vectors = self.embedder.embed([t for t in texts if t])
        by_text = iter(vectors)
        ok, failed = [], []
        with self._lock, self._tx():
            for item, text in zip(params["records"], texts):
                vector = next(by_text) if text else None
                row = self._db.execute("SELECT * FROM records WHERE memory_id=? AND id=?",
                                       (mid, item["memoryRecordId"])).fetchone()
                if row is None:
                    failed.append({"memoryRecordId": item["memoryRecordId"], "status": "FAILED", "errorCode": 404,
                                   "errorMessage": f"Memory record {item['memoryRecordId']} was not found."})
                    continue
                self._db.execute(
                    "UPDATE records SET text=?, norm=?, embedding=?, namespace=?, strategy_id=?, metadata=?, ts=?, "
                    "updated_at=? WHERE id=?",
                    (text or row["text"], rules.normalise(text or row["text"]),
                     to_blob(vector) if vector is not None else row["embedding"],
                     (item.get("namespaces") or [row["namespace"]])[0],
                     item.get("memoryStrategyId") or row["strategy_id"],
                     json.dumps(item["metadata"], default=_json_default) if item.get("metadata") else row["metadata"],
                     _epoch(item["timestamp"]), _now(), row["id"]))
                ok.append({"memoryRecordId": row["id"], "status": "SUCCEEDED"})
            self._vectors.pop(mid, None)
        return {"successfulRecords": ok, "failedRecords": failed}

    def batch_delete_memory_records(self, params: dict, region: str, account: str) -> dict:
        ok, failed = [], []
        with self._lock:
            mid = self._usable_memory(params["memoryId"], region, account)["id"]
            with self._tx():
                for item in params["records"]:
                    sql, args = "DELETE FROM records WHERE memory_id=? AND id=?", [mid, item["memoryRecordId"]]
                    if item.get("namespace"):
                        sql += " AND namespace=?"
                        args.append(item["namespace"])
                    if self._db.execute(sql, args).rowcount:
                        ok.append({"memoryRecordId": item["memoryRecordId"], "status": "SUCCEEDED"})
                    else:
                        failed.append({"memoryRecordId": item["memoryRecordId"], "status": "FAILED",
                                       "errorCode": 404,
                                       "errorMessage": f"Memory record {item['memoryRecordId']} was not found."})
            self._vectors.pop(mid, None)
        return {"successfulRecords": ok, "failedRecords": failed}

    # -- extraction ------------------------------------------------------------------------------
    def _extraction_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                job = self._db.execute("SELECT * FROM extraction_jobs ORDER BY due_at LIMIT 1").fetchone()
                wait = None if job is None else job["due_at"] - _now()
                if job is None or wait > 0:
                    self._wake.wait(timeout=wait if wait is not None else 5.0)
                    continue
                job = dict(job)
            try:
                self.extract(job["memory_id"], job["actor_id"], job["session_id"])
            except Exception:  # one bad session must not stop extraction for every other one
                log.exception("extraction failed for %s/%s/%s", job["memory_id"], job["actor_id"], job["session_id"])
            with self._lock, self._tx():
                # A newer event moved due_at on: leave the job for the next round, which sees that event.
                self._db.execute("DELETE FROM extraction_jobs WHERE memory_id=? AND actor_id=? AND session_id=? "
                                 "AND due_at=?", (job["memory_id"], job["actor_id"], job["session_id"],
                                                  job["due_at"]))

    def extract(self, mid: str, actor_id: str, session_id: str) -> int:
        """Run the memory's strategies over a session's new events; return how many records changed."""
        with self._lock:
            memory = self._db.execute("SELECT * FROM memories WHERE id=?", (mid,)).fetchone()
            if memory is None or memory["status"] != "ACTIVE":
                return 0
            strategies = self._db.execute("SELECT * FROM strategies WHERE memory_id=?", (mid,)).fetchall()
            progress = self._db.execute("SELECT last_seq FROM extraction_progress WHERE memory_id=? AND "
                                        "actor_id=? AND session_id=?", (mid, actor_id, session_id)).fetchone()
            last_seq = progress["last_seq"] if progress else 0
            events = self._db.execute(
                # extractionMode SKIP: "stored in short-term memory but excluded from long-term memory
                # extraction" (botocore's CreateEvent model), also when a later event of its session is extracted.
                "SELECT seq, payload FROM events WHERE memory_id=? AND actor_id=? AND session_id=? "
                "AND skip_extraction=0 ORDER BY ts, seq", (mid, actor_id, session_id)).fetchall()
        if not events:
            return 0
        all_turns = [t for e in events for t in _turns(e["payload"])]
        new_turns = [t for e in events if e["seq"] > last_seq for t in _turns(e["payload"])]
        planned: list[tuple[sqlite3.Row, str, list[str], bool]] = []
        for strategy in strategies:
            kind = _effective_type(strategy)
            namespace = resolve_namespace(strategy["template"], actor_id=actor_id, session_id=session_id,
                                          strategy_id=strategy["id"])
            if kind == rules.SEMANTIC:
                planned.append((strategy, namespace, rules.extract_facts(new_turns), False))
            elif kind == rules.USER_PREFERENCE:
                planned.append((strategy, namespace, rules.extract_preferences(new_turns), False))
            elif kind == rules.SUMMARIZATION:
                summary = rules.summarize(all_turns)
                planned.append((strategy, namespace, [summary] if summary else [], True))
        texts = [t for _, _, items, _ in planned for t in items]
        vectors = iter(self.embedder.embed(texts))
        changed = 0
        with self._lock:
            if self._db.execute("SELECT status FROM memories WHERE id=?", (mid,)).fetchone() is None:
                return 0
            with self._tx():
                now = _now()
                for strategy, namespace, items, per_session in planned:
                    existing = self._namespace_index(mid, namespace)[2]
                    for text in items:
                        vector = next(vectors)
                        if per_session:
                            changed += self._upsert_summary(mid, strategy["id"], namespace, session_id, text,
                                                            vector, now)
                            continue
                        norm = rules.normalise(text)
                        if self._db.execute("SELECT 1 FROM records WHERE memory_id=? AND namespace=? AND norm=?",
                                            (mid, namespace, norm)).fetchone():
                            continue
                        if len(existing) and float(np.max(existing @ vector)) >= DUPLICATE_SIMILARITY:
                            continue
                        # 10 µs apart (well above float rounding), so records keep the order they were said in.
                        at = now + changed * 1e-5
                        self._db.execute(
                            "INSERT INTO records (id, memory_id, strategy_id, namespace, text, norm, created_at,"
                            " updated_at, ts, embedding, session_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (_record_id(), mid, strategy["id"], namespace, text, norm, at, at, at,
                             to_blob(vector), session_id))
                        changed += 1
                self._db.execute(
                    "INSERT INTO extraction_progress (memory_id, actor_id, session_id, last_seq) VALUES (?,?,?,?) "
                    "ON CONFLICT (memory_id, actor_id, session_id) DO UPDATE SET last_seq=excluded.last_seq",
                    (mid, actor_id, session_id, events[-1]["seq"]))
            if changed:
                self._vectors.pop(mid, None)
        return changed

    def _upsert_summary(self, mid: str, sid: str, namespace: str, session_id: str, text: str,
                        vector: np.ndarray, now: float) -> int:
        row = self._db.execute("SELECT id, text FROM records WHERE memory_id=? AND strategy_id=? AND namespace=? "
                               "AND session_id=?", (mid, sid, namespace, session_id)).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO records (id, memory_id, strategy_id, namespace, text, norm, created_at, updated_at, ts,"
                " embedding, session_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (_record_id(), mid, sid, namespace, text, rules.normalise(text), now, now, now, to_blob(vector),
                 session_id))
            return 1
        if row["text"] == text:
            return 0
        self._db.execute("UPDATE records SET text=?, norm=?, embedding=?, updated_at=?, ts=? WHERE id=?",
                         (text, rules.normalise(text), to_blob(vector), now, now, row["id"]))
        return 1


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error); nested uses join the outer one."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.outer = False

    def __enter__(self):
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.outer:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _index(rows: list) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids = [r["id"] for r in rows]
    strategy_ids = np.array([r["strategy_id"] for r in rows], dtype=object)
    matrix = (np.vstack([from_blob(r["embedding"]) for r in rows]) if rows
              else np.zeros((0, DIMENSIONS), dtype=np.float32))
    return ids, strategy_ids, matrix


def _record_id() -> str:
    return "mem-" + str(uuid.uuid4())


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot store {type(value).__name__}")


def _turns(payload_json: str) -> list[rules.Turn]:
    turns = []
    for item in json.loads(payload_json):
        conv = item.get("conversational") if isinstance(item, dict) else None
        if conv and (conv.get("content") or {}).get("text"):
            turns.append(rules.Turn(conv.get("role", "OTHER"), conv["content"]["text"]))
    return turns


def _effective_type(strategy: sqlite3.Row) -> str | None:
    kind = strategy["type"]
    if kind != rules.CUSTOM:
        return kind
    return {"SEMANTIC_OVERRIDE": rules.SEMANTIC, "SUMMARY_OVERRIDE": rules.SUMMARIZATION,
            "USER_PREFERENCE_OVERRIDE": rules.USER_PREFERENCE}.get(strategy["configuration"])


def _event_matches(row: sqlite3.Row, filters: list[dict]) -> bool:
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


def _record_matches(row: sqlite3.Row, filters: list[dict]) -> bool:
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
