"""CI runs the short profile of every proof section: each must report no problem (0 5xx, 0 hangs, 0 lost, 0 escapes)."""
from __future__ import annotations

import pytest

from proof import PROFILES, SECTIONS
from proof.__main__ import run_section


@pytest.mark.slow
@pytest.mark.parametrize("section", SECTIONS)
def test_short_profile_finds_no_problem(section):
    report = run_section(section, PROFILES["short"])
    assert report.figures, f"{section} reported no figures"
    assert report.ok, "\n".join(report.problems)
