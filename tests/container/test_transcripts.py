"""The agent's S3 SessionStore adapter: claude-agent-sdk's own conformance suite, and the rules it adds."""
from __future__ import annotations

import asyncio
import json
import uuid

from claude_agent_sdk.testing import run_session_store_conformance

from agent.transcripts import S3SessionStore


def _bucket(emulator) -> tuple:
    s3 = emulator.client("s3")
    bucket = f"transcripts-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    return s3, bucket


def test_the_s3_store_passes_the_sdks_session_store_conformance_suite(emulator):
    s3, bucket = _bucket(emulator)
    # A fresh prefix per contract: the suite wants each store to start empty.
    asyncio.run(run_session_store_conformance(
        lambda: S3SessionStore(s3, bucket, f"sessions/a/s/.claude/transcripts/{uuid.uuid4().hex}/")))


def test_the_store_keeps_to_its_prefix(emulator):
    s3, bucket = _bucket(emulator)
    store = S3SessionStore(s3, bucket, "sessions/alice/project-1/.claude/transcripts")
    asyncio.run(store.append({"project_key": "p", "session_id": "s"}, [{"type": "user", "uuid": "1"}]))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(k.startswith("sessions/alice/project-1/.claude/transcripts/p/s/main/") for k in keys)


def test_a_batch_that_landed_twice_loads_once(emulator):
    s3, bucket = _bucket(emulator)
    store = S3SessionStore(s3, bucket, "t/")
    key = {"project_key": "p", "session_id": "s"}
    batch = [{"type": "user", "uuid": "u1"}, {"type": "title", "text": "no uuid"}]
    asyncio.run(store.append(key, batch))
    asyncio.run(store.append(key, batch))  # the SDK retries a batch whose first try timed out
    loaded = asyncio.run(store.load(key))
    assert loaded == [batch[0], batch[1], batch[1]]  # entries without a uuid are not deduplicated


def test_a_corrupt_part_is_reported_with_its_key(emulator):
    s3, bucket = _bucket(emulator)
    store = S3SessionStore(s3, bucket, "t/")
    s3.put_object(Bucket=bucket, Key="t/p/s/main/00000000000000000001-x-000000.jsonl", Body=b"{not json\n")
    try:
        asyncio.run(store.load({"project_key": "p", "session_id": "s"}))
    except ValueError as exc:
        assert "t/p/s/main/00000000000000000001-x-000000.jsonl line 1" in str(exc)
    else:
        raise AssertionError("a corrupt transcript part loaded silently")


def test_many_appends_load_in_order(emulator):
    s3, bucket = _bucket(emulator)
    store = S3SessionStore(s3, bucket, "t/")
    key = {"project_key": "p", "session_id": "s"}

    async def go():
        for n in range(30):
            await store.append(key, [{"type": "x", "uuid": str(n), "n": n}])
        return await store.load(key)

    assert [e["n"] for e in asyncio.run(go())] == list(range(30))
    listed = asyncio.run(store.list_sessions("p"))
    assert [s["session_id"] for s in listed] == ["s"] and json.loads(json.dumps(listed)) == listed


def test_compacting_folds_many_parts_into_one_that_loads_the_same_and_keeps_later_appends_after(emulator):
    s3, bucket = _bucket(emulator)
    store = S3SessionStore(s3, bucket, "t/")
    key = {"project_key": "p", "session_id": "s"}

    async def go():
        for n in range(25):
            await store.append(key, [{"type": "x", "uuid": str(n), "n": n}])
        before = await store.load(key)
        folded = store.compact(key, min_parts=20)
        await store.append(key, [{"type": "x", "uuid": "late", "n": 99}])
        return before, folded, await store.load(key)

    before, folded, after = asyncio.run(go())
    assert folded == 25 and after == before + [{"type": "x", "uuid": "late", "n": 99}]
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix="t/p/s/main/")["Contents"]) == 2
    assert store.compact(key, min_parts=20) == 0  # two parts: nothing to fold
