"""The cost of resuming a Claude Code conversation: a fresh agent's call that continues a 50-turn transcript from S3,
against a fresh agent's call that starts a new conversation.

Runs the real app and the real Claude Code CLI against a fresh emulator (the stand-in model answers).
It first builds a session of `--turns` invocations, then measures, each time in a new agent process
state (new workspace root and home, as a new microVM has), `--repeats` calls that resume it and as many
first calls of new sessions. Also times the adapter's own load of the transcript. Prints JSON: medians
in milliseconds, the transcript's size, and the resumed call's overhead.

    .venv/bin/python bench/bench_resume.py [--turns 50] [--repeats 5]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "container"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.emulator import EmulatorProcess  # noqa: E402  (the same child-process emulator the tests use)

PROMPT = "hello, turn {n}"


def fresh_app(tmp: Path, label: str):
    """An agent with nothing on disk, as in a new microVM."""
    from fastapi.testclient import TestClient

    import agent.app as agent_app

    os.environ["WORKSPACE_ROOT"] = str(tmp / label / "workspaces")
    os.environ["HOME"] = str(tmp / label / "home")
    return TestClient(agent_app.create_app())


def call(client, actor: str, session: str, prompt: str) -> dict:
    t0 = time.perf_counter()
    resp = client.post("/invocations", json={"input": {"prompt": prompt, "actor_id": actor, "session_id": session}})
    out = resp.json()["output"]
    assert out["success"], out
    out["client_ms"] = (time.perf_counter() - t0) * 1000
    return out


def summary(outs: list[dict]) -> dict:
    return {
        "median_ms": round(statistics.median(o["client_ms"] for o in outs), 1),
        "median_claude_ms": round(statistics.median(o["metadata"]["claude_duration_ms"] for o in outs), 1),
        "median_input_tokens": statistics.median((o["metadata"]["usage"] or {}).get("input_tokens", 0) for o in outs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    emulator = EmulatorProcess(tmp / "emulator").start()
    try:
        import boto3

        bucket = "bench-resume"
        kw = dict(region_name="us-east-1", endpoint_url=emulator.endpoint, aws_access_key_id="test",
                  aws_secret_access_key="test")
        s3 = boto3.client("s3", **kw)
        s3.create_bucket(Bucket=bucket)
        # No memory: its context would be part of both calls alike; the figures are about the transcript.
        os.environ.update({
            "AWS_ENDPOINT_URL": emulator.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "OUTPUT_BUCKET_NAME": bucket, "MEMORY_ID_PARAMETER": "/bench/none",
            "ANTHROPIC_BEDROCK_BASE_URL": emulator.endpoint, "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
            "ANTHROPIC_MODEL": "local-stand-in", "LOG_LEVEL": "WARNING",
        })
        import agent.app  # noqa: F401  (sets up its event log, which the line below then quiets)

        logging.getLogger("agent.events").setLevel(logging.WARNING)  # the figures are the output, not the steps
        actor, session = "bench", "long-conversation"
        build_started = time.perf_counter()
        with fresh_app(tmp, "build") as client:
            for n in range(args.turns):
                call(client, actor, session, PROMPT.format(n=n))
        build_s = time.perf_counter() - build_started

        from agent.conversation import PROJECT_KEY
        from agent.transcripts import S3SessionStore

        pointer = json.loads(s3.get_object(Bucket=bucket, Key=f"sessions/{actor}/{session}/.claude/conversation.json")
                             ["Body"].read())
        store = S3SessionStore(s3, bucket, f"sessions/{actor}/{session}/.claude/transcripts/")
        key = {"project_key": PROJECT_KEY, "session_id": pointer["claude_session_id"]}
        loads = []
        for _ in range(args.repeats):
            store.calls = 0
            t0 = time.perf_counter()
            entries = asyncio.run(store.load(key))
            loads.append((time.perf_counter() - t0) * 1000)
        transcript_bytes = sum(len(json.dumps(e)) + 1 for e in entries)
        load_calls = store.calls

        resumed, fresh = [], []
        for r in range(args.repeats):  # alternated, so drift hits both alike
            with fresh_app(tmp, f"resume-{r}") as client:
                out = call(client, actor, session, PROMPT.format(n=args.turns + r))
                assert out["metadata"]["resumed_from"] == pointer["claude_session_id"], out["metadata"]
                resumed.append(out)
            with fresh_app(tmp, f"new-{r}") as client:
                out = call(client, actor, f"new-conversation-{r}", PROMPT.format(n=0))
                assert out["metadata"]["resumed"] is False
                fresh.append(out)
        resumed_s, fresh_s = summary(resumed), summary(fresh)
        print(json.dumps({
            "benchmark": "second call's overhead when it resumes a long Claude Code conversation from S3",
            "transcript_turns": args.turns,
            "transcript_entries": len(entries),
            "transcript_bytes": transcript_bytes,
            "transcript_s3_requests_per_load": load_calls,
            "store_load_median_ms": round(statistics.median(loads), 1),
            "build_seconds": round(build_s, 1),
            "repeats": args.repeats,
            "new_conversation": fresh_s,
            "resumed_conversation": resumed_s,
            "resume_overhead_ms": round(resumed_s["median_ms"] - fresh_s["median_ms"], 1),
        }, indent=2))
    finally:
        emulator.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
