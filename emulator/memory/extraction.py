"""AgentCore Memory's extraction worker: a short delay after events arrive, the memory's strategies turn a
session's new turns into long-term records (deduplicated), as AWS does in minutes."""
from __future__ import annotations

import json
import logging
import sqlite3

import numpy as np

from . import strategies as rules
from .ranking import to_blob
from .schema import _now, _record_id

log = logging.getLogger("emulator.memory")

# Candidates this similar to a record already in the namespace are duplicates of it.
DUPLICATE_SIMILARITY = 0.95


def resolve_namespace(template: str, *, actor_id: str, session_id: str, strategy_id: str) -> str:
    return (template.replace("{actorId}", actor_id)
            .replace("{sessionId}", session_id)
            .replace("{memoryStrategyId}", strategy_id))


class Extraction:
    """The background worker and the strategies' runs (mixed into MemoryBackend)."""

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


def _turns(payload_json: str) -> list[rules.Turn]:
    turns = []
    for item in json.loads(payload_json):
        conv = item.get("conversational") if isinstance(item, dict) else None
        if conv and (conv.get("content") or {}).get("text"):
            role, text = conv.get("role", "OTHER"), conv["content"]["text"]
            inner = strands_turns(role, text)
            turns.extend([rules.Turn(role, text)] if inner is None else inner)
    return turns


def strands_turns(role: str, text: str) -> list[rules.Turn] | None:
    """The turns inside a Strands SessionMessage, or None when the text is not one.

    Strands' AgentCore session manager (bedrock-agentcore-sdk-python, memory/integrations/strands/
    bedrock_converter.py, message_to_payload) stores each message as `json.dumps(SessionMessage.to_dict())`:
    {"message": {"role": "user" | "assistant", "content": [ContentBlock, ...]}, "message_id": int,
    "redact_message": Message | null, "created_at": ..., "updated_at": ...} (strands-agents/sdk-python,
    types/session.py). A redacted message stands for the original (SessionMessage.to_message), so the original
    is never extracted. Tool results travel in user-role messages but are not what the user said: they become
    TOOL turns; tool calls and other non-text blocks carry no conversation text.
    """
    if not text.startswith("{") or '"message_id"' not in text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "message_id" not in doc or not isinstance(doc.get("message"), dict):
        return None
    message = doc["redact_message"] if isinstance(doc.get("redact_message"), dict) else doc["message"]
    blocks = message.get("content") if isinstance(message.get("content"), list) else []
    said, tool = [], []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            said.append(block["text"])
        result = block.get("toolResult")
        if isinstance(result, dict):
            tool.extend(part["text"] for part in result.get("content") or []
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    speaker = {"user": "USER", "assistant": "ASSISTANT"}.get(str(message.get("role", "")).lower(), role)
    turns = [rules.Turn(speaker, "\n".join(t for t in said if t.strip()))] if any(t.strip() for t in said) else []
    if tool:
        turns.append(rules.Turn("TOOL", "\n".join(tool)))
    return turns


def _effective_type(strategy: sqlite3.Row) -> str | None:
    kind = strategy["type"]
    if kind != rules.CUSTOM:
        return kind
    return {"SEMANTIC_OVERRIDE": rules.SEMANTIC, "SUMMARY_OVERRIDE": rules.SUMMARIZATION,
            "USER_PREFERENCE_OVERRIDE": rules.USER_PREFERENCE}.get(strategy["configuration"])

