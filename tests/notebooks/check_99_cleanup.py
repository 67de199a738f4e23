"""What 99_cleanup must leave: nothing, and a second run that finds nothing to remove."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("99_cleanup")
def removes_everything_and_a_second_run_finds_it_gone(workshop, executed):
    first = {row["status"] for row in recorded_value(executed, "first_cleanup")}
    second = {row["status"] for row in recorded_value(executed, "second_cleanup")}
    assert "removed" in first and "error" not in first
    assert "removed" not in second and "error" not in second
    assert "Empty DataFrame" in cell_text(executed, "cleanup.remaining_df(settings)")


@check("99_cleanup")
def nothing_remains_in_the_emulator(workshop, executed):
    emu = workshop.emulator
    with pytest.raises(ClientError):
        emu.client("cloudformation").describe_stacks(StackName=workshop.settings.stack_name)
    memories = emu.client("bedrock-agentcore-control").list_memories()["memories"]
    assert [m for m in memories if m.get("status") != "DELETING"] == []
    assert emu.client("bedrock-agentcore-control").list_agent_runtimes()["agentRuntimes"] == []
    with pytest.raises(ClientError):
        emu.client("ssm").get_parameter(Name=workshop.settings.memory_id_parameter)


@check("99_cleanup")
def says_how_to_stop_the_emulator_and_leaves_it_running_unless_asked(workshop, executed):
    assert "make stop-emulator" in "\n".join(c.source for c in executed.cells if c.cell_type == "markdown")
    assert "the emulator keeps running at http://127.0.0.1:" in cell_text(executed, "STOP_EMULATOR:")
