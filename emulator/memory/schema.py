"""AgentCore Memory's storage: the SQLite schema, transactions, and how times and values are stored."""
from __future__ import annotations

import base64
import datetime as dt
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS extraction_failures (
    job_id TEXT PRIMARY KEY, memory_id TEXT NOT NULL, actor_id TEXT NOT NULL, session_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, messages TEXT NOT NULL,
    reason TEXT NOT NULL, created_at REAL NOT NULL, restart INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS extraction_failures_by_memory ON extraction_failures(memory_id, created_at);
CREATE TABLE IF NOT EXISTS extraction_progress (
    memory_id TEXT NOT NULL, actor_id TEXT NOT NULL, session_id TEXT NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (memory_id, actor_id, session_id)
);
"""


def open_database(path: Path) -> sqlite3.Connection:
    """The memory database, created on first use; shared by the server's threads under the backend's lock."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    # State dirs from before events recorded extractionMode: add the column (SQLite keeps the rows).
    if "skip_extraction" not in {c["name"] for c in db.execute("PRAGMA table_info(events)")}:
        db.execute("ALTER TABLE events ADD COLUMN skip_extraction INTEGER NOT NULL DEFAULT 0")
    # State dirs from before strategies kept their overrides and reflection namespaces.
    if "settings" not in {c["name"] for c in db.execute("PRAGMA table_info(strategies)")}:
        db.execute("ALTER TABLE strategies ADD COLUMN settings TEXT")
    return db


class Transaction:
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


def _now() -> float:
    return time.time()


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def _record_id() -> str:
    return "mem-" + str(uuid.uuid4())


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot store {type(value).__name__}")

