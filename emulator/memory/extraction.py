"""AgentCore Memory's extraction worker: a short delay after events arrive, the memory's strategies turn a
session's new turns into long-term records (deduplicated), as AWS does in minutes; a strategy run that fails is
kept as a FAILED extraction job (ListMemoryExtractionJobs) that StartMemoryExtractionJob runs again."""
from __future__ import annotations

import json
import logging
import sqlite3
import uuid

import numpy as np

from ..core import paginator
from . import episodes
from . import strategies as rules
from .exceptions import ResourceNotFoundException
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
    """The background worker, the strategies' runs, and the failed runs AWS calls extraction jobs (mixed into
    MemoryBackend)."""

    # -- extraction ------------------------------------------------------------------------------
    def _extraction_loop(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                restart = self._db.execute("SELECT * FROM extraction_failures WHERE restart=1 "
                                           "ORDER BY created_at LIMIT 1").fetchone()
                job = None if restart else self._db.execute(
                    "SELECT * FROM extraction_jobs ORDER BY due_at LIMIT 1").fetchone()
                wait = None if job is None else job["due_at"] - _now()
                if restart is None and (job is None or wait > 0):
                    self._wake.wait(timeout=wait if wait is not None else 5.0)
                    continue
                restart, job = (dict(restart) if restart else None), (dict(job) if job else None)
            if restart is not None:
                try:
                    self._rerun(restart)
                except Exception as e:  # the job goes back to the list, saying why, rather than being retried forever
                    log.exception("extraction job %s could not run again", restart["job_id"])
                    with self._lock, self._tx():
                        self._db.execute("UPDATE extraction_failures SET restart=0, reason=? WHERE job_id=?",
                                         (f"{type(e).__name__}: {e}"[:1000], restart["job_id"]))
                continue
            try:
                self.extract(job["memory_id"], job["actor_id"], job["session_id"])
            except Exception:  # one bad session must not stop extraction for every other one
                log.exception("extraction failed for %s/%s/%s", job["memory_id"], job["actor_id"], job["session_id"])
            with self._lock, self._tx():
                # A newer event moved due_at on: leave the job for the next round, which sees that event.
                self._db.execute("DELETE FROM extraction_jobs WHERE memory_id=? AND actor_id=? AND session_id=? "
                                 "AND due_at=?", (job["memory_id"], job["actor_id"], job["session_id"],
                                                  job["due_at"]))

    def _session_events(self, mid: str, actor_id: str, session_id: str, up_to: int | None = None) -> list:
        # extractionMode SKIP: "stored in short-term memory but excluded from long-term memory extraction"
        # (botocore's CreateEvent model), also when a later event of its session is extracted.
        sql = ("SELECT seq, event_id, payload FROM events WHERE memory_id=? AND actor_id=? AND session_id=? "
               "AND skip_extraction=0")
        args: list = [mid, actor_id, session_id]
        if up_to is not None:
            sql += " AND seq<=?"
            args.append(up_to)
        return self._db.execute(sql + " ORDER BY ts, seq", args).fetchall()

    def extract(self, mid: str, actor_id: str, session_id: str) -> int:
        """Run the memory's strategies over a session's new events; return how many records changed.

        A strategy whose run fails is recorded as a failed extraction job holding those events, which
        ListMemoryExtractionJobs lists and StartMemoryExtractionJob runs again; the other strategies go on."""
        with self._lock:
            memory = self._db.execute("SELECT * FROM memories WHERE id=?", (mid,)).fetchone()
            if memory is None or memory["status"] != "ACTIVE":
                return 0
            strategies = self._db.execute("SELECT * FROM strategies WHERE memory_id=?", (mid,)).fetchall()
            progress = self._db.execute("SELECT last_seq FROM extraction_progress WHERE memory_id=? AND "
                                        "actor_id=? AND session_id=?", (mid, actor_id, session_id)).fetchone()
            last_seq = progress["last_seq"] if progress else 0
            events = self._session_events(mid, actor_id, session_id)
        if not events:
            return 0
        new = [e for e in events if e["seq"] > last_seq]
        changed = 0
        for strategy in strategies:
            try:
                changed += self._run_strategy(mid, strategy, actor_id, session_id, events, new)
            except Exception as e:  # the failure is kept as a job the caller can list and start again
                self._record_failure(mid, strategy["id"], actor_id, session_id, new, e)
        with self._lock:
            if self._db.execute("SELECT 1 FROM memories WHERE id=?", (mid,)).fetchone() is None:
                return changed
            with self._tx():
                self._db.execute(
                    "INSERT INTO extraction_progress (memory_id, actor_id, session_id, last_seq) VALUES (?,?,?,?) "
                    "ON CONFLICT (memory_id, actor_id, session_id) DO UPDATE SET last_seq=excluded.last_seq",
                    (mid, actor_id, session_id, events[-1]["seq"]))
        return changed

    def _plan(self, strategy: sqlite3.Row, actor_id: str, session_id: str, all_turns: list, new_turns: list
              ) -> list[tuple[str, list[str], str | None]]:
        """What one strategy writes: (namespace, texts, key) groups; a key names the one record per session
        (summary, episode) or per namespace (reflection) that a text replaces, None adds deduplicated records."""
        kind = _effective_type(strategy)
        settings = json.loads(strategy["settings"] or "{}")
        override = settings.get("override") or {}
        # A custom strategy names its own model and prompt: with an upstream the model is asked with that prompt,
        # and a model that cannot answer fails the job as on AWS; without one the rules run (README: memory).
        append = (override.get("extraction") or {}).get("appendToPrompt")
        strict = strategy["type"] == rules.CUSTOM and rules.model_extractor is not None
        namespace = resolve_namespace(strategy["template"], actor_id=actor_id, session_id=session_id,
                                      strategy_id=strategy["id"])
        if kind == rules.SEMANTIC:
            return [(namespace, rules.extract_facts(new_turns, append, strict), None)]
        if kind == rules.USER_PREFERENCE:
            return [(namespace, rules.extract_preferences(new_turns, append, strict), None)]
        if kind == rules.SUMMARIZATION:
            summary = rules.summarize(all_turns)
            return [(namespace, [summary] if summary else [], session_id)]
        if kind == rules.EPISODIC:
            text = episodes.episode(all_turns)
            return [(namespace, [text] if text else [], session_id)]
        return []

    def _run_strategy(self, mid: str, strategy: sqlite3.Row, actor_id: str, session_id: str, events: list,
                      new: list) -> int:
        all_turns = [t for e in events for t in _turns(e["payload"])]
        new_turns = [t for e in new for t in _turns(e["payload"])]
        planned = self._plan(strategy, actor_id, session_id, all_turns, new_turns)
        changed = self._write(mid, strategy["id"], planned)
        if _effective_type(strategy) == rules.EPISODIC and changed:
            changed += self._reflect(mid, strategy, actor_id, session_id)
        return changed

    def _reflect(self, mid: str, strategy: sqlite3.Row, actor_id: str, session_id: str) -> int:
        """Rewrite the reflection over every episode of the strategy under the reflections' namespace."""
        settings = json.loads(strategy["settings"] or "{}")
        if not settings.get("reflection"):
            return 0  # an episodic strategy from a state dir older than reflections: episodes only
        namespace = resolve_namespace(settings["reflection"], actor_id=actor_id, session_id=session_id,
                                      strategy_id=strategy["id"])
        with self._lock:
            written = [r["text"] for r in self._record_rows(mid, None, namespace, strategy["id"])
                       if r["session_id"] is not None and r["text"].startswith("<episode>")]
        text = episodes.reflect(list(reversed(written)))  # oldest first
        return self._write(mid, strategy["id"], [(namespace, [text] if text else [], _REFLECTION_KEY)])

    def _write(self, mid: str, sid: str, planned: list[tuple[str, list[str], str | None]]) -> int:
        texts = [t for _, items, _ in planned for t in items]
        if not texts:
            return 0
        vectors = iter(self.embedder.embed(texts))
        changed = 0
        with self._lock:
            if self._db.execute("SELECT status FROM memories WHERE id=?", (mid,)).fetchone() is None:
                return 0
            with self._tx():
                now = _now()
                for namespace, items, key in planned:
                    existing = self._namespace_index(mid, namespace)[2]
                    for text in items:
                        vector = next(vectors)
                        if key is not None:
                            changed += self._upsert_keyed(mid, sid, namespace, key, text, vector, now)
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
                            (_record_id(), mid, sid, namespace, text, norm, at, at, at, to_blob(vector), None))
                        changed += 1
            if changed:
                self._vectors.pop(mid, None)
        return changed

    def _upsert_keyed(self, mid: str, sid: str, namespace: str, key: str, text: str,
                      vector: np.ndarray, now: float) -> int:
        row = self._db.execute("SELECT id, text FROM records WHERE memory_id=? AND strategy_id=? AND namespace=? "
                               "AND session_id=?", (mid, sid, namespace, key)).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO records (id, memory_id, strategy_id, namespace, text, norm, created_at, updated_at, ts,"
                " embedding, session_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (_record_id(), mid, sid, namespace, text, rules.normalise(text), now, now, now, to_blob(vector),
                 key))
            return 1
        if row["text"] == text:
            return 0
        self._db.execute("UPDATE records SET text=?, norm=?, embedding=?, updated_at=?, ts=? WHERE id=?",
                         (text, rules.normalise(text), to_blob(vector), now, now, row["id"]))
        return 1

    # -- failed runs: ListMemoryExtractionJobs and StartMemoryExtractionJob ------------------------
    def _record_failure(self, mid: str, sid: str, actor_id: str, session_id: str, new: list, error: Exception
                        ) -> None:
        reason = str(error) if isinstance(error, rules.ExtractionFailed) else f"{type(error).__name__}: {error}"
        log.warning("memory: extraction by strategy %s failed for %s/%s/%s: %s", sid, mid, actor_id, session_id,
                    reason)
        if not new:
            return
        messages = [{"eventId": e["event_id"], "messageIndex": i}
                    for e in new for i, _ in enumerate(json.loads(e["payload"]))]
        with self._lock:
            if self._db.execute("SELECT 1 FROM memories WHERE id=?", (mid,)).fetchone() is None:
                return
            with self._tx():
                self._db.execute(
                    "INSERT INTO extraction_failures (job_id, memory_id, actor_id, session_id, strategy_id, "
                    "first_seq, last_seq, messages, reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (f"job-{uuid.uuid4()}", mid, actor_id, session_id, sid, new[0]["seq"], new[-1]["seq"],
                     json.dumps(messages), reason[:1000], _now()))

    def _rerun(self, job: dict) -> None:
        mid = job["memory_id"]
        with self._lock:
            strategy = self._db.execute("SELECT * FROM strategies WHERE id=? AND memory_id=?",
                                        (job["strategy_id"], mid)).fetchone()
            # The whole session, as a summary or an episode reads it; the job's own events for the other strategies.
            events = self._session_events(mid, job["actor_id"], job["session_id"])
        held = [e for e in events if job["first_seq"] <= e["seq"] <= job["last_seq"]]
        reason = None
        if strategy is None:
            log.warning("memory: extraction job %s is dropped: its strategy %s is gone", job["job_id"],
                        job["strategy_id"])
        else:
            try:
                self._run_strategy(mid, strategy, job["actor_id"], job["session_id"], events, held)
            except Exception as e:  # the job stays listed, with why it failed this time
                reason = str(e) if isinstance(e, rules.ExtractionFailed) else f"{type(e).__name__}: {e}"
                log.warning("memory: extraction job %s failed again: %s", job["job_id"], reason)
        with self._lock, self._tx():
            if reason is None:
                self._db.execute("DELETE FROM extraction_failures WHERE job_id=?", (job["job_id"],))
            else:
                self._db.execute("UPDATE extraction_failures SET restart=0, reason=? WHERE job_id=?",
                                 (reason[:1000], job["job_id"]))

    def list_memory_extraction_jobs(self, params: dict, account: str, region: str) -> dict:
        # "Lists all long-term memory extraction jobs that are eligible to be started" (botocore's model):
        # failed ones, the only ExtractionJobStatus there is; a job started again is not listed while it runs.
        limit = params.get("maxResults") or 20
        flt = params.get("filter") or {}
        scope = paginator.scope("ListMemoryExtractionJobs", params)
        offset = paginator.decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
            sql, args = "SELECT * FROM extraction_failures WHERE memory_id=? AND restart=0", [mid]
            for member, column in (("strategyId", "strategy_id"), ("sessionId", "session_id"),
                                   ("actorId", "actor_id")):
                if flt.get(member):
                    sql += f" AND {column}=?"
                    args.append(flt[member])
            rows = self._db.execute(sql + " ORDER BY created_at, job_id LIMIT ? OFFSET ?",
                                    args + [limit + 1, offset]).fetchall()
        out = {"jobs": [{"jobID": r["job_id"], "messages": {"messagesList": json.loads(r["messages"])},
                         "status": "FAILED", "failureReason": r["reason"], "strategyId": r["strategy_id"],
                         "sessionId": r["session_id"], "actorId": r["actor_id"]} for r in rows[:limit]]}
        if len(rows) > limit:
            out["nextToken"] = paginator.encode(scope, {"o": offset + limit})
        return out

    def start_memory_extraction_job(self, params: dict, account: str, region: str) -> dict:
        job_id = params["extractionJob"]["jobId"]
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
            row = self._db.execute("SELECT restart FROM extraction_failures WHERE memory_id=? AND job_id=?",
                                   (mid, job_id)).fetchone()
            if row is None:
                raise ResourceNotFoundException(
                    f"Extraction job {job_id} was not found in memory {mid}: only failed jobs can be started; "
                    f"ListMemoryExtractionJobs lists them.")
            if not row["restart"]:
                with self._tx():
                    self._db.execute("UPDATE extraction_failures SET restart=1 WHERE job_id=?", (job_id,))
                self._wake.notify_all()
        return {"jobId": job_id}


# The key of the one reflection record a strategy keeps per reflections' namespace (episodes use their session's id).
_REFLECTION_KEY = "*reflection*"


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
            "USER_PREFERENCE_OVERRIDE": rules.USER_PREFERENCE,
            "EPISODIC_OVERRIDE": rules.EPISODIC}.get(strategy["configuration"])

