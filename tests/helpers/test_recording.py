"""helpers.record: a notebook shows a value as usual and records it as JSON that tests read back."""
from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from helpers import record
from helpers.changes import Change
from helpers.errors import WorkshopError
from helpers.recording import MEDIA_TYPE, recorded
from helpers.stack import DeployResult


@pytest.fixture
def shell():
    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


def _as_notebook(captured) -> dict:
    return {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": o.data}
                                                        for o in captured.outputs]}]}


def test_a_recorded_value_is_shown_as_usual_and_read_back_as_data(shell):
    table = pd.DataFrame({"score": [0.9, 0.4], "text": ["prefers pytest", "likes tabs"]})
    result = DeployResult(stack_name="s", action=Change.UNCHANGED, status="UPDATE_COMPLETE", seconds=1.5)
    with capture_output() as captured:
        record("ranked", table)
        record("deploy", result)
        record("again", Change.UNCHANGED)
    shown_table, shown_result, shown_change = (o.data for o in captured.outputs)
    assert "<table" in shown_table["text/html"] and shown_result["text/plain"] == repr(result)
    assert shown_change["text/markdown"] == "**unchanged**"
    values = recorded(_as_notebook(captured))
    assert values["ranked"] == [{"score": 0.9, "text": "prefers pytest"}, {"score": 0.4, "text": "likes tabs"}]
    assert values["deploy"]["action"] == "unchanged" and values["again"] == "unchanged"
    assert all(MEDIA_TYPE in o.data for o in captured.outputs)


def test_a_value_for_a_check_can_show_as_a_sentence(shell):
    with capture_output() as captured:
        record("flags", (True, False), says="the second chat is closed; the first is open")
    (shown,) = (o.data for o in captured.outputs)
    assert shown["text/plain"] == "the second chat is closed; the first is open" and "text/html" not in shown
    assert recorded(_as_notebook(captured))["flags"] == [True, False]


def test_outside_a_notebook_a_recorded_value_is_printed(capsys):
    record("pushed_again", False)
    assert capsys.readouterr().out == "False\n"


def test_a_record_name_must_be_a_plain_name():
    with pytest.raises(WorkshopError, match="not a plain name"):
        record("two words", 1)
