"""nbval in lax mode runs the notebooks exactly as stored (no injected parameters), in order, on a fresh emulator."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.emulator import ROOT


@pytest.mark.slow
def test_the_stored_notebooks_run_cleanly_under_nbval_lax(fresh_workshop_env):
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(ROOT), "-o", "addopts=", "-o", "testpaths=", str(ROOT / "notebooks")],
        cwd=ROOT, env=fresh_workshop_env, capture_output=True, text=True, timeout=1200)
    tail = run.stdout[-4000:]
    assert run.returncode == 0, tail
    assert " failed" not in tail and " passed" in tail
