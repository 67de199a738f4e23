"""The interface between the endpoint and one of our own services, and the one way they are shut down."""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from .restjson import Handler

log = logging.getLogger("emulator")


class Backend:
    """A service implementation: its handlers by operation name, and what stops it (threads, processes, files).

    Every service is shut down the same way: the endpoint calls close_all() on the backends it serves.
    """

    def __init__(self, name: str, handlers: dict[str, Handler], close: Callable[[], None] | None = None):
        self.name = name
        self.handlers: dict[str, Handler] = dict(handlers)
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            self._close()


def close_all(backends: Iterable[Backend]) -> None:
    """Close backends newest first; one that fails is logged and the rest are still closed."""
    for backend in reversed(list(backends)):
        try:
            backend.close()
        except Exception:  # shutting down: report and go on closing the rest
            log.exception("error while closing the %s backend", backend.name)
