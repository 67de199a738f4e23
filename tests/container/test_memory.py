"""The agent's memory: the last MEMORY_MAX_TURNS turns in order, the context tag, SSM trouble."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from agent.memory import Memory, MemoryContext
from agent.settings import AgentSettings


def settings(**env) -> AgentSettings:
    return AgentSettings.from_env({"MEMORY_ID_PARAMETER": "/p/memory-id", **env})


def test_only_the_last_memory_max_turns_turns_come_back_oldest_first(emulator, agent_resources):
    client = emulator.client("bedrock-agentcore")
    base = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    for i in range(5):
        client.create_event(memoryId=agent_resources["memory_id"], actorId="mia", sessionId="turns",
                            eventTimestamp=base + dt.timedelta(seconds=i), payload=[
                                {"conversational": {"role": "USER", "content": {"text": f"question {i}"}}},
                                {"conversational": {"role": "ASSISTANT", "content": {"text": f"answer {i}"}}}])
    mem = Memory(settings(MEMORY_ID_PARAMETER=agent_resources["parameter"], MEMORY_MAX_TURNS="3"),
                 emulator.client("ssm"), client)
    mem.load()
    assert mem.enabled
    turns = mem.recent_turns("mia", "turns")
    assert turns == [(role, f"{kind} {i}") for i in (2, 3, 4)
                     for role, kind in (("USER", "question"), ("ASSISTANT", "answer"))]
    assert mem.recent_turns("someone-else", "turns") == []


def test_the_context_is_wrapped_in_the_tag_the_stand_in_quotes():
    ctx = MemoryContext(turns=[("USER", "hi")], preferences=["likes tabs"])
    text = ctx.render()
    assert text.startswith("<memory_context>") and text.endswith("</memory_context>")
    assert "- user: hi" in text and "- likes tabs" in text
    assert MemoryContext().render() == ""


class FlakySSM:
    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    def get_parameter(self, Name):
        self.calls += 1
        if self.calls <= self.failures:
            raise EndpointConnectionError(endpoint_url="http://ssm.invalid")
        return {"Parameter": {"Value": "mem-123"}}


def test_an_unreachable_ssm_is_tried_again_later():
    ssm = FlakySSM(failures=1)
    mem = Memory(settings(), ssm, agentcore=object())
    mem.load()
    assert not mem.enabled and "unreachable" in mem.status
    mem.retry_if_unreachable()
    assert ssm.calls == 1  # too soon
    mem._retry_after = 0.0  # as if RETRY_SECONDS had passed
    mem.retry_if_unreachable()
    assert mem.enabled and mem.memory_id == "mem-123"


def test_a_missing_parameter_disables_memory_with_the_reason_and_is_not_retried():
    class MissingSSM:
        calls = 0

        def get_parameter(self, Name):
            MissingSSM.calls += 1
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": "no"}}, "GetParameter")

    mem = Memory(settings(), MissingSSM(), agentcore=object())
    mem.load()
    mem.retry_if_unreachable()
    assert not mem.enabled and "/p/memory-id does not exist" in mem.status and MissingSSM.calls == 1


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_parameter_disables_memory(value):
    class EmptySSM:
        def get_parameter(self, Name):
            return {"Parameter": {"Value": value}}

    mem = Memory(settings(), EmptySSM(), agentcore=object())
    mem.load()
    assert not mem.enabled and "empty" in mem.status


def _strategy_ids(emulator, memory_id: str) -> dict[str, str]:
    strategies = emulator.client("bedrock-agentcore-control").get_memory(memoryId=memory_id)["memory"]["strategies"]
    return {st["type"]: st["strategyId"] for st in strategies}


@pytest.mark.parametrize("with_control", [True, False], ids=["by-strategy-id", "by-namespace-fallback"])
def test_a_new_session_gets_the_summary_of_an_earlier_session_even_when_facts_and_preferences_match_better(
        emulator, agent_resources, with_control):
    mid = agent_resources["memory_id"]
    actor = f"sum-{uuid.uuid4().hex[:8]}"
    ids = _strategy_ids(emulator, mid)
    now = dt.datetime.now(dt.timezone.utc)
    records = []
    for i in range(6):
        records.append((f"coding/user/{actor}/facts", ids["SEMANTIC"],
                        f"The user tests python code with pytest, fact number {i}"))
        records.append((f"coding/user/{actor}/preferences", ids["USER_PREFERENCE"],
                        f"The user prefers pytest for python tests, preference number {i}"))
    records.append((f"coding/user/{actor}/earlier", ids["SUMMARIZATION"],
                    "Session summary: the user wrote a python calculator and its pytest tests"))
    records.append((f"coding/user/{actor}/current", ids["SUMMARIZATION"],
                    "Session summary: this very session, python pytest work"))
    client = emulator.client("bedrock-agentcore")
    resp = client.batch_create_memory_records(memoryId=mid, records=[
        {"requestIdentifier": f"r{i}", "namespaces": [ns], "memoryStrategyId": sid,
         "content": {"text": text}, "timestamp": now} for i, (ns, sid, text) in enumerate(records)])
    assert not resp["failedRecords"]
    control = emulator.client("bedrock-agentcore-control") if with_control else None
    mem = Memory(settings(MEMORY_ID_PARAMETER=agent_resources["parameter"], MEMORY_TOP_K="5"),
                 emulator.client("ssm"), client, control)
    mem.load()
    ctx = mem.context(actor, "current", "python pytest tests")
    assert ctx.warnings == []
    assert ctx.summaries == ["Session summary: the user wrote a python calculator and its pytest tests"]
    assert len(ctx.facts) == 5 and len(ctx.preferences) == 5
    assert "earlier sessions" in ctx.render()


_DENY = ("User: arn:aws:sts::123456789012:assumed-role/R/S is not authorized to perform: {action} on resource: "
         "{resource} because no identity-based policy allows the {action} action")


def _denied(action: str, resource: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDeniedException",
                                  "Message": _DENY.format(action=action, resource=resource)}}, operation)


def test_a_denied_memory_read_is_a_warning_and_a_log_line_naming_the_action_to_grant(caplog):
    arn = "arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/mem-123"

    class DeniedMemory:
        def list_events(self, **_):
            raise _denied("bedrock-agentcore:ListEvents", arn, "ListEvents")

        def retrieve_memory_records(self, **_):
            return {"memoryRecordSummaries": []}

    mem = Memory(settings(), FlakySSM(failures=0), DeniedMemory())
    mem.load()
    with caplog.at_level("WARNING", logger="agent.iam"):
        ctx = mem.context("mia", "s-1", "what did we do?")
    assert ctx.is_empty()  # empty, but never silently so
    assert ctx.warnings == [f"access denied while reading recent turns from memory mem-123: the runtime's execution "
                            f"role needs bedrock-agentcore:ListEvents on {arn}; grant it in the role's policy "
                            "(cloudformation/workshop.yaml)"]
    assert any("bedrock-agentcore:ListEvents" in r.getMessage() for r in caplog.records)


def test_a_denied_memory_id_parameter_disables_memory_naming_ssm_get_parameter():
    class DeniedSSM:
        def get_parameter(self, Name):
            raise _denied("ssm:GetParameter", f"arn:aws:ssm:us-east-1:123456789012:parameter{Name}", "GetParameter")

    mem = Memory(settings(), DeniedSSM(), agentcore=object())
    mem.load()
    assert not mem.enabled
    assert "execution role needs ssm:GetParameter on arn:aws:ssm:us-east-1:123456789012:parameter/p/memory-id" \
        in mem.status
