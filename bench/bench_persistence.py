"""What keeping moto's state on disk costs: per write, per save, and on start, with and without, side by side.

One process serves moto's WSGI application twice on two free ports, once as the emulator serves it (every
write saved before its answer, emulator/persistence.py) and once bare (kept in memory only, as before);
both share one set of moto backends, so both see the same state. Writes of the workshop's kinds are timed
through boto3 on each, first with the state a deployed workshop has (the stack, an image, a few objects),
then with that state grown (objects, parameters, log events). Then the save alone (pickle, write + fsync),
loading the snapshot, and an emulator process's start with that state against one with none.

    .venv/bin/python bench/bench_persistence.py [--calls 40]

Prints JSON: medians in milliseconds, "with" and "without" side by side, and snapshot sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from emulator import persistence  # noqa: E402
from emulator.server import signing_scope  # noqa: E402
from tests.support.emulator import EmulatorProcess, free_port  # noqa: E402


def serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


def clients(endpoint: str) -> dict:
    cfg = Config(retries={"total_max_attempts": 1})
    return {name: boto3.client(name, region_name="us-east-1", endpoint_url=endpoint, config=cfg)
            for name in ("s3", "ssm", "logs", "cloudformation", "ecr", "iam")}


def deploy(c: dict) -> None:
    c["cloudformation"].create_stack(StackName="bench", TemplateBody=(ROOT / "cloudformation" / "workshop.yaml").read_text(),
                                     Capabilities=["CAPABILITY_NAMED_IAM"])
    c["s3"].create_bucket(Bucket="bench-bucket")
    c["s3"].put_object(Bucket="bench-bucket", Key="context.tar.gz", Body=os.urandom(2_000_000))
    c["logs"].create_log_group(logGroupName="/bench")
    c["logs"].create_log_stream(logGroupName="/bench", logStreamName="s")


def grow(c: dict) -> None:
    for i in range(200):
        c["s3"].put_object(Bucket="bench-bucket", Key=f"workspace/file-{i}.txt", Body=os.urandom(2048))
        c["ssm"].put_parameter(Name=f"/bench/grown/{i}", Value="v" * 100, Type="String")
    now = int(time.time() * 1000)
    for start in range(0, 5000, 500):
        c["logs"].put_log_events(logGroupName="/bench", logStreamName="s", logEvents=[
            {"timestamp": now + j, "message": f"agent log line {j} " + "x" * 80} for j in range(start, start + 500)])


def writes(c: dict) -> dict:
    """One call of each kind of write, by name."""
    return {
        "ssm_put_parameter": lambda: c["ssm"].put_parameter(Name=f"/bench/p/{uuid.uuid4().hex}", Value="v",
                                                            Type="String"),
        "s3_put_object_100kb": lambda: c["s3"].put_object(Bucket="bench-bucket", Key=f"o/{uuid.uuid4().hex}",
                                                          Body=os.urandom(100_000)),
        "logs_put_10_events": lambda: c["logs"].put_log_events(logGroupName="/bench", logStreamName="s", logEvents=[
            {"timestamp": int(time.time() * 1000), "message": f"line {i}"} for i in range(10)]),
        "ssm_get_parameter (a read)": lambda: c["ssm"].get_parameter(Name="/bench/p/seed"),
    }


def median_ms(call, calls: int) -> float:
    call()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def side_by_side(with_: dict, without: dict, calls: int) -> dict:
    out = {}
    for name in with_:
        # Alternate which runs first, so neither gets the warmer caches.
        a, b = median_ms(with_[name], calls), median_ms(without[name], calls)
        out[name] = {"with_ms": a, "without_ms": b, "added_ms": round(a - b, 2)}
    return out


def save_parts(state: persistence.MotoState, calls: int) -> dict:
    pickle_ms = median_ms(state.snapshot, calls)
    data = state.snapshot()
    write_ms = median_ms(lambda: persistence._write_atomically(state.root / "bench-copy.pickle", data), calls)
    save_ms = median_ms(state.save, calls)
    load_times = []
    for _ in range(5):
        t = time.perf_counter()
        persistence.MotoState(state.root.parent).load()
        load_times.append((time.perf_counter() - t) * 1000)
    return {"snapshot_bytes": state.path.stat().st_size, "pickle_ms": pickle_ms,
            "write_fsync_rename_ms": write_ms, "save_ms": save_ms,
            "load_ms": round(statistics.median(load_times), 1)}


def process_start(state_dir: Path) -> float:
    t = time.perf_counter()
    emu = EmulatorProcess(state_dir).start()
    seconds = time.perf_counter() - t
    emu.stop()
    return seconds


def process_starts(dirs: dict[str, Path], rounds: int = 3) -> dict:
    """Seconds from spawn to healthy, median of `rounds`, the kinds taking turns (the machine's load moves)."""
    times: dict[str, list[float]] = {name: [] for name in dirs}
    for _ in range(rounds):
        for name, path in dirs.items():
            times[name].append(process_start(path))
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args(argv)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from emulator.cloudformation import install

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    install()
    tmp = Path(tempfile.mkdtemp(prefix="bench-persistence-"))
    try:
        state = persistence.MotoState(tmp / "state")
        persistence.install(state)
        bare = DomainDispatcherApplication(create_backend_app)
        kept = state.wrap(DomainDispatcherApplication(create_backend_app), lambda environ: signing_scope(environ)[1])
        (with_url, s1), (without_url, s2) = serve(kept), serve(bare)
        with_c, without_c = clients(with_url), clients(without_url)
        deploy(with_c)
        with_c["ssm"].put_parameter(Name="/bench/p/seed", Value="v", Type="String")
        doc = {"calls": args.calls, "workshop_state": {}, "grown_state": {}}
        doc["workshop_state"]["per_request"] = side_by_side(writes(with_c), writes(without_c), args.calls)
        doc["workshop_state"]["save"] = save_parts(state, args.calls)
        grow(with_c)
        doc["grown_state"]["added"] = "200 objects of 2 KB, 200 parameters, 5,000 log events"
        doc["grown_state"]["per_request"] = side_by_side(writes(with_c), writes(without_c), args.calls)
        doc["grown_state"]["save"] = save_parts(state, args.calls)
        s1.shutdown()
        s2.shutdown()
        persistence.install(None)
        # An emulator process's start with the grown snapshot, against one with an empty state dir.
        grown_dir = tmp / "emulator-grown"
        shutil.copytree(tmp / "state" / "moto", grown_dir / "moto")
        empty_dir = tmp / "emulator-empty"
        empty_dir.mkdir()
        doc["emulator_start_seconds"] = process_starts({"with_grown_state": grown_dir, "with_empty_state": empty_dir})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
