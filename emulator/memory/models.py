"""AgentCore Memory's backend: memories, events, sessions and long-term records of both planes, in SQLite.

Everything lives in one SQLite file under the state dir (schema.py), so a restarted emulator finds every
memory, event, record and pending extraction where it left them. One lock serialises access: the server
is threaded, and SQLite work here is short (keyed reads and single-row writes); the slow parts (embedding
text) run outside it. The rules are split by concern into mixins that share that database and lock:
control.py (memories and strategies), events.py (short-term memory), records.py (long-term records and
their vector index), extraction.py (the worker that runs the strategies).
"""
from __future__ import annotations

import threading

from ..core.settings import Settings
from .control import ControlPlane
from .events import Events
from .extraction import Extraction
from .ranking import Embedder
from .records import Records
from .schema import Transaction, open_database


class MemoryBackend(ControlPlane, Events, Records, Extraction):
    """State and rules of both planes, over one SQLite database."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None):
        state_dir = settings.state_dir / "memory"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "memory.sqlite3"
        self.extraction_delay = settings.extraction_delay
        self.activation_delay = settings.memory_activation_delay
        self.deletion_delay = settings.memory_deletion_delay
        self.max_memories = settings.max_memories
        self.idempotency_window = settings.idempotency_window
        self.min_score = settings.memory_min_score
        self.embedder = embedder or Embedder()
        self._lock = threading.RLock()
        self._db = open_database(self.path)
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

    def _tx(self) -> Transaction:
        return Transaction(self._db)
