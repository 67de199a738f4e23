"""Registry of what each notebook must have recorded: `@check("01_deploy_stack")` on a function(workshop, executed).

Put a notebook's checks in `tests/notebooks/check_<notebook>.py`; test_notebooks.py imports every such file.
"""
from __future__ import annotations

from typing import Callable

CHECKS: dict[str, list[Callable]] = {}


def check(notebook_stem: str):
    def register(fn: Callable) -> Callable:
        CHECKS.setdefault(notebook_stem, []).append(fn)
        return fn

    return register
