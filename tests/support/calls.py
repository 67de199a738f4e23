"""How many AWS calls a helper makes: counted on the helpers' own shared clients, by operation."""
from __future__ import annotations

import collections
import contextlib

from helpers import aws


@contextlib.contextmanager
def counting_calls(settings, *services: str):
    """Count the calls made through helpers.aws's clients of `services` while the block runs: a Counter
    keyed by operation name (e.g. "GetParameter"), filled in as calls are made."""
    counts: collections.Counter = collections.Counter()

    def count(model, **_):
        counts[model.name] += 1

    clients = [aws.client(service, settings) for service in services]
    for client in clients:
        client.meta.events.register("before-call", count, unique_id="tests.support.calls")
    try:
        yield counts
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", unique_id="tests.support.calls")
