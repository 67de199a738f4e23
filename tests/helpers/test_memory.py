"""helpers.memory against the emulator: one memory however it is called, tables a person can read."""
from __future__ import annotations

import threading
import uuid

import pytest

from helpers import aws, config, memory
from helpers.changes import Change, Deleted
from helpers.deployment import Deployment
from helpers.errors import MemoryServiceError
from tests.support.calls import counting_calls

TURNS = [
    ("USER", "I work at Acme on the payments service. Our stack is Python and Postgres."),
    ("ASSISTANT", "I created payments/api.py with a health check."),
    ("USER", "I prefer pytest over unittest. Never commit directly to main."),
    ("ASSISTANT", "Understood."),
]


@pytest.fixture
def settings(local_env, monkeypatch):
    """Settings with a memory name and SSM parameter of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("WORKSHOP_MEMORY_NAME", f"HelperTest_{suffix}")
    monkeypatch.setenv("WORKSHOP_MEMORY_ID_PARAMETER", f"/workshop-tests/{suffix}/memory-id")
    return config.load()


def _memories_named(settings):
    control = aws.client("bedrock-agentcore-control", settings)
    every = control.get_paginator("list_memories").paginate().build_full_result()["memories"]
    return [m for m in every if m["id"].rsplit("-", 1)[0] == settings.memory_name and m["status"] != "DELETING"]


def _ssm_value(settings):
    return aws.client("ssm", settings).get_parameter(Name=settings.memory_id_parameter)["Parameter"]["Value"]


def test_memory_is_created_once_by_16_concurrent_callers(settings):
    results, errors = [], []

    def call():
        try:
            results.append(memory.get_or_create_memory(settings, progress=False)["id"])
        except Exception as exc:  # collected and asserted in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(results)) == 1
    assert [m["id"] for m in _memories_named(settings)] == [results[0]]
    assert _ssm_value(settings) == results[0]


def test_get_or_create_memory_is_safe_to_repeat_and_has_the_seed_strategies(settings):
    first = memory.get_or_create_memory(settings, progress=False)
    again = memory.get_or_create_memory(settings, progress=False)
    assert first["id"] == again["id"] and again["status"] == "ACTIVE"
    assert len(_memories_named(settings)) == 1
    namespaces = {s["kind"]: s["namespace"] for s in memory.memory_info(settings)["strategies"]}
    assert namespaces == {"facts": "coding/user/{actorId}/facts", "summaries": "coding/user/{actorId}/{sessionId}",
                          "preferences": "coding/user/{actorId}/preferences"}
    assert list(memory.strategies_df(settings)["kind"]) == ["facts", "summaries", "preferences"]


def test_an_ssm_id_of_a_deleted_memory_is_repaired_not_trusted(settings):
    aws.client("ssm", settings).put_parameter(Name=settings.memory_id_parameter, Value="Gone-abcdeFGH12",
                                              Type="String", Overwrite=True)
    created = memory.get_or_create_memory(settings, progress=False)
    assert created["id"] != "Gone-abcdeFGH12" and _ssm_value(settings) == created["id"]
    assert memory.delete_memory(settings).ids == (created["id"],)
    replaced = memory.get_or_create_memory(settings, progress=False)
    assert replaced["id"] != created["id"] and replaced["status"] == "ACTIVE"
    assert _ssm_value(settings) == replaced["id"]


def test_creating_after_a_cleanup_is_safe_though_the_first_token_is_spent(settings):
    import time

    control = aws.client("bedrock-agentcore-control", settings)
    ssm = aws.client("ssm", settings)
    ids = []
    for _ in range(3):  # run, clean up, run again, twice: each run derives the token of the one before
        created = memory.get_or_create_memory(settings, progress=False)
        assert created["status"] == "ACTIVE" and created["id"] not in ids
        ids.append(created["id"])
        assert memory.delete_memory(settings).ids == (created["id"],)
        ssm.delete_parameter(Name=settings.memory_id_parameter)  # as 99_cleanup does
        deadline = time.monotonic() + 10
        while any(m["id"] == created["id"] for m in control.list_memories()["memories"]):
            assert time.monotonic() < deadline, "the deleted memory never went away"
            time.sleep(0.2)
    assert len(set(ids)) == 3


def test_memory_id_without_the_parameter_is_a_clear_error(settings):
    with pytest.raises(MemoryServiceError) as err:
        memory.memory_id(settings)
    assert settings.memory_id_parameter in str(err.value) and "02_create_memory" in str(err.value)


def test_delete_memory_is_safe_to_repeat(settings):
    created = memory.get_or_create_memory(settings, progress=False)
    first = memory.delete_memory(settings)
    assert (first.change, first.ids) == (Change.DELETED, (created["id"],))
    # Still DELETING (or gone), and the SSM id is left to helpers.cleanup: deleting again must not fail.
    again = memory.delete_memory(settings)
    assert again.change in (Change.ALREADY_GONE, Change.DELETED) and again.ids in ((), (created["id"],))
    aws.client("ssm", settings).delete_parameter(Name=settings.memory_id_parameter)
    # With the id gone too (as after a clean-up), a memory still DELETING is not reported as removed again.
    assert memory.delete_memory(settings) == Deleted.of([])


def test_events_df_shows_turns_oldest_first(settings):
    memory.get_or_create_memory(settings, progress=False)
    written = memory.ensure_conversation(settings, "ana", "session-1", TURNS)
    assert (written.added, written.already, written.messages) == (4, 0, 4)
    df = memory.events_df(settings, "ana", "session-1")
    assert list(df.columns) == ["time", "role", "text", "event_id"]
    assert list(df["role"]) == ["USER", "ASSISTANT", "USER", "ASSISTANT"]
    assert df["text"].iloc[0].startswith("I work at Acme")
    # Already there: not written twice.
    again = memory.ensure_conversation(settings, "ana", "session-1", TURNS)
    assert (again.added, again.already, again.messages) == (0, 4, 4) and "wrote nothing" in str(again)


def test_sessions_df_counts_each_session_s_events_and_messages(settings):
    memory.get_or_create_memory(settings, progress=False)
    memory.add_turns(settings, "bo", "first", TURNS[:2])
    memory.add_turns(settings, "bo", "second", TURNS)
    df = memory.sessions_df(settings, "bo")
    assert list(df.columns) == ["session_id", "started", "last_event", "events", "messages"]
    assert list(df["session_id"]) == ["first", "second"] and list(df["events"]) == [2, 4]
    assert list(df["messages"]) == [2, 4]  # add_turns writes one message per event


def test_records_df_shows_each_kind_and_ranks_a_query(settings):
    memory.get_or_create_memory(settings, progress=False)
    memory.add_turns(settings, "cy", "s1", TURNS)
    counts = memory.wait_for_records(settings, "cy", "s1", progress=False)
    assert all(n >= 1 for n in counts.values())
    facts = memory.records_df(settings, "cy", "facts")
    assert list(facts.columns) == ["time", "text", "namespace", "record_id"]
    assert "The user works at Acme on the payments service." in list(facts["text"])
    assert set(facts["namespace"]) == {"coding/user/cy/facts"}
    prefs = memory.records_df(settings, "cy", "preferences")
    assert any("pytest" in t for t in prefs["text"])
    summaries = memory.records_df(settings, "cy", "summaries")
    assert list(summaries["namespace"]) == ["coding/user/cy/s1"]
    assert len(memory.records_df(settings, "cy", "summaries", session_id="s1")) == 1
    ranked = memory.records_df(settings, "cy", "facts", query="Which database does the user run?")
    assert list(ranked.columns)[:2] == ["score", "text"]
    assert "Postgres" in ranked["text"].iloc[0]
    assert list(ranked["score"]) == sorted(ranked["score"], reverse=True)


def test_records_df_rejects_an_unknown_kind(settings):
    memory.get_or_create_memory(settings, progress=False)
    with pytest.raises(MemoryServiceError) as err:
        memory.records_df(settings, "cy", "opinions")
    assert "facts" in str(err.value)


def test_record_counts_reads_the_memory_id_and_strategies_once_not_once_per_kind(settings):
    memory.get_or_create_memory(settings, progress=False)
    with counting_calls(settings, "ssm", "bedrock-agentcore-control") as calls:
        assert memory.record_counts(settings, "nobody") == {"facts": 0, "summaries": 0, "preferences": 0}
    assert (calls["GetParameter"], calls["GetMemory"]) == (1, 1)


def test_waiting_for_records_resolves_the_memory_once_however_often_it_polls(settings):
    memory.get_or_create_memory(settings, progress=False)
    memory.add_turns(settings, "wait", "s1", TURNS)
    with counting_calls(settings, "ssm", "bedrock-agentcore-control", "bedrock-agentcore") as calls:
        memory.wait_for_records(settings, "wait", "s1", progress=False)
    assert (calls["GetParameter"], calls["GetMemory"]) == (1, 1)
    assert calls["ListMemoryRecords"] >= 3  # one per kind per poll: the polling itself still happened


def test_a_deployment_keeps_what_it_resolved_until_refreshed(settings):
    first = memory.get_or_create_memory(settings, progress=False)
    deployment = Deployment(settings)
    assert deployment.memory_id == first["id"] and set(deployment.strategies) == set(memory.KINDS)
    memory.delete_memory(settings)
    aws.client("ssm", settings).delete_parameter(Name=settings.memory_id_parameter)
    assert deployment.memory_id == first["id"]  # kept: no call was made
    with pytest.raises(MemoryServiceError, match="has not been created"):
        deployment.refresh().memory_id
