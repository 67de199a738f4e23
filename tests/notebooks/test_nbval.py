"""nbval in lax mode runs the notebooks exactly as stored (no injected parameters), in order, on a fresh emulator."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, EmulatorProcess


@pytest.mark.slow
def test_the_stored_notebooks_run_cleanly_under_nbval_lax(tmp_path):
    emu = EmulatorProcess(tmp_path / "emulator", env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    env = {**os.environ, "WORKSHOP_TARGET": "local", "AWS_ENDPOINT_URL": emu.endpoint,
           "WORKSHOP_STATE_DIR": str(tmp_path / "workshop")}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
             "--rootdir", str(ROOT), "-o", "addopts=", "-o", "testpaths=", str(ROOT / "notebooks")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    finally:
        emu.stop()
    tail = run.stdout[-4000:]
    assert run.returncode == 0, tail
    assert " failed" not in tail and " passed" in tail
