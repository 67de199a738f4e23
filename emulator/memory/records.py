"""AgentCore Memory's long-term records: listing, retrieval ranked by similarity, batch writes, and the
per-namespace matrix of embeddings that ranking reads (bedrock-agentcore data plane)."""
from __future__ import annotations

import json
import sqlite3

import numpy as np

from ..core import paginator
from . import strategies as rules
from .exceptions import ResourceNotFoundException, ValidationException
from .filters import record_matches
from .ranking import DIMENSIONS, from_blob, to_blob
from .schema import _epoch, _json_default, _now, _record_id, _ts

DEFAULT_TOP_K = 10
DEFAULT_PAGE = 20


class Records:
    """Long-term records and their vector index (mixed into MemoryBackend)."""

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

    def list_memory_records(self, params: dict, account: str, region: str) -> dict:
        namespace, path = self._namespace_filter(params)
        limit = params.get("maxResults") or 20
        filters = params.get("metadataFilters") or []
        scope = paginator.scope("ListMemoryRecords", params)
        offset = paginator.decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
            rows = self._record_rows(mid, namespace, path, params.get("memoryStrategyId"))
        rows = [r for r in rows if record_matches(r, filters)]
        page = rows[offset:offset + limit]
        out = {"memoryRecordSummaries": [self._record_doc(r) for r in page]}
        if offset + limit < len(rows):
            out["nextToken"] = paginator.encode(scope, {"o": offset + limit})
        return out

    def retrieve_memory_records(self, params: dict, account: str, region: str) -> dict:
        namespace, path = self._namespace_filter(params)
        criteria = params["searchCriteria"]
        top_k = criteria.get("topK") or DEFAULT_TOP_K
        limit = params.get("maxResults") or DEFAULT_PAGE
        filters = criteria.get("metadataFilters") or []
        scope = paginator.scope("RetrieveMemoryRecords", params)
        offset = paginator.decode_offset(params.get("nextToken"), scope)
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
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
            hits = [(ids[i], float(scores[i])) for i in best if scores[i] >= self.min_score]
            rows = {r["id"]: r for r in self._db.execute(
                f"SELECT * FROM records WHERE id IN ({','.join('?' * len(hits))})", [h[0] for h in hits])}
        ranked = [(rows[i], s) for i, s in hits if i in rows and record_matches(rows[i], filters)]
        page = ranked[offset:offset + limit]
        out = {"memoryRecordSummaries": [self._record_doc(r, round(min(1.0, s), 6)) for r, s in page]}
        if offset + limit < len(ranked):
            out["nextToken"] = paginator.encode(scope, {"o": offset + limit})
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

    def _record_row(self, params: dict, account: str, region: str) -> sqlite3.Row:
        mid = self._usable_memory(params["memoryId"], account, region)["id"]
        row = self._db.execute("SELECT * FROM records WHERE memory_id=? AND id=?",
                               (mid, params["memoryRecordId"])).fetchone()
        if row is None or (params.get("namespace") and row["namespace"] != params["namespace"]):
            raise ResourceNotFoundException(f"Memory record {params['memoryRecordId']} was not found in "
                                            f"memory {mid}" + (f" under namespace {params['namespace']}."
                                                              if params.get("namespace") else "."))
        return row

    def get_memory_record(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            return {"memoryRecord": self._record_doc(self._record_row(params, account, region), full=True)}

    def delete_memory_record(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            row = self._record_row(params, account, region)
            with self._tx():
                self._db.execute("DELETE FROM records WHERE id=?", (row["id"],))
            self._vectors.pop(row["memory_id"], None)
            return {"memoryRecordId": row["id"]}

    def batch_create_memory_records(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
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

    def batch_update_memory_records(self, params: dict, account: str, region: str) -> dict:
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
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

    def batch_delete_memory_records(self, params: dict, account: str, region: str) -> dict:
        ok, failed = [], []
        with self._lock:
            mid = self._usable_memory(params["memoryId"], account, region)["id"]
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


def _index(rows: list) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids = [r["id"] for r in rows]
    strategy_ids = np.array([r["strategy_id"] for r in rows], dtype=object)
    matrix = (np.vstack([from_blob(r["embedding"]) for r in rows]) if rows
              else np.zeros((0, DIMENSIONS), dtype=np.float32))
    return ids, strategy_ids, matrix

