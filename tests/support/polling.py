"""The tests' one way to wait for something that happens in the background (extraction, a process, a log line)."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_until(probe: Callable[[], Any], done: Callable[[Any], bool] = bool, *, timeout: float = 15.0,
               interval: float = 0.1, what: str = "condition") -> Any:
    """Call `probe` until `done(value)`; that value, or an AssertionError naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last value {value!r}")
        time.sleep(interval)


def eventually(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """True as soon as `condition()` is; False if it never was within `timeout` (for tests that assert either way)."""
    try:
        wait_until(condition, timeout=timeout, interval=interval)
    except AssertionError:
        return False
    return True
