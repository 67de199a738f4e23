"""Invocation latency through the emulator's AgentCore Runtime: cold (first call of a session) against warm (second).

For each session, the first call starts a new agent process from the image's build context (as
AgentCore starts a microVM), the second reuses it. Each call is timed whole and to its first
streamed event (what a user waits before seeing progress). Runs the real agent (container/, Claude
Code against the stand-in model) and, for contrast, the tests' fake agent, which shows the
runtime's own share. Prints JSON: medians in milliseconds and ratios, side by side.

    .venv/bin/python bench/bench_runtime.py [--sessions 3] [--agents real,fake]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
AGENTS = {"real": ROOT / "container", "fake": ROOT / "tests" / "emulator" / "fixtures" / "fake_agent"}
PROMPTS = {"real": ("Say hello in one short sentence.", "And once more, briefly."), "fake": ("hello", "again")}
ROLE_ARN = "arn:aws:iam::123456789012:role/bench-runtime-role"

from tests.support.emulator import EmulatorProcess  # noqa: E402  (the same child-process emulator the tests use)


def deploy(kind: str, tag: str):
    """Bucket, repository, memory, image and runtime for one agent; its settings."""
    from helpers import aws, config, image, memory, runtime

    settings = config.load(runtime_name=f"bench_{kind}_{tag}", memory_name=f"Bench_{tag}",
                           memory_id_parameter=f"/bench/{tag}/memory-id")
    bucket = f"bench-{kind}-{tag}"
    aws.client("s3", settings).create_bucket(Bucket=bucket)
    repo = aws.client("ecr", settings).create_repository(repositoryName=f"bench-{kind}-{tag}")["repository"]
    memory.get_or_create_memory(settings, progress=False)
    built = image.build_and_push(settings, "local", context_dir=AGENTS[kind], repository_uri=repo["repositoryUri"],
                                 bucket=bucket)
    runtime.get_or_create_runtime(settings, built.image_uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    return settings


def measure(settings, kind: str, sessions: int) -> dict:
    from helpers import invoke, runtime

    arn = runtime.runtime_arn(settings)
    calls: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    for _ in range(sessions):
        session = f"bench-{uuid.uuid4().hex[:8]}"
        for phase, prompt in zip(("cold", "warm"), PROMPTS[kind]):
            out = invoke.invoke(settings, prompt, "bench-user", session, runtime_arn=arn, progress=False)
            if not out.get("success"):
                raise SystemExit(f"bench: the {kind} agent failed: {out.get('result')}")
            calls[phase].append((out.seconds * 1000, out.first_event_seconds * 1000))
    result = {}
    for phase, rows in calls.items():
        total = statistics.median(r[0] for r in rows)
        first = statistics.median(r[1] for r in rows)
        result[phase] = {"total_ms": round(total, 1), "first_event_ms": round(first, 1),
                         "first_event_share_of_total": round(first / total, 3)}
    result["cold_over_warm_total"] = round(result["cold"]["total_ms"] / result["warm"]["total_ms"], 2)
    result["cold_start_cost_ms"] = round(result["cold"]["total_ms"] - result["warm"]["total_ms"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3, help="sessions per agent (each: one cold, one warm call)")
    parser.add_argument("--agents", default="real,fake", help="which agents: real, fake or both")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.agents.split(",") if k.strip()]
    unknown = set(kinds) - set(AGENTS)
    if unknown:
        raise SystemExit(f"bench: unknown agent(s) {', '.join(sorted(unknown))}; choose from {', '.join(AGENTS)}")
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        emulator = EmulatorProcess(Path(tmp) / "emulator").start()
        endpoint = emulator.endpoint
        os.environ.update(WORKSHOP_TARGET="local", AWS_ENDPOINT_URL=endpoint, WORKSHOP_STATE_DIR=str(Path(tmp) / "ws"))
        try:
            tag = uuid.uuid4().hex[:6]
            report = {"sessions_per_agent": args.sessions, "unit": "milliseconds, medians"}
            for kind in kinds:
                report[f"{kind}_agent"] = measure(deploy(kind, tag), kind, args.sessions)
        finally:
            emulator.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
