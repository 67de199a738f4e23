"""The real agent as its execution role, on the workshop's own template: what it may not do, it is refused, and says so.

The negative tests are the seed's defect caught offline: a role that lacks one action the agent calls.
"""
from __future__ import annotations

import pytest

from helpers import iam, invoke
from helpers.errors import InvocationError
from tests.emulator.fixtures.workshop import deploy, granted_actions, template_without, unused_offline_justifications


def _denied_actions(coverage) -> set[str]:
    return {row["action"] for row in coverage.denied}


@pytest.mark.slow
def test_a_run_with_memory_files_and_a_streamed_answer_is_never_denied_and_each_unused_grant_is_justified(local_env):
    workshop = deploy()
    first = invoke.invoke(workshop.settings, "Create a file hello.py that prints hello world", "alice", "iam-1",
                          stream=True, progress=False)
    second = invoke.invoke(workshop.settings, "What files are in the workspace?", "alice", "iam-1",
                           stream=True, progress=False)
    assert first["success"] and second["success"], (first, second)
    assert any(e["type"] == "file_uploaded" for e in first.events)
    assert second["metadata"]["memory_context"]["turns"] >= 2  # the memory read saw the first turn
    assert not first["metadata"]["access_denied"] and not second["metadata"]["access_denied"]

    coverage = iam.coverage(workshop.settings)
    assert coverage.denied == [], coverage.denied_df().to_string()
    called = {row["action"] for row in coverage.calls}
    # The calls this run must have made, each allowed by a named statement of the template.
    assert {"ssm:GetParameter", "bedrock-agentcore:ListEvents", "bedrock-agentcore:RetrieveMemoryRecords",
            "bedrock-agentcore:CreateEvent", "s3:PutObject", "bedrock:InvokeModelWithResponseStream"} <= called
    assert all(row["sid"] for row in coverage.calls)
    unused = {grant["action"] for grant in coverage.unused}
    justified = unused_offline_justifications()
    assert unused <= justified, f"granted, never called, and not justified in the template: {unused - justified}"
    assert justified <= granted_actions(), f"justified but not granted: {justified - granted_actions()}"


# Each: the action taken out of the role, the prompt whose run needs it, what the output must then say.
SEED_DEFECTS = {
    "bedrock-agentcore:ListEvents": "What did we talk about?",
    "s3:PutObject": "Create a file hello.py that prints hello world",
    "bedrock:InvokeModelWithResponseStream": "Say hello",
    "ssm:GetParameter": "Say hello",
    "bedrock-agentcore:CreateEvent": "Say hello",
}


@pytest.mark.slow
@pytest.mark.parametrize("action", list(SEED_DEFECTS))
def test_a_role_without_an_action_the_agent_calls_is_refused_and_the_output_says_which(local_env, tmp_path, action):
    workshop = deploy(template_without(action, tmp_path / "workshop.yaml"))
    prompt = SEED_DEFECTS[action]
    if action == "bedrock:InvokeModelWithResponseStream":
        # Without the model there is no answer: the run fails, and its error names the action to grant.
        with pytest.raises(InvocationError) as err:
            invoke.invoke(workshop.settings, prompt, "alice", "denied-1", stream=True, progress=False)
        assert f"the runtime's execution role needs {action}" in str(err.value) and "grant it" in str(err.value)
    else:
        out = invoke.invoke(workshop.settings, prompt, "alice", "denied-1", stream=True, progress=False)
        assert out["success"], out  # the agent still answers, and says what it could not do
        denied = {d["action"] for d in out["metadata"]["access_denied"]}
        assert action in denied, out
        assert any(action in w and "grant it" in w for w in out["warnings"]), out["warnings"]
    coverage = iam.coverage(workshop.settings)
    assert action in _denied_actions(coverage), coverage.denied_df().to_string()
    # Only that one action is missing: nothing else the run needed was refused.
    assert _denied_actions(coverage) == {action}
