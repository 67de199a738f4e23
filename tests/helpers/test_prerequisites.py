"""helpers.prerequisites.explain_target: which target runs, and which of parameter, environment or default chose it."""
from __future__ import annotations

from helpers import config, prerequisites


def test_the_target_parameter_is_named_as_the_reason_and_said_to_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("WORKSHOP_TARGET", "aws")
    why = prerequisites.explain_target(config.load(target="local"), requested="local").why
    assert why == "the notebook's TARGET parameter is 'local' (it wins over WORKSHOP_TARGET='aws' in the environment)"


def test_without_a_parameter_the_environment_or_else_the_default_is_the_reason(monkeypatch):
    monkeypatch.setenv("WORKSHOP_TARGET", "local")
    assert prerequisites.explain_target(config.load()).why == "WORKSHOP_TARGET='local' is set in the environment"
    monkeypatch.delenv("WORKSHOP_TARGET")
    assert prerequisites.explain_target(config.load()).why == "nothing chose a target, and 'local' is the default"
