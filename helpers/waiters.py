"""The one place that polls: wait for a state, show progress, and time out with a clear message."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from .errors import WaitTimeout


class Progress:
    """One updating status line: a display in a notebook, plain lines on a terminal."""

    def __init__(self, title: str, enabled: bool = True):
        self.title = title
        self.enabled = enabled
        self._handle = None
        self._last = None
        if enabled and _in_notebook():
            from IPython.display import display

            # Raw text/plain: a str given to display() shows as its repr, in quotes.
            self._handle = display({"text/plain": f"{title} ..."}, raw=True, display_id=True)

    def update(self, text: str) -> None:
        if not self.enabled or text == self._last:
            return
        self._last = text
        line = f"{self.title}: {text}"
        if self._handle is not None:
            self._handle.update({"text/plain": line}, raw=True)
        else:
            print(line, file=sys.stderr, flush=True)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def wait_for(
    what: str,
    probe: Callable[[], Any],
    *,
    done: Callable[[Any], bool],
    failed: Callable[[Any], str | None] = lambda state: None,
    describe: Callable[[Any], str] = str,
    timeout: float = 300.0,
    interval: float = 1.0,
    max_interval: float = 10.0,
    progress: bool = True,
    since: float | None = None,
) -> Any:
    """Call `probe()` until `done(state)`; raise the error `failed(state)` names, or WaitTimeout.

    The interval grows by half each time up to `max_interval`, so quick things are seen quickly
    and slow ones are not hammered. `since` (a `time.monotonic()` reading) is when the work being
    awaited began, so the time shown counts the call that started it, not only the polling.
    """
    bar = Progress(f"Waiting for {what}", enabled=progress)
    start = time.monotonic() if since is None else since
    state = None
    first = True
    while True:
        state = probe()
        elapsed = time.monotonic() - start
        if done(state):
            # Done at the first look with no start given: nothing was awaited, so there is no time to
            # report (a "done in 0.0s" after a long create call reads as a wrong figure).
            bar.update(describe(state) if since is None and first else f"{describe(state)}, done in {elapsed:.1f}s")
            return state
        first = False
        bar.update(f"{describe(state)} ({elapsed:.0f}s)")
        problem = failed(state)
        if problem:
            raise_failure(problem)
        if elapsed + interval > timeout:
            raise WaitTimeout(
                f"Timed out after {timeout:.0f}s waiting for {what}; its last state was {describe(state)}.",
                hint="Check it in the console or logs, then run this cell again: it picks up where it stopped.",
            )
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def raise_failure(problem: str | BaseException) -> None:
    if isinstance(problem, BaseException):
        raise problem
    from .errors import WorkshopError

    raise WorkshopError(problem)
