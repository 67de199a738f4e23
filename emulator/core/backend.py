"""The interface between the endpoint and one of our own services."""
from __future__ import annotations

from typing import Callable

from .restjson import Handler


class Backend:
    """A service implementation: its handlers by operation name, and what to do at shutdown."""

    def __init__(self, handlers: dict[str, Handler] | None = None):
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self._closers: list[Callable[[], None]] = []

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self._closers):
            fn()
