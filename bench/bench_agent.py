"""The agent's own overhead per invocation (everything but Claude Code's run), by workspace size.

Runs the real app (HTTP handling, S3 restore, memory context, upload of changes, memory save)
against a fresh emulator, with Claude Code's run replaced by a step that changes one file. Compares
a 1-file workspace with a 200-file one: the overhead must not grow with the number of unchanged
files. (With WORKSPACE_RESTORE=always, shown for contrast, every invocation lists the session's
S3 prefix, which does grow with it.) Prints JSON: medians in milliseconds and S3 calls per invocation, side by side.

    .venv/bin/python bench/bench_agent.py [--invocations 15] [--files 200]
"""
from __future__ import annotations

import argparse
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
# The agent is the container's source tree, imported as the image does (from container/).
sys.path.insert(0, str(ROOT / "container"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from tests.support.emulator import EmulatorProcess  # noqa: E402  (the same child-process emulator the tests use)


def setup_aws(endpoint: str, bucket: str) -> str:
    import boto3

    kw = dict(region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test")
    boto3.client("s3", **kw).create_bucket(Bucket=bucket)
    control = boto3.client("bedrock-agentcore-control", **kw)
    memory = control.create_memory(name="BenchMemory", eventExpiryDuration=7)["memory"]
    while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE":
        time.sleep(0.2)
    boto3.client("ssm", **kw).put_parameter(Name="/bench/memory-id", Value=memory["id"], Type="String")
    return memory["id"]


def seed_session(endpoint: str, bucket: str, actor: str, session: str, files: int) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test")
    for i in range(files):
        s3.put_object(Bucket=bucket, Key=f"sessions/{actor}/{session}/src/file_{i:03d}.txt",
                      Body=(f"file {i}\n" * 50).encode())


def invoke(client, actor: str, session: str, n: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    resp = client.post("/invocations", json={"input": {"prompt": f"change one file ({n})",
                                                       "actor_id": actor, "session_id": session}})
    elapsed = (time.perf_counter() - t0) * 1000
    out = resp.json()["output"]
    assert out["success"], out
    return elapsed, len(out["metadata"]["uploaded_files"])


def run_scenarios(client, actor: str, sessions: list[str], invocations: int) -> dict[str, dict]:
    """Invocations alternate between sessions, so warm-up and drift hit every scenario alike."""
    first = {s: invoke(client, actor, s, 0)[0] for s in sessions}  # the cold restore of each session
    timings: dict[str, list[float]] = {s: [] for s in sessions}
    uploads: dict[str, list[int]] = {s: [] for s in sessions}
    for n in range(1, invocations + 1):
        for s in sessions:
            ms, count = invoke(client, actor, s, n)
            timings[s].append(ms)
            uploads[s].append(count)
    return {s: {
        "first_invocation_ms": round(first[s], 1),
        "median_overhead_ms": round(statistics.median(timings[s]), 1),
        "p90_overhead_ms": round(sorted(timings[s])[max(0, int(len(timings[s]) * 0.9) - 1)], 1),
        "files_uploaded_per_invocation": statistics.median(uploads[s]),
    } for s in sessions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=15)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    emulator = EmulatorProcess(tmp / "emulator").start()
    endpoint = emulator.endpoint
    try:
        bucket = "bench-agent"
        setup_aws(endpoint, bucket)
        seed_session(endpoint, bucket, "bench", "one-file", 1)
        seed_session(endpoint, bucket, "bench", "many-files", args.files)
        os.environ.update({
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "OUTPUT_BUCKET_NAME": bucket, "MEMORY_ID_PARAMETER": "/bench/memory-id",
            "WORKSPACE_ROOT": str(tmp / "workspaces"), "LOG_LEVEL": "WARNING",
        })
        from fastapi.testclient import TestClient

        import agent.app as agent_app

        logging.getLogger("agent.events").setLevel(logging.WARNING)  # the figures are the output, not the steps
        from agent.runner import RunOutcome


        async def change_one_file(settings, cwd, prompt, permission_mode, allowed_tools, max_turns,
                                  memory_context, outcome: RunOutcome, **_conversation):
            # Stands in for Claude Code's run, which this benchmark leaves out: edit one file.
            target = Path(cwd) / "src" / "file_000.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"{prompt}\n")
            outcome.result, outcome.num_turns = "changed one file", 1
            yield {"type": "text", "text": outcome.result}

        agent_app.run_claude = change_one_file
        app = agent_app.create_app()
        with TestClient(app) as client:
            app.state.memory.wait_loaded(30)
            assert app.state.memory.enabled, app.state.memory.status
            results = run_scenarios(client, "bench", ["one-file", "many-files"], args.invocations)
            one, many = results["one-file"], results["many-files"]
        # For contrast: listing the session's S3 prefix on every invocation (WORKSPACE_RESTORE=always).
        os.environ["WORKSPACE_RESTORE"] = "always"
        os.environ["WORKSPACE_ROOT"] = str(tmp / "workspaces-always")
        app = agent_app.create_app()
        with TestClient(app) as client:
            app.state.memory.wait_loaded(30)
            always = run_scenarios(client, "bench", ["many-files"], args.invocations)["many-files"]
        ratio = many["median_overhead_ms"] / one["median_overhead_ms"]
        print(json.dumps({
            "benchmark": "agent overhead per invocation (Claude Code's run excluded)",
            "invocations_per_scenario": args.invocations,
            "workspace_1_file": one,
            f"workspace_{args.files}_files_1_changed": many,
            f"workspace_{args.files}_files_1_changed_restore_always": always,
            "overhead_ratio_many_to_one": round(ratio, 2),
            "overhead_grows_with_unchanged_files": ratio > 1.5,
        }, indent=2))
    finally:
        emulator.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
