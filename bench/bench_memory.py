"""Latency of the memory reads the agent makes on every invocation, at 1,000 and at 10,000 items.

ListEvents (the last turns of one session) and RetrieveMemoryRecords (records of one namespace
ranked by similarity to a query) against a fresh emulator, first with 1,000 events in the session
and 1,000 records in the namespace, then with 10,000 of each. Prints JSON: p50 in milliseconds
at each size, side by side, and the ratio 10,000 / 1,000 (1.0 means the read does not slow down
as memory grows).

    .venv/bin/python bench/bench_memory.py [--calls 60]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.emulator import EmulatorProcess  # noqa: E402  (the same child-process emulator the tests use)

SUBJECTS = ["The user", "The user's team", "The project", "The service", "The pipeline", "The assistant"]
VERBS = ["uses", "prefers", "deploys", "maintains", "tests", "avoids", "documents", "migrates", "monitors"]
OBJECTS = ["Postgres", "Redis", "Kubernetes", "Flask", "FastAPI", "pytest", "Terraform", "Go", "Rust", "React",
           "GraphQL", "Kafka", "S3 buckets", "type hints", "small pull requests", "feature flags", "ECS", "Lambda"]
WHEN = ["every Friday", "in production", "for the billing service", "since 2024", "on weekends", "in CI",
        "for internal tools", "with blue-green deploys", "behind a load balancer", "for data exports"]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)} (#{rng.randrange(10**6)})."


def fill(data, memory_id: str, upto: int, have: int, rng: random.Random) -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(have, upto):
        data.create_event(memoryId=memory_id, actorId="bench", sessionId="long-session",
                          eventTimestamp=base + dt.timedelta(seconds=i), extractionMode="SKIP",
                          payload=[{"conversational": {"content": {"text": sentence(rng)},
                                                       "role": "USER" if i % 2 == 0 else "ASSISTANT"}}])
    now = dt.datetime.now(dt.timezone.utc)
    for start in range(have, upto, 100):
        data.batch_create_memory_records(memoryId=memory_id, records=[
            {"requestIdentifier": f"r{j}", "namespaces": ["coding/user/bench/facts"],
             "content": {"text": sentence(rng)}, "timestamp": now}
            for j in range(start, min(start + 100, upto))])


def p50(call, calls: int) -> float:
    call()  # warm: the first retrieval builds the vector index, as the first after any write does
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60, help="timed calls per read and size (default 60)")
    args = parser.parse_args(argv)
    rng = random.Random(7)
    # Stopped with SIGTERM: unwind through `finally`, so the emulator child is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    emu = EmulatorProcess(Path(tempfile.mkdtemp(prefix="bench-memory-"))).start()
    try:
        control, data = emu.client("bedrock-agentcore-control"), emu.client("bedrock-agentcore")
        memory_id = control.create_memory(name="BenchMemory", eventExpiryDuration=30)["memory"]["id"]
        while control.get_memory(memoryId=memory_id)["memory"]["status"] != "ACTIVE":
            time.sleep(0.2)

        def list_events():
            data.list_events(memoryId=memory_id, actorId="bench", sessionId="long-session", maxResults=6)

        def retrieve():
            # A new query each call: the emulator remembers query vectors, and repeats would hide
            # the cost of embedding one.
            data.retrieve_memory_records(memoryId=memory_id, namespace="coding/user/bench/facts",
                                         searchCriteria={"searchQuery": sentence(rng), "topK": 5})

        results: dict[str, dict] = {"list_events_p50_ms": {}, "retrieve_memory_records_p50_ms": {}}
        have = 0
        fill_seconds = {}
        for size in (1_000, 10_000):
            started = time.perf_counter()
            fill(data, memory_id, size, have, rng)
            fill_seconds[str(size)] = round(time.perf_counter() - started, 1)
            have = size
            results["list_events_p50_ms"][str(size)] = p50(list_events, args.calls)
            results["retrieve_memory_records_p50_ms"][str(size)] = p50(retrieve, args.calls)
        for figures in results.values():
            figures["ratio_10000_to_1000"] = round(figures["10000"] / figures["1000"], 2)
        results["calls_per_figure"] = args.calls
        results["fill_seconds"] = fill_seconds
        print(json.dumps(results, indent=2))
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
