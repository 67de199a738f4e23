"""What 01_deploy_stack must leave: the stack on the emulator, its outputs shown, and a re-run that changes nothing."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


def _stack(workshop):
    cf = workshop.emulator.client("cloudformation")
    return cf.describe_stacks(StackName=workshop.settings.stack_name)["Stacks"][0]


@check("01_deploy_stack")
def creates_the_stack_and_shows_its_outputs(workshop, executed):
    deployed = recorded_value(executed, "deploy")
    assert (deployed["action"], deployed["status"]) == ("created", "CREATE_COMPLETE")
    description = _stack(workshop)
    assert description["StackStatus"] == "CREATE_COMPLETE"
    table = cell_text(executed, "stack.outputs_df(settings)")
    for output in description["Outputs"]:
        assert output["OutputKey"] in table and output["OutputValue"] in table


@check("01_deploy_stack")
def shows_the_execution_roles_permissions(workshop, executed):
    table = cell_text(executed, "role_permissions_df")
    assert "bedrock-agentcore:RetrieveMemoryRecords" in table
    assert "bedrock:InvokeModelWithResponseStream" in table


@check("01_deploy_stack")
def running_it_again_changes_nothing_and_says_so(workshop, executed):
    before = _stack(workshop)
    again = workshop.run(workshop.notebooks["01_deploy_stack"], label="rerun")
    assert recorded_value(again, "deploy")["action"] == "unchanged"
    assert "unchanged" in cell_text(again, "stack.deploy_stack(settings)")  # and the reader is told so
    after = _stack(workshop)
    assert after["StackStatus"] == before["StackStatus"] == "CREATE_COMPLETE"
    assert after["Outputs"] == before["Outputs"]
