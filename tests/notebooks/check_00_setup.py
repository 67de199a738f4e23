"""What 00_setup must show: the target and why, the versions, and the emulator it reached."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text


@check("00_setup")
def says_which_target_and_why(workshop, executed):
    text = cell_text(executed, "explain_target")
    assert "Target: local" in text
    assert workshop.emulator.endpoint in text
    # Run as stored, TARGET is None, so the environment decides (the runner's injected TARGET is test_runner's).
    assert "WORKSHOP_TARGET='local' is set in the environment" in text


@check("00_setup")
def shows_versions_as_a_table(workshop, executed):
    text = cell_text(executed, "versions_df")
    assert "<table" in text
    for name in ("python", "boto3", "papermill", "pandas"):
        assert name in text


@check("00_setup")
def reaches_the_running_emulator_instead_of_starting_another(workshop, executed):
    text = cell_text(executed, "check_target")
    assert str(workshop.emulator.proc.pid) in text
    assert not (workshop.settings.state_dir / "emulator" / "emulator.pid").exists()
