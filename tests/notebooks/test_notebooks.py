"""Every notebook, as stored, runs in order against one fresh emulator, in a fresh kernel, and records what it should."""
from __future__ import annotations

import importlib
import json
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


@pytest.mark.slow
def test_every_response_of_the_workshop_fits_botocores_shapes(workshop):
    """Runs after the notebooks (pytest keeps this file's order): the emulator checked each answer it gave them."""
    if not workshop.executed:
        pytest.skip("no notebook ran")
    lines = [json.loads(line) for line in workshop.shape_violations.read_text().splitlines() if line.strip()]
    assert not lines, f"{len(lines)} responses broke botocore's shapes, e.g.:\n" + "\n".join(
        json.dumps(line) for line in lines[:10])


def test_every_check_names_a_notebook_that_exists():
    assert set(CHECKS) <= {p.stem for p in NOTEBOOKS}
