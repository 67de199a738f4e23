"""Proof: the model fails on purpose and the real agent's Claude Code retries, times out and gives up as it should.

The emulator's Bedrock script (emulator/bedrock/script.py) makes the stand-in throttle (HTTP 429 before the
stream, or a throttlingException event in it), answer 5xx, drop the connection mid-answer or wait before its
first byte, each a set number of times. The agent runs for real on a local runtime, as the notebooks deploy it,
and Claude Code's own knobs bound the run (code.claude.com/docs/en/env-vars): API_TIMEOUT_MS, the timeout of
one model request, and CLAUDE_CODE_MAX_RETRIES, how often a failed request is retried. The runtime passes both
to the agent, whose Claude Code inherits them. Per fault: whether the answer came, how many model calls the
invocation log shows for that prompt, the seconds, and what the user sees when it gives up.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from helpers import invoke
from helpers.errors import WorkshopError

from . import Profile, Report
from ._deployed import deployed
from .load import cpu_seconds

# Claude Code's knobs, set on the runtime (so every session's CLI has them).
MAX_RETRIES = 3
API_TIMEOUT_MS = 8000
# Longer than API_TIMEOUT_MS: the first attempt times out, the retry is answered at once. The timeout leaves an
# answer of the stand-in room to be slow on a loaded machine (a slow answer would be retried, and counted).
SLOW_FIRST_BYTE = 12.0
# An invocation taking longer than this is a hang: the slowest case waits one timeout and some backoff.
HANG_SECONDS = 90.0


@dataclass(frozen=True)
class Case:
    name: str
    rule: dict
    answered: bool       # the answer comes (after retries), or Claude Code gives up
    calls: int           # model calls the invocation log shows for the prompt
    short: bool          # part of the short profile (CI); the long profile runs every case
    checked: bool = True  # False: the figures are shown, but what Claude Code chooses is not held against it


CASES = (
    Case("throttled_twice", {"times": 2, "error": "ThrottlingException"}, True, 3, short=True),
    Case("throttled_mid_stream", {"times": 1, "stream_error": "throttlingException", "after_events": 2}, True, 2,
         short=True),
    Case("broken_stream", {"times": 1, "drop": True, "after_events": 3}, True, 2, short=True),
    Case("slow_first_byte", {"times": 1, "delay_seconds": SLOW_FIRST_BYTE}, True, 2, short=True),
    Case("unavailable_twice", {"times": 2, "error": "ServiceUnavailableException"}, True, 3, short=False),
    Case("internal_error_twice", {"times": 2, "error": "InternalServerException"}, True, 3, short=False),
    # Bedrock's 424 says the model itself failed on this request: Claude Code does not retry it (measured with
    # 2.1.x); shown, not required.
    Case("model_error", {"times": 1, "error": "ModelErrorException"}, False, 1, short=False, checked=False),
    # Throttled on every call: Claude Code gives up after its retries, and the agent says why.
    Case("gives_up", {"error": "ThrottlingException"}, False, 1 + MAX_RETRIES, short=True),
    # Slow on every call: each attempt times out after API_TIMEOUT_MS, then Claude Code gives up.
    Case("slow_every_time", {"delay_seconds": SLOW_FIRST_BYTE}, False, 1 + MAX_RETRIES, short=False),
)


def run(profile: Profile) -> Report:
    report = Report("model_faults")
    cases = [c for c in CASES if c.short or profile.scale > 1]
    report.figures["claude_code_env"] = {"API_TIMEOUT_MS": API_TIMEOUT_MS, "CLAUDE_CODE_MAX_RETRIES": MAX_RETRIES}
    hangs = 0
    setup, cpu = time.monotonic(), cpu_seconds()
    with deployed("model-faults", environment={"API_TIMEOUT_MS": str(API_TIMEOUT_MS),
                                                "CLAUDE_CODE_MAX_RETRIES": str(MAX_RETRIES)}) as env:
        # Start the session's agent first, so the first case's seconds are the fault's and not the agent's start.
        invoke.invoke(env.settings, "Say hello to warm up", "proof", "model-faults", progress=False)
        report.figures["setup_seconds"] = round(time.monotonic() - setup, 1)
        deadline = setup + profile.section_seconds
        for case in cases:
            if time.monotonic() > deadline:
                report.problems.append(f"model_faults: out of time before case {case.name}")
                break
            seconds, figures = _run_case(env, case)
            hangs += seconds > HANG_SECONDS
            report.figures[case.name] = figures
            if case.checked:
                report.expect_equal(f"{case.name}.answered", figures["answered"], case.answered)
                report.expect_equal(f"{case.name}.calls", figures["calls"], case.calls, str(figures["log"]))
            if case.name == "slow_first_byte" and seconds < API_TIMEOUT_MS / 1000:
                report.problems.append(f"model_faults: slow_first_byte answered in {seconds} s, before "
                                       f"API_TIMEOUT_MS={API_TIMEOUT_MS}: the delay did not happen")
            if case.name in ("gives_up", "slow_every_time"):
                # What the user sees must say why (the throttling, the timeout), not be a bare failure.
                said = str(figures.get("user_sees", "")).lower()
                why = ("429", "throttl") if case.name == "gives_up" else ("timed out", "timeout")
                report.expect_equal(f"{case.name}.error_says_why", any(w in said for w in why), True, said[:200])
                again = invoke.invoke(env.settings, "Say hello once more", "proof", "model-faults", progress=False)
                report.expect_equal(f"{case.name}.session_usable_after", bool(again.get("success")), True)
        env.script("DELETE")
    report.expect_zero("hangs", hangs, f"an invocation took over {HANG_SECONDS:g} s")
    report.figures["cpu_seconds"] = round(cpu_seconds() - cpu, 1)
    return report


def _run_case(env, case: Case) -> tuple[float, dict]:
    """One invocation under the case's fault: its seconds, and its figures (what came, the calls, what was seen)."""
    marker = f"fault case {case.name}"
    env.script("DELETE")
    env.script("POST", {"match": marker, **case.rule})
    before = len(env.invocations())
    started = time.monotonic()
    try:
        out = invoke.invoke(env.settings, f"Say hello for {marker}", "proof", "model-faults", progress=False)
        answered = bool(out.get("success")) and "You said" in out.result
        seen = None if answered else {"success": out.get("success"), "result": out.result[:300],
                                      "warnings": (out.get("warnings") or [])[:3]}
    except WorkshopError as exc:  # the agent answered with an error: what the user sees is this exception
        answered, seen = False, {"error": type(exc).__name__, "message": str(exc)[:400]}
    seconds = round(time.monotonic() - started, 1)
    env.script("DELETE")
    calls = [e for e in env.invocations()[before:] if marker in e.get("prompt", "")]
    figures = {"answered": answered, "calls": len(calls), "seconds": seconds,
               "operations": sorted({e["operation"] for e in calls}),
               "log": [e.get("error", "answered")[:40] for e in calls]}
    if seen is not None:
        figures["user_sees"] = seen
    return seconds, figures
