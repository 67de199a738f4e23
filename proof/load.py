"""Proof under load: concurrent memory creators make one memory, and a workshop room of attendees keeps to itself.

Three parts, against one emulator with the workshop deployed as the notebooks deploy it (helpers only, the real
agent on a local runtime):
  - 16 threads, each with its own boto3 client, call helpers.memory.get_or_create_memory at once: one memory.
  - a workshop room: attendees (an actor and a session each; 8 in the short profile, 30 in the long one), all
    at once, each doing create-file, follow-up and history through helpers.invoke. The first step of 8 of them
    is 8 concurrent runtime sessions; in the short profile only 3 of the 8 go on past it. Each attendee's file
    has a name and content of its own; afterwards each session's S3 prefix, memory turns and log stream must
    hold its own token and no other attendee's.
  - figures: throughput, p50/p95 latency per step, errors (0), cross-talk (0), steps skipped for time, and the
    CPU seconds the section cost (comparable across machines and loads, unlike its wall time).
"""
from __future__ import annotations

import resource
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from helpers import aws, invoke, logs, memory, outputs

from . import Profile, Report
from ._deployed import deployed

MEMORY_CALLERS = 16
STEPS = ("create_file", "follow_up", "history")


def run(profile: Profile) -> Report:
    report = Report("load")
    started, cpu = time.monotonic(), cpu_seconds()
    short = profile.scale == 1
    # The emulator starts every session's agent on this one machine (AWS gives each its own microVM): a room of
    # 30 starting at once on two cores needs longer than the emulator's default 60 s for the last to answer /ping.
    with deployed("load", emulator_env=None if short else {"EMULATOR_AGENT_START_TIMEOUT": "240"}) as env:
        report.figures["setup_seconds"] = round(time.monotonic() - started, 1)
        _memory_once(env.settings, report)
        # Short: 8 concurrent sessions create their files, and a few of them go on to the follow-up and the history.
        _room(env.settings, env.outputs["BucketName"], report, attendees=8 if short else 30,
              full=3 if short else 30, deadline=started + profile.section_seconds)
    report.figures["cpu_seconds"] = round(cpu_seconds() - cpu, 1)
    return report


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (the emulator and its agents, once stopped)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# -- 16 concurrent creators, one memory ----------------------------------------------------------
def _memory_once(base, report: Report) -> None:
    tag = uuid.uuid4().hex[:8]
    name, parameter = f"LoadMem_{tag}", f"/load-{tag}/memory-id"
    # helpers share one client per settings: a runtime name of its own (memory never reads it) gives each
    # caller its own boto3 client, as 16 separate notebooks would have.
    callers = [base.with_(memory_name=name, memory_id_parameter=parameter, runtime_name=f"caller_{tag}_{i}")
               for i in range(MEMORY_CALLERS)]
    clients = [aws.client("bedrock-agentcore-control", s) for s in callers]
    # Made before the start, so no caller is held back making its clients (helpers make them under one lock).
    for s in callers:
        aws.client("ssm", s)
    report.expect_equal("memory_clients", len({id(c) for c in clients}), MEMORY_CALLERS, "callers shared a client")
    gate = threading.Barrier(MEMORY_CALLERS)
    errors: list[str] = []

    def call(settings):
        gate.wait()
        try:
            return memory.get_or_create_memory(settings, progress=False)["id"]
        except Exception as exc:  # every failure is counted and reported, none is silent
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return None

    t = time.monotonic()
    with ThreadPoolExecutor(MEMORY_CALLERS) as pool:
        ids = list(pool.map(call, callers))
    report.figures["memory_callers"] = MEMORY_CALLERS
    report.figures["memory_seconds"] = round(time.monotonic() - t, 1)
    control = clients[0]
    listed = [m["id"] for page in control.get_paginator("list_memories").paginate() for m in page["memories"]
              if m["id"].startswith(f"{name}-")]
    report.expect_equal("memories_created", len(listed), 1, f"ids {listed}")
    report.expect_equal("memory_ids_returned", len({i for i in ids if i}), 1, f"ids {sorted(set(map(str, ids)))}")
    report.expect_zero("memory_errors", len(errors), "; ".join(errors[:3]))


# -- the workshop room ---------------------------------------------------------------------------
def _prompts(token: str) -> dict[str, tuple[str, str]]:
    """Each step's prompt and what its answer must contain."""
    return {
        "create_file": (f"Create a file f_{token}.txt that prints {token}", f"f_{token}.txt"),
        "follow_up": ("What files are in the workspace?", f"f_{token}.txt"),
        "history": ("What did I ask you before?", token),
    }


def _room(settings, bucket: str, report: Report, attendees: int, full: int, deadline: float) -> None:
    """`attendees` at once; the first `full` of them do every step, the others create their file only."""
    people = [(f"attendee-{i:02d}", "room", f"tok{i:02d}x{uuid.uuid4().hex[:6]}") for i in range(attendees)]
    steps_of = {person[0]: STEPS if n < full else STEPS[:1] for n, person in enumerate(people)}
    latencies: dict[str, list[float]] = {step: [] for step in STEPS}
    errors: list[str] = []
    skipped = 0
    lock = threading.Lock()
    gate = threading.Barrier(attendees)

    def attend(person):
        nonlocal skipped
        actor, session, token = person
        gate.wait()
        for step, (prompt, expected) in _prompts(token).items():
            if step not in steps_of[actor]:
                continue
            if time.monotonic() > deadline:
                with lock:
                    skipped += 1
                continue
            t = time.monotonic()
            try:
                out = invoke.invoke(settings, prompt, actor, session, progress=False)
                problem = (None if out.get("success") and expected in out.result else
                           f"{actor} {step}: success={out.get('success')}, {expected!r} not in {out.result[:150]!r}")
            except Exception as exc:  # counted as an error of the step, with what it said
                problem = f"{actor} {step}: {type(exc).__name__}: {exc}"[:300]
            with lock:
                latencies[step].append(time.monotonic() - t)
                if problem:
                    errors.append(problem)

    t = time.monotonic()
    with ThreadPoolExecutor(attendees) as pool:
        list(pool.map(attend, people))
    wall = time.monotonic() - t
    done = sum(len(v) for v in latencies.values())
    report.figures["attendees"] = attendees
    report.figures["concurrent_sessions"] = attendees
    report.figures["attendees_doing_every_step"] = full
    report.figures["steps_done"] = done
    report.figures["room_seconds"] = round(wall, 1)
    report.figures["throughput_steps_per_minute"] = round(done / wall * 60, 1) if wall else 0.0
    for step, values in latencies.items():
        report.figures[f"{step}_p50_ms"] = _percentile_ms(values, 50)
        report.figures[f"{step}_p95_ms"] = _percentile_ms(values, 95)
    report.expect_zero("errors", len(errors), "; ".join(errors[:3]))
    # Bounded in time: steps past the section's deadline are not started, and are counted here.
    report.figures["steps_skipped_for_time"] = skipped
    _cross_talk(settings, bucket, people, report)


def _percentile_ms(values: list[float], pct: int) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return int(values[0] * 1000)
    return int(statistics.quantiles(values, n=100, method="inclusive")[pct - 1] * 1000)


def _cross_talk(settings, bucket: str, people, report: Report) -> None:
    """Each session's files, turns and log stream hold its own token and no other attendee's."""
    tokens = {token for _, _, token in people}
    s3 = aws.client("s3", settings)
    streams: dict[str, list[str]] = {}
    for event in logs.log_events(settings, minutes=60, limit=1_000_000):
        streams.setdefault(event.get("logStreamName", ""), []).append(event["message"])
    found: list[str] = []
    missing: list[str] = []
    for actor, session, token in people:
        others = tokens - {token}
        objects = outputs.session_objects(settings, actor, session)
        keys = [o["Key"] for o in objects]
        mine = [k for k in keys if k.endswith(f"/f_{token}.txt")]
        if not mine:
            missing.append(f"{actor}: no f_{token}.txt in its S3 prefix ({keys[:5]})")
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "replace")
            if any(o in key or o in body for o in others):
                found.append(f"{actor}: s3 {key} names another attendee")
            if key in mine and body.strip() != token:
                found.append(f"{actor}: {key} holds {body[:60]!r}, not its own {token!r}")
        turns = " ".join(memory.events_df(settings, actor, session)["text"].astype(str))
        if token not in turns:
            missing.append(f"{actor}: its memory turns never mention {token}")
        if any(o in turns for o in others):
            found.append(f"{actor}: memory turns name another attendee")
        rsid = invoke.runtime_session_id(actor, session)
        lines = [m for name, ms in streams.items() if name.endswith(f"]{rsid}") for m in ms]
        if not any(token in line for line in lines):
            missing.append(f"{actor}: the log stream of runtime session {rsid} never mentions {token}")
        if any(o in line for line in lines for o in others):
            found.append(f"{actor}: log stream of {rsid} names another attendee")
    report.expect_zero("cross_talk", len(found), "; ".join(found[:3]))
    report.expect_zero("own_data_missing", len(missing), "; ".join(missing[:3]))
