"""Claude Code's transcript kept in S3 through claude-agent-sdk's SessionStore protocol, so a conversation outlives its microVM.

S3 objects cannot be appended to, so every append() writes one small JSONL object ("part") and
load() reads a key's parts back in key order. A part's name starts with a zero-padded, strictly
increasing nanosecond stamp, so S3's lexicographic listing is the order the parts were appended
in (within a process exactly; across processes by commit time, which is what the protocol asks).

Layout under the store's prefix (the agent uses `sessions/<actor>/<session>/.claude/transcripts/`,
inside the runtime session's own prefix and so inside what its role may touch):

    <project>/<session>/main/<stamp>.jsonl            the main transcript
    <project>/<session>/sub/<subpath>/<stamp>.jsonl   a subagent transcript (subpath quoted to one segment)
"""
from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, unquote

_GET_WORKERS = 8


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


class S3SessionStore:
    """A SessionStore (append, load, list_sessions, delete, list_subkeys) on one bucket and prefix."""

    def __init__(self, s3, bucket: str, prefix: str, page_size: int = 1000):
        if not bucket:
            raise ValueError("a bucket is required for the S3 session store")
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.page_size = page_size
        self._lock = threading.Lock()
        self._last_stamp = 0
        self._suffix = uuid.uuid4().hex[:8]  # tells this writer's parts from another process's
        self._counter = itertools.count()
        self.calls = 0  # S3 requests made, for benchmarks and tests

    # -- keys ----------------------------------------------------------------------------------
    def _session_prefix(self, key: dict) -> str:
        return (f"{self.prefix}{_segment(key['project_key'], 'project_key')}/"
                f"{_segment(key['session_id'], 'session_id')}/")

    def _key_prefix(self, key: dict) -> str:
        subpath = key.get("subpath")
        if subpath is None:
            return self._session_prefix(key) + "main/"
        return self._session_prefix(key) + f"sub/{_segment(subpath, 'subpath')}/"

    def _stamp(self) -> str:
        with self._lock:
            # time_ns can repeat or step back (clock adjustments); the order of appends must not.
            self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
            return f"{self._last_stamp:020d}-{self._suffix}-{next(self._counter):06d}"

    # -- S3 calls (blocking; the protocol's methods run them in a thread) ------------------------
    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[list[dict], list[str]]:
        objects, prefixes = [], []
        kwargs = {"Bucket": self.bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": self.page_size}}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
            self.calls += 1
            objects += page.get("Contents", [])
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return objects, prefixes

    def _get(self, key: str) -> bytes:
        self.calls += 1
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _append(self, key: dict, entries: list) -> None:
        if not entries:
            return
        body = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries).encode("utf-8")
        self.calls += 1
        self.s3.put_object(Bucket=self.bucket, Key=f"{self._key_prefix(key)}{self._stamp()}.jsonl", Body=body,
                           ContentType="application/x-ndjson")

    def _load(self, key: dict) -> list | None:
        objects, _ = self._list(self._key_prefix(key))
        parts = sorted(o["Key"] for o in objects if o["Key"].endswith(".jsonl"))
        if not parts:
            return None
        with ThreadPoolExecutor(min(_GET_WORKERS, len(parts))) as pool:
            bodies = list(pool.map(self._get, parts))
        entries, seen = [], set()
        for part, body in zip(parts, bodies):
            for number, line in enumerate(body.decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"s3://{self.bucket}/{part} line {number} is not JSON: {exc}") from None
                # A batch the SDK retried after a timeout may have landed twice: uuid is the idempotency key.
                ident = entry.get("uuid") if isinstance(entry, dict) else None
                if ident is not None:
                    if ident in seen:
                        continue
                    seen.add(ident)
                entries.append(entry)
        return entries

    def _list_sessions(self, project_key: str) -> list[dict]:
        prefix = f"{self.prefix}{_segment(project_key, 'project_key')}/"
        objects, _ = self._list(prefix)
        newest: dict[str, float] = {}
        for obj in objects:
            session, _, rest = obj["Key"][len(prefix):].partition("/")
            if rest.startswith("main/"):
                mtime = obj["LastModified"].timestamp() * 1000
                newest[unquote(session)] = max(newest.get(unquote(session), 0), mtime)
        return [{"session_id": sid, "mtime": int(mtime)} for sid, mtime in newest.items()]

    def _delete(self, key: dict) -> None:
        # The main key cascades to the session's subagent transcripts; a subpath key removes only itself.
        prefix = self._session_prefix(key) if key.get("subpath") is None else self._key_prefix(key)
        objects, _ = self._list(prefix)
        keys = [o["Key"] for o in objects]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            self.calls += 1
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})

    def _list_subkeys(self, key: dict) -> list[str]:
        _, prefixes = self._list(self._session_prefix(key) + "sub/", delimiter="/")
        base = len(self._session_prefix(key) + "sub/")
        return [unquote(p[base:].rstrip("/")) for p in prefixes]

    def compact(self, key: dict, min_parts: int = 20) -> int:
        """Fold a key's parts into one once there are `min_parts` or more; how many parts were folded.

        Resuming reads every part, so a long conversation of one part per turn costs one GET per turn.
        The folded object sorts right after the newest part it replaces (`~` sorts after `.`) and so
        before anything appended later; it is written before the parts are deleted, and a part that
        outlives a failed delete is harmless: load() drops the entries whose uuid it has already seen.
        Only safe while one process writes the key, as AgentCore gives a session one microVM at a time.
        """
        objects, _ = self._list(self._key_prefix(key))
        parts = sorted(o["Key"] for o in objects if o["Key"].endswith(".jsonl"))
        if len(parts) < min_parts:
            return 0
        with ThreadPoolExecutor(min(_GET_WORKERS, len(parts))) as pool:
            bodies = list(pool.map(self._get, parts))
        body = b"".join(b if b.endswith(b"\n") or not b else b + b"\n" for b in bodies)
        self.calls += 1
        self.s3.put_object(Bucket=self.bucket, Key=parts[-1][:-len(".jsonl")] + "~c.jsonl", Body=body,
                           ContentType="application/x-ndjson")
        for start in range(0, len(parts), 1000):
            self.calls += 1
            self.s3.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in parts[start:start + 1000]], "Quiet": True})
        return len(parts)

    def exists(self, key: dict) -> bool:
        """Whether anything was ever appended under `key` (one listing request)."""
        self.calls += 1
        page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key_prefix(key), MaxKeys=1)
        return bool(page.get("Contents"))

    # -- the SessionStore protocol ---------------------------------------------------------------
    async def append(self, key: dict, entries: list) -> None:
        await asyncio.to_thread(self._append, key, list(entries))

    async def load(self, key: dict) -> list | None:
        return await asyncio.to_thread(self._load, key)

    async def list_sessions(self, project_key: str) -> list[dict]:
        return await asyncio.to_thread(self._list_sessions, project_key)

    async def delete(self, key: dict) -> None:
        await asyncio.to_thread(self._delete, key)

    async def list_subkeys(self, key: dict) -> list[str]:
        return await asyncio.to_thread(self._list_subkeys, key)
