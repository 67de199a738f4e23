"""Run the notebooks with papermill against ONE fresh emulator, in order, each in a fresh kernel.

`workshop` (module-scoped) owns that emulator and runs notebooks through helpers.workshop, as
`make workshop` does but with no parameters injected: the notebooks run exactly as stored, so this one
run also shows that a reader's run works (nbval's separate second run of every notebook did only that).
Each notebook's checks live in `check_NN_name.py` beside this file, and read what the notebook recorded.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from helpers import config, workshop as runner
from tests.support.emulator import EmulatorProcess


class Workshop:
    """The shared emulator, and the notebooks run so far (stop after the first failure, as the runner does)."""

    def __init__(self, emulator: EmulatorProcess, runs_dir: Path, settings: config.Settings,
                 shape_violations: Path | None = None):
        self.emulator = emulator
        # The emulator's EMULATOR_CHECK_RESPONSES file: one line per response that broke botocore's shapes.
        self.shape_violations = shape_violations
        self.runs_dir = runs_dir
        self.settings = settings
        self.failed: str | None = None
        self.executed: dict[str, nbformat.NotebookNode] = {}

    def run(self, notebook: Path, label: str = "") -> nbformat.NotebookNode:
        """Run one notebook in a fresh kernel; return the executed copy, or fail with the cell's one-line cause."""
        out_dir = self.runs_dir / (label or "first")
        [result] = runner.run_notebooks(target="local", only=[notebook.stem], notebooks_dir=notebook.parent,
                                        output_dir=out_dir, echo=lambda *args: None, inject_parameters=False)
        if result.status != "ok":
            self.failed = notebook.name
            pytest.fail(f"{notebook.name}: {result.error} (executed copy: {result.output})", pytrace=False)
        executed = nbformat.read(result.output, as_version=4)
        if not label:
            self.executed[notebook.stem] = executed
        return executed


@pytest.fixture(scope="module")
def workshop(tmp_path_factory):
    violations = tmp_path_factory.mktemp("notebooks-conformance") / "shape-violations.jsonl"
    emulator = EmulatorProcess(tmp_path_factory.mktemp("notebooks-emulator"),
                               env={"EMULATOR_EXTRACTION_DELAY": "0.3",
                                    "EMULATOR_CHECK_RESPONSES": str(violations)}).start()
    state_dir = tmp_path_factory.mktemp("notebooks-workshop")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WORKSHOP_TARGET", "local")
        env.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
        env.setenv("WORKSHOP_STATE_DIR", str(state_dir))
        env.delenv("AWS_REGION", raising=False)
        env.delenv("AWS_DEFAULT_REGION", raising=False)
        try:
            yield Workshop(emulator, tmp_path_factory.mktemp("runs"), config.load(), violations)
        finally:
            emulator.stop()
