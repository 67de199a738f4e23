"""helpers.waiters: the one place that polls; progress, failure and a timeout that names what it awaited."""
from __future__ import annotations

import pytest

from helpers.errors import StackError, WaitTimeout, WorkshopError
from helpers.waiters import wait_for


def test_returns_the_state_once_done():
    states = iter(["CREATING", "CREATING", "ACTIVE"])
    assert wait_for("x", lambda: next(states), done=lambda s: s == "ACTIVE", interval=0.01, progress=False) == "ACTIVE"


def test_timeout_names_what_was_awaited_and_its_last_state():
    with pytest.raises(WaitTimeout) as err:
        wait_for("memory ClaudeCodeAgentMemory to become ACTIVE", lambda: "CREATING",
                 done=lambda s: s == "ACTIVE", timeout=0.3, interval=0.05, progress=False)
    text = str(err.value)
    assert "memory ClaudeCodeAgentMemory to become ACTIVE" in text
    assert "CREATING" in text
    assert "\n" not in text


def test_timeout_describes_the_state_with_describe():
    with pytest.raises(WaitTimeout, match="status=PENDING"):
        wait_for("job", lambda: {"status": "PENDING"}, done=lambda s: False, describe=lambda s: f"status={s['status']}",
                 timeout=0.2, interval=0.05, progress=False)


def test_a_failed_state_raises_the_error_it_names():
    with pytest.raises(WorkshopError, match="FAILED: quota"):
        wait_for("x", lambda: "FAILED", done=lambda s: False, failed=lambda s: f"{s}: quota", progress=False)


def test_a_failure_given_as_an_exception_is_raised_as_is():
    problem = StackError("stack broke")
    with pytest.raises(StackError) as err:
        wait_for("x", lambda: "FAILED", done=lambda s: False, failed=lambda s: problem, progress=False)
    assert err.value is problem


def test_progress_is_shown_on_a_terminal(capsys):
    states = iter(["CREATING", "ACTIVE"])
    wait_for("thing T", lambda: next(states), done=lambda s: s == "ACTIVE", interval=0.01)
    err = capsys.readouterr().err
    assert "Waiting for thing T: CREATING" in err
    assert "ACTIVE, done in" in err


def test_polling_backs_off():
    calls = []
    with pytest.raises(WaitTimeout):
        wait_for("x", lambda: calls.append(1) or "WAIT", done=lambda s: False, timeout=1.0, interval=0.1,
                 max_interval=0.4, progress=False)
    # 0.1, 0.15, 0.225, 0.3375, 0.4 ... : fewer probes than a fixed 0.1 s interval would make.
    assert 3 <= len(calls) <= 7


def test_in_a_notebook_the_status_line_is_plain_text_not_a_quoted_string(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from helpers import waiters

    monkeypatch.setattr(waiters, "_in_notebook", lambda: True)
    shell = InteractiveShell.instance()
    try:
        with capture_output() as captured:
            wait_for("thing T", lambda: "ACTIVE", done=lambda s: s == "ACTIVE")
    finally:
        InteractiveShell.clear_instance()
    shown = [o.data["text/plain"] for o in captured.outputs]
    assert shown == ["Waiting for thing T ...", "Waiting for thing T: ACTIVE"]  # no quotes around either


def test_a_wait_done_at_once_reports_no_time_and_one_given_a_start_counts_from_it(capsys):
    import time

    wait_for("quick", lambda: "READY", done=lambda s: s == "READY")
    assert capsys.readouterr().err.strip() == "Waiting for quick: READY"  # not "done in 0.0s"
    wait_for("created", lambda: "READY", done=lambda s: s == "READY", since=time.monotonic() - 11.8)
    assert "READY, done in 11.8s" in capsys.readouterr().err
