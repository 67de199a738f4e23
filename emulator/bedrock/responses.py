"""Placeholder until this service is built: no operations yet."""
from __future__ import annotations

from ..core.backend import Backend
from ..core.settings import Settings


def create_backend(settings: Settings) -> Backend:
    return Backend()
