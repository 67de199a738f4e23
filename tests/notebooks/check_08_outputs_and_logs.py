"""What 08_outputs_and_logs must show: the session's files downloaded, log lines, the deployment, a timeline."""
from __future__ import annotations

from pathlib import Path

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text


@check("08_outputs_and_logs")
def downloads_the_files_of_the_session(workshop, executed):
    table = cell_text(executed, "outputs.download_session(")
    assert "hello.py" in table and "session" in table and "output" in table
    downloads = Path(workshop.settings.state_dir) / "downloads" / "workshop-user"
    assert any(p.name == "hello.py" for p in downloads.rglob("*"))


@check("08_outputs_and_logs")
def shows_the_runtime_logs_and_the_deployment(workshop, executed):
    log = cell_text(executed, "logs.logs_df(")
    # The agent's own events of 05's session, parsed: its prompt, its tool call; no server noise.
    assert "prompt: Create a file hello.py" in log and "Write hello.py" in log
    assert "POST /invocations" not in log and "agent_event" not in log
    deployment = cell_text(executed, "outputs.deployment_df(settings)")
    for field in ("runtime arn", "runtime status", "READY", "image", "memory id", "strategy facts", "bucket"):
        assert field in deployment


@check("08_outputs_and_logs")
def the_timeline_has_model_turns_and_tool_calls(workshop, executed):
    timeline = cell_text(executed, "timeline = logs.timeline_df(")
    assert "model turn" in timeline and "tool Write" in timeline and "whole invocation" in timeline
    plot_cell = next(c for c in executed.cells if c.cell_type == "code" and "timeline_plot" in c.source)
    assert any("image/png" in o.get("data", {}) for o in plot_cell.outputs)


@check("08_outputs_and_logs")
def the_iam_coverage_shows_every_call_allowed_by_a_statement_and_none_denied(workshop, executed):
    summary = cell_text(executed, "coverage = iam.coverage(settings)")
    assert "0 denied" in summary and "AgentExecutionRole" in summary, summary
    calls = cell_text(executed, "coverage.calls_df()")
    for action, sid in (("bedrock:InvokeModelWithResponseStream", "BedrockModelInvocation"),
                        ("bedrock-agentcore:ListEvents", "AgentCoreMemoryDataPlane"),
                        ("ssm:GetParameter", "MemoryIdParameter"), ("s3:PutObject", "OutputBucketObjects")):
        assert action in calls and sid in calls, (action, calls[:2000])
    assert "Empty DataFrame" in cell_text(executed, "coverage.denied_df()")
    assert "aws-marketplace:Subscribe" in cell_text(executed, "coverage.unused_df()")
