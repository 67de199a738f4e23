"""Every notebook, as stored, runs in order against one fresh emulator, in a fresh kernel, and records what it should."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from helpers.workshop import NOTEBOOKS_DIR, discover
from tests.notebooks.checks import CHECKS

NOTEBOOKS = discover(NOTEBOOKS_DIR)
for _module in sorted(Path(__file__).parent.glob("check_*.py")):
    importlib.import_module(f"tests.notebooks.{_module.stem}")


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_order_and_records_its_results(notebook, workshop):
    if workshop.failed:
        pytest.skip(f"{workshop.failed} failed first; the notebooks after it depend on it")
    workshop.notebooks = {p.stem: p for p in NOTEBOOKS}
    executed = workshop.run(notebook)
    assert not [c for c in executed.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])], \
        f"{notebook.name} ran with injected parameters, not as stored"
    for check in CHECKS.get(notebook.stem, []):
        check(workshop, executed)


def test_every_check_names_a_notebook_that_exists():
    assert set(CHECKS) <= {p.stem for p in NOTEBOOKS}
