"""AgentCore Memory in the emulator, through boto3 only: shapes, lifecycle, errors, events, records."""
from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.emulator import EmulatorProcess
from tests.support.polling import wait_until as _wait
from tests.support.shapes import assert_output_shape

SEED_STRATEGIES = [
    {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["coding/user/{actorId}/facts"]}},
    {"summaryMemoryStrategy": {"name": "summaries", "namespaces": ["coding/user/{actorId}/{sessionId}"]}},
    {"userPreferenceMemoryStrategy": {"name": "preferences",
                                      "namespaceTemplates": ["coding/user/{actorId}/preferences"]}},
]


def _name(prefix: str = "Mem") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _active(control, memory_id):
    return _wait(lambda: control.get_memory(memoryId=memory_id)["memory"], lambda m: m["status"] == "ACTIVE",
                 what=f"{memory_id} to be ACTIVE")


def _young(control, prefix):
    """A memory created just now, with the time it was created (it stays CREATING for about 1 s)."""
    return control.create_memory(name=_name(prefix), eventExpiryDuration=30)["memory"], time.monotonic()


def _still_creating(since: float) -> bool:
    # A loaded machine may take longer than the CREATING window between two calls; say so, not fail.
    if time.monotonic() - since > 0.8:
        pytest.skip("the machine was too slow to make a call while the memory was CREATING")
    return True


def _error_of(call) -> dict:
    """The AWS error a call answered with (Code None if it succeeded)."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]
    return {"Code": None, "Message": ""}


def _code(err) -> str:
    return err.value.response["Error"]["Code"]


def _say(data, memory_id, actor, session, role, text, when=None, **extra):
    return data.create_event(
        memoryId=memory_id, actorId=actor, sessionId=session,
        eventTimestamp=when or dt.datetime.now(dt.timezone.utc),
        payload=[{"conversational": {"content": {"text": text}, "role": role}}], **extra)["event"]


def _records(data, memory_id, namespace):
    return data.list_memory_records(memoryId=memory_id, namespace=namespace)["memoryRecordSummaries"]


@pytest.fixture(scope="module")
def control(emulator):
    return emulator.client("bedrock-agentcore-control")


@pytest.fixture(scope="module")
def data(emulator):
    return emulator.client("bedrock-agentcore")


@pytest.fixture(scope="module")
def memory(control):
    """One ACTIVE memory with the workshop's three strategies, shared by the tests of this module."""
    created = control.create_memory(name=_name("Shared"), eventExpiryDuration=30,
                                     memoryStrategies=SEED_STRATEGIES)["memory"]
    return _active(control, created["id"])


def _strategy_id(memory, kind):
    return next(s["strategyId"] for s in memory["strategies"] if s["type"] == kind)


# -- shapes ---------------------------------------------------------------------------------------
def test_every_memory_operation_answers_in_botocores_output_shape(control, data, memory):
    mid, actor, session = memory["id"], "shape-actor", "shape-session"
    calls = {
        "GetMemory": lambda: control.get_memory(memoryId=mid),
        "ListMemories": lambda: control.list_memories(),
        "UpdateMemory": lambda: control.update_memory(memoryId=mid, description="shape check"),
    }
    for operation, call in calls.items():
        assert_output_shape(control, operation, call())
    event = _say(data, mid, actor, session, "USER", "I work on the shape checker. I prefer short answers.",
                 metadata={"source": {"stringValue": "test"}})
    batch = data.batch_create_memory_records(memoryId=mid, records=[{
        "requestIdentifier": "r1", "namespaces": [f"coding/user/{actor}/facts"],
        "content": {"text": "The shape checker is written in Python."},
        "timestamp": dt.datetime.now(dt.timezone.utc), "memoryStrategyId": _strategy_id(memory, "SEMANTIC"),
    }])
    assert_output_shape(data, "BatchCreateMemoryRecords", batch)
    record_id = batch["successfulRecords"][0]["memoryRecordId"]
    calls = {
        "GetEvent": lambda: data.get_event(memoryId=mid, actorId=actor, sessionId=session, eventId=event["eventId"]),
        "ListEvents": lambda: data.list_events(memoryId=mid, actorId=actor, sessionId=session),
        "ListSessions": lambda: data.list_sessions(memoryId=mid, actorId=actor),
        "ListActors": lambda: data.list_actors(memoryId=mid),
        "RetrieveMemoryRecords": lambda: data.retrieve_memory_records(
            memoryId=mid, namespace=f"coding/user/{actor}/facts", searchCriteria={"searchQuery": "language"}),
        "ListMemoryRecords": lambda: data.list_memory_records(memoryId=mid, namespacePath=f"coding/user/{actor}"),
        "GetMemoryRecord": lambda: data.get_memory_record(memoryId=mid, memoryRecordId=record_id),
        "BatchUpdateMemoryRecords": lambda: data.batch_update_memory_records(memoryId=mid, records=[{
            "memoryRecordId": record_id, "timestamp": dt.datetime.now(dt.timezone.utc),
            "content": {"text": "The shape checker is written in Python 3.11."}}]),
        "DeleteMemoryRecord": lambda: data.delete_memory_record(memoryId=mid, memoryRecordId=record_id),
        "BatchDeleteMemoryRecords": lambda: data.batch_delete_memory_records(
            memoryId=mid, records=[{"memoryRecordId": record_id}]),
        "DeleteEvent": lambda: data.delete_event(memoryId=mid, actorId=actor, sessionId=session,
                                                 eventId=event["eventId"]),
    }
    assert_output_shape(data, "CreateEvent", {"event": event})
    for operation, call in calls.items():
        assert_output_shape(data, operation, call())
    created = control.create_memory(name=_name("Shape"), eventExpiryDuration=7, memoryStrategies=SEED_STRATEGIES)
    assert_output_shape(control, "CreateMemory", created)
    assert_output_shape(control, "DeleteMemory", control.delete_memory(memoryId=created["memory"]["id"]))


# -- control plane ---------------------------------------------------------------------------------
def test_memory_ids_and_arns_have_aws_formats(control, memory):
    name = memory["name"]
    assert memory["id"].startswith(name + "-") and len(memory["id"]) == len(name) + 11
    assert memory["arn"] == f"arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/{memory['id']}"
    for strategy in memory["strategies"]:
        assert strategy["strategyId"].startswith(strategy["name"] + "-")
        assert strategy["namespaces"] == strategy["namespaceTemplates"]
        assert strategy["status"] == "ACTIVE"


def test_memory_is_creating_then_active_and_deleting_then_gone(control):
    created, since = _young(control, "Life")
    assert created["status"] == "CREATING"
    status = control.get_memory(memoryId=created["id"])["memory"]["status"]
    assert _still_creating(since) and status == "CREATING"
    _active(control, created["id"])
    assert control.delete_memory(memoryId=created["id"])["status"] == "DELETING"
    assert control.get_memory(memoryId=created["id"])["memory"]["status"] == "DELETING"
    with pytest.raises(ClientError) as err:
        _wait(lambda: control.get_memory(memoryId=created["id"]), lambda _: False, timeout=5, what="deletion")
    assert _code(err) == "ResourceNotFoundException"


def test_create_memory_is_idempotent_by_client_token(control):
    name, token = _name("Idem"), str(uuid.uuid4())
    first = control.create_memory(name=name, eventExpiryDuration=30, clientToken=token)["memory"]
    again = control.create_memory(name=name, eventExpiryDuration=30, clientToken=token)["memory"]
    assert again["id"] == first["id"]
    ids = [m["id"] for m in control.get_paginator("list_memories").paginate().build_full_result()["memories"]]
    assert ids.count(first["id"]) == 1


def test_client_token_reused_for_a_different_memory_is_a_conflict(control):
    token = str(uuid.uuid4())
    control.create_memory(name=_name("Tok"), eventExpiryDuration=30, clientToken=token)
    with pytest.raises(ClientError) as err:
        control.create_memory(name=_name("Tok"), eventExpiryDuration=30, clientToken=token)
    assert _code(err) == "ConflictException"


def test_a_client_token_of_a_deleted_memory_is_still_spent_within_the_idempotency_window(control):
    name, token = _name("Spent"), str(uuid.uuid4())
    first = control.create_memory(name=name, eventExpiryDuration=30, clientToken=token)["memory"]
    _active(control, first["id"])
    control.delete_memory(memoryId=first["id"])
    with pytest.raises(ClientError) as err:
        _wait(lambda: control.get_memory(memoryId=first["id"]), lambda _: False, timeout=5, what="deletion")
    assert _code(err) == "ResourceNotFoundException"
    # AWS ignores a request whose token matches an earlier one, without an error: the answer names the
    # memory that request created, though it is gone now, and nothing new is created.
    again = control.create_memory(name=name, eventExpiryDuration=30, clientToken=token)["memory"]
    assert (again["id"], again["status"]) == (first["id"], "CREATING")
    assert not [m for m in control.get_paginator("list_memories").paginate().build_full_result()["memories"]
                if m["id"].startswith(f"{name}-")]
    with pytest.raises(ClientError) as err:
        control.create_memory(name=name, eventExpiryDuration=60, clientToken=token)
    assert _code(err) == "ConflictException"
    fresh = control.create_memory(name=name, eventExpiryDuration=30, clientToken=str(uuid.uuid4()))["memory"]
    assert fresh["id"] != first["id"]


def test_a_second_memory_with_the_same_name_is_rejected(control, memory):
    with pytest.raises(ClientError) as err:
        control.create_memory(name=memory["name"], eventExpiryDuration=30)
    assert _code(err) == "ValidationException"
    assert "already exists" in err.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def unchecked_control(emulator):
    """A client that sends what it is given, so the emulator's own validation is what answers."""
    from botocore.config import Config

    return emulator.client("bedrock-agentcore-control",
                           config=Config(parameter_validation=False, retries={"max_attempts": 1}))


@pytest.mark.parametrize("days", [1, 2, 366, 3000])
def test_event_expiry_outside_3_to_365_days_is_rejected_naming_the_field(unchecked_control, days):
    with pytest.raises(ClientError) as err:
        unchecked_control.create_memory(name=_name("Exp"), eventExpiryDuration=days)
    assert _code(err) == "ValidationException"
    assert "eventExpiryDuration" in err.value.response["Error"]["Message"]


def test_event_expiry_of_3_and_365_days_is_accepted(control):
    for days in (3, 365):
        assert control.create_memory(name=_name("Exp"), eventExpiryDuration=days)["memory"][
            "eventExpiryDuration"] == days


def test_invalid_memory_name_is_rejected_naming_the_field(unchecked_control):
    with pytest.raises(ClientError) as err:
        unchecked_control.create_memory(name="has-dashes", eventExpiryDuration=30)
    assert _code(err) == "ValidationException"
    assert "name" in err.value.response["Error"]["Message"]


def test_unknown_namespace_variable_is_rejected(control):
    with pytest.raises(ClientError) as err:
        control.create_memory(name=_name("Ns"), eventExpiryDuration=30, memoryStrategies=[
            {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["users/{userId}/facts"]}}])
    assert _code(err) == "ValidationException"
    assert "{userId}" in err.value.response["Error"]["Message"]


def test_duplicate_strategy_names_are_rejected(control):
    with pytest.raises(ClientError) as err:
        control.create_memory(name=_name("Dup"), eventExpiryDuration=30, memoryStrategies=[
            {"semanticMemoryStrategy": {"name": "same"}}, {"summaryMemoryStrategy": {"name": "same"}}])
    assert _code(err) == "ValidationException"


def test_strategy_without_namespaces_gets_the_default_template(control):
    created = control.create_memory(name=_name("Def"), eventExpiryDuration=30,
                                    memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
    assert created["strategies"][0]["namespaceTemplates"] == ["/strategies/{memoryStrategyId}/actors/{actorId}/"]


def test_unknown_memory_is_resource_not_found_on_both_planes(control, data):
    with pytest.raises(ClientError) as err:
        control.get_memory(memoryId="Nothing-abcdeFGH12")
    assert _code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        control.delete_memory(memoryId="Nothing-abcdeFGH12")
    assert _code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        data.list_events(memoryId="Nothing-abcdeFGH12", actorId="a", sessionId="s")
    assert _code(err) == "ResourceNotFoundException"


def test_data_plane_refuses_a_memory_that_is_not_active_yet(control, data):
    created, since = _young(control, "Young")
    error = _error_of(lambda: _say(data, created["id"], "a", "s", "USER", "too early"))
    assert _still_creating(since) and error["Code"] == "ValidationException"
    assert "ACTIVE" in error["Message"]


def test_update_while_creating_is_a_conflict(control):
    created, since = _young(control, "Busy")
    error = _error_of(lambda: control.update_memory(memoryId=created["id"], description="now"))
    assert _still_creating(since) and error["Code"] == "ConflictException"


def test_update_memory_adds_modifies_and_deletes_strategies(control):
    created = control.create_memory(name=_name("Upd"), eventExpiryDuration=30,
                                    memoryStrategies=[{"semanticMemoryStrategy": {"name": "facts"}}])["memory"]
    _active(control, created["id"])
    facts_id = created["strategies"][0]["strategyId"]
    updated = control.update_memory(memoryId=created["id"], description="updated", eventExpiryDuration=60,
                                     memoryStrategies={
                                         "addMemoryStrategies": [{"summaryMemoryStrategy": {
                                             "name": "summary", "namespaceTemplates": ["s/{actorId}/{sessionId}"]}}],
                                         "modifyMemoryStrategies": [{"memoryStrategyId": facts_id,
                                                                     "namespaceTemplates": ["f/{actorId}"]}],
                                     })["memory"]
    assert updated["description"] == "updated" and updated["eventExpiryDuration"] == 60
    by_name = {s["name"]: s for s in updated["strategies"]}
    assert by_name["facts"]["namespaceTemplates"] == ["f/{actorId}"]
    assert by_name["summary"]["type"] == "SUMMARIZATION"
    updated = control.update_memory(memoryId=created["id"], memoryStrategies={
        "deleteMemoryStrategies": [{"memoryStrategyId": facts_id}]})["memory"]
    assert [s["name"] for s in updated["strategies"]] == ["summary"]
    with pytest.raises(ClientError) as err:
        control.update_memory(memoryId=created["id"], memoryStrategies={
            "deleteMemoryStrategies": [{"memoryStrategyId": facts_id}]})
    assert _code(err) == "ValidationException"


def test_list_memories_paginates_with_next_token(control):
    for _ in range(3):
        control.create_memory(name=_name("Page"), eventExpiryDuration=30)
    first = control.list_memories(maxResults=2)
    assert len(first["memories"]) == 2 and first["nextToken"]
    second = control.list_memories(maxResults=2, nextToken=first["nextToken"])
    assert not {m["id"] for m in first["memories"]} & {m["id"] for m in second["memories"]}
    with pytest.raises(ClientError) as err:
        control.list_memories(nextToken="not-a-token")
    assert _code(err) == "ValidationException"


@pytest.mark.slow
def test_too_many_memories_is_a_service_quota_error(tmp_path):
    emu = EmulatorProcess(tmp_path, env={"EMULATOR_MAX_MEMORIES": "2"}).start()
    try:
        control = emu.client("bedrock-agentcore-control")
        control.create_memory(name="One", eventExpiryDuration=30)
        control.create_memory(name="Two", eventExpiryDuration=30)
        with pytest.raises(ClientError) as err:
            control.create_memory(name="Three", eventExpiryDuration=30)
        assert _code(err) == "ServiceQuotaExceededException"
    finally:
        emu.stop()


# -- events, sessions, actors ------------------------------------------------------------------------
def test_list_events_is_newest_first_and_paginates(data, memory):
    mid, actor, session = memory["id"], "pager", "session-1"
    base = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for i in range(5):
        _say(data, mid, actor, session, "USER", f"turn {i}", when=base + dt.timedelta(seconds=i))
    page = data.list_events(memoryId=mid, actorId=actor, sessionId=session, maxResults=2)
    texts = [e["payload"][0]["conversational"]["content"]["text"] for e in page["events"]]
    assert texts == ["turn 4", "turn 3"]
    every = data.get_paginator("list_events").paginate(
        memoryId=mid, actorId=actor, sessionId=session, PaginationConfig={"PageSize": 2}).build_full_result()
    assert [e["payload"][0]["conversational"]["content"]["text"] for e in every["events"]] == [
        f"turn {i}" for i in range(4, -1, -1)]
    bare = data.list_events(memoryId=mid, actorId=actor, sessionId=session, includePayloads=False)
    assert all(e["payload"] == [] for e in bare["events"])


def test_list_events_filters_by_branch_and_metadata(data, memory):
    mid, actor, session = memory["id"], "brancher", "session-b"
    base = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
    first = _say(data, mid, actor, session, "USER", "main 1", when=base,
                 metadata={"topic": {"stringValue": "weather"}})
    _say(data, mid, actor, session, "USER", "main 2", when=base + dt.timedelta(seconds=2))
    _say(data, mid, actor, session, "USER", "alt 1", when=base + dt.timedelta(seconds=1),
         branch={"name": "alt", "rootEventId": first["eventId"]})

    def texts(**flt):
        events = data.list_events(memoryId=mid, actorId=actor, sessionId=session, filter=flt)["events"]
        return [e["payload"][0]["conversational"]["content"]["text"] for e in events]

    assert texts(branch={"name": "alt"}) == ["alt 1"]
    assert texts(branch={"name": "alt", "includeParentBranches": True}) == ["alt 1", "main 1"]
    assert texts(eventMetadata=[{"left": {"metadataKey": "topic"}, "operator": "EQUALS_TO",
                                 "right": {"metadataValue": {"stringValue": "weather"}}}]) == ["main 1"]
    assert texts(eventMetadata=[{"left": {"metadataKey": "topic"}, "operator": "NOT_EXISTS"}]) == [
        "main 2", "alt 1"]
    with pytest.raises(ClientError) as err:
        _say(data, mid, actor, session, "USER", "x", branch={"name": "b2", "rootEventId": "123#abcdef"})
    assert _code(err) == "ResourceNotFoundException"


def test_get_and_delete_event(data, memory):
    mid = memory["id"]
    event = _say(data, mid, "getter", "s", "ASSISTANT", "hello")
    got = data.get_event(memoryId=mid, actorId="getter", sessionId="s", eventId=event["eventId"])["event"]
    assert got["payload"] == event["payload"] and got["eventId"] == event["eventId"]
    assert data.delete_event(memoryId=mid, actorId="getter", sessionId="s", eventId=event["eventId"])[
        "eventId"] == event["eventId"]
    for call in (data.get_event, data.delete_event):
        with pytest.raises(ClientError) as err:
            call(memoryId=mid, actorId="getter", sessionId="s", eventId=event["eventId"])
        assert _code(err) == "ResourceNotFoundException"


def test_create_event_is_idempotent_by_client_token(data, memory):
    token = str(uuid.uuid4())
    one = _say(data, memory["id"], "idem", "s", "USER", "once", clientToken=token)
    two = _say(data, memory["id"], "idem", "s", "USER", "once", clientToken=token)
    assert one["eventId"] == two["eventId"]
    assert len(data.list_events(memoryId=memory["id"], actorId="idem", sessionId="s")["events"]) == 1


def test_create_event_accepts_the_memory_arn(data, memory):
    event = _say(data, memory["arn"], "arn-actor", "s", "USER", "by arn")
    assert event["memoryId"] in (memory["id"], memory["arn"])


def test_event_ids_have_the_aws_format(data, memory):
    event = _say(data, memory["id"], "format", "s", "USER", "x")
    left, right = event["eventId"].split("#")
    assert left.isdigit() and int(right, 16) >= 0


def test_sessions_and_actors_are_listed_and_paginate(data, memory):
    mid = memory["id"]
    for session in ("alpha", "beta", "gamma"):
        _say(data, mid, "lister", session, "USER", f"in {session}")
    _say(data, mid, "other-lister", "delta", "USER", "x")
    sessions = data.get_paginator("list_sessions").paginate(
        memoryId=mid, actorId="lister", PaginationConfig={"PageSize": 2}).build_full_result()["sessionSummaries"]
    assert sorted(s["sessionId"] for s in sessions) == ["alpha", "beta", "gamma"]
    assert all(s["actorId"] == "lister" for s in sessions)
    actors = data.get_paginator("list_actors").paginate(
        memoryId=mid, PaginationConfig={"PageSize": 1}).build_full_result()["actorSummaries"]
    assert {"lister", "other-lister"} <= {a["actorId"] for a in actors}


def test_concurrent_event_writes_are_all_kept(data, memory):
    errors = []

    def write(i):
        try:
            _say(data, memory["id"], "crowd", "s", "USER", f"message {i}")
        except Exception as exc:  # collected and asserted below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    events = data.list_events(memoryId=memory["id"], actorId="crowd", sessionId="s", maxResults=100)["events"]
    assert len(events) == 16


# -- long-term memory ---------------------------------------------------------------------------------
CONVERSATION = [
    ("USER", "Hi! I work at Acme on a Flask service. Our database is Postgres 16."),
    ("ASSISTANT", "Nice to meet you. What can I help with?"),
    ("USER", "I prefer Python with type hints. Never use tabs for indentation."),
    ("ASSISTANT", "I created app.py with a health endpoint."),
]


def _converse(data, mid, actor, session, turns=CONVERSATION):
    for role, text in turns:
        _say(data, mid, actor, session, role, text)


def test_strategies_extract_facts_preferences_and_a_summary_into_their_namespaces(data, memory):
    mid, actor, session = memory["id"], "dana", "session-x"
    _converse(data, mid, actor, session)
    facts = _wait(lambda: _records(data, mid, f"coding/user/{actor}/facts"), lambda r: len(r) >= 3, what="facts")
    texts = " | ".join(r["content"]["text"] for r in facts)
    assert "The user works at Acme on a Flask service." in texts
    assert "Postgres 16" in texts
    assert "The assistant created app.py" in texts
    prefs = _wait(lambda: _records(data, mid, f"coding/user/{actor}/preferences"), lambda r: len(r) >= 2,
                  what="preferences")
    ptexts = " | ".join(r["content"]["text"] for r in prefs)
    assert "prefers Python with type hints" in ptexts and "never use tabs" in ptexts
    assert "type hints" not in texts  # a preference is not also filed as a fact
    summary = _wait(lambda: _records(data, mid, f"coding/user/{actor}/{session}"), lambda r: len(r) == 1,
                    what="summary")
    assert "Flask service" in summary[0]["content"]["text"]
    assert summary[0]["memoryStrategyId"] == _strategy_id(memory, "SUMMARIZATION")


def test_facts_are_deduplicated_across_sessions(data, memory):
    mid, actor = memory["id"], "repeat"
    _say(data, mid, actor, "one", "USER", "I live in Lisbon.")
    _wait(lambda: _records(data, mid, f"coding/user/{actor}/facts"), lambda r: len(r) == 1, what="fact")
    _say(data, mid, actor, "two", "USER", "I live in Lisbon!")
    _wait(lambda: _records(data, mid, f"coding/user/{actor}/two"), lambda r: len(r) == 1, what="2nd summary")
    assert [r["content"]["text"] for r in _records(data, mid, f"coding/user/{actor}/facts")] == [
        "The user lives in Lisbon."]


def test_summary_is_one_record_per_session_that_grows(data, memory):
    mid, actor, session = memory["id"], "grower", "long-session"
    namespace = f"coding/user/{actor}/{session}"
    _say(data, mid, actor, session, "USER", "Set up the CI pipeline.")
    first = _wait(lambda: _records(data, mid, namespace), lambda r: len(r) == 1, what="summary")[0]
    _say(data, mid, actor, session, "USER", "Now add a lint step.")
    grown = _wait(lambda: _records(data, mid, namespace),
                  lambda r: len(r) == 1 and "lint" in r[0]["content"]["text"], what="grown summary")[0]
    assert grown["memoryRecordId"] == first["memoryRecordId"]
    assert "CI pipeline" in grown["content"]["text"]


def test_extraction_mode_skip_extracts_nothing(data, memory):
    mid, actor = memory["id"], "skipper"
    _say(data, mid, actor, "s", "USER", "I work at Initech.", extractionMode="SKIP")
    # A positive control in the same session, written after the skipped event: once its fact is there,
    # extraction has run past the skipped event, so its absence is not merely extraction being slow.
    _say(data, mid, actor, "s", "USER", "I live in Lisbon.")
    facts = _wait(lambda: _records(data, mid, f"coding/user/{actor}/facts"), lambda r: len(r) >= 1, what="control")
    assert [r["content"]["text"] for r in facts] == ["The user lives in Lisbon."]


def test_namespace_templates_resolve_actor_session_and_strategy_ids(control, data):
    created = control.create_memory(name=_name("Tpl"), eventExpiryDuration=30, memoryStrategies=[
        {"summaryMemoryStrategy": {"name": "sum",
                                   "namespaceTemplates": ["/s/{memoryStrategyId}/a/{actorId}/x/{sessionId}"]}}])
    mem = _active(control, created["memory"]["id"])
    sid = mem["strategies"][0]["strategyId"]
    _say(data, mem["id"], "ann", "sess-9", "USER", "Write the release notes.")
    namespace = f"/s/{sid}/a/ann/x/sess-9"
    _wait(lambda: _records(data, mem["id"], namespace), lambda r: len(r) == 1, what="summary")


def test_records_are_read_by_exact_namespace_or_by_path_prefix(data, memory):
    mid = memory["id"]
    now = dt.datetime.now(dt.timezone.utc)
    records = [{"requestIdentifier": f"r{i}", "namespaces": [ns], "content": {"text": f"note {i}"}, "timestamp": now}
               for i, ns in enumerate(["paths/a", "paths/a/b", "paths/ab", "paths/c"])]
    data.batch_create_memory_records(memoryId=mid, records=records)
    assert [r["content"]["text"] for r in _records(data, mid, "paths/a")] == ["note 0"]
    under_a = data.list_memory_records(memoryId=mid, namespacePath="paths/a")["memoryRecordSummaries"]
    assert sorted(r["content"]["text"] for r in under_a) == ["note 0", "note 1"]
    under_root = data.list_memory_records(memoryId=mid, namespacePath="paths/")["memoryRecordSummaries"]
    assert len(under_root) == 4
    with pytest.raises(ClientError) as err:
        data.list_memory_records(memoryId=mid)
    assert _code(err) == "ValidationException" and "namespace" in err.value.response["Error"]["Message"]


def test_retrieval_ranks_by_similarity_and_honours_top_k(data, memory):
    mid, namespace = memory["id"], "ranking/user"
    texts = ["The user deploys containers to Amazon ECS.", "The user's favourite food is ramen.",
             "The user writes backend code in Go.", "The user's cat is called Miso."]
    now = dt.datetime.now(dt.timezone.utc)
    data.batch_create_memory_records(memoryId=mid, records=[
        {"requestIdentifier": f"r{i}", "namespaces": [namespace], "content": {"text": t}, "timestamp": now}
        for i, t in enumerate(texts)])
    hits = data.retrieve_memory_records(memoryId=mid, namespace=namespace, searchCriteria={
        "searchQuery": "Which programming language does the user code in?", "topK": 2})["memoryRecordSummaries"]
    assert len(hits) == 2
    assert hits[0]["content"]["text"] == "The user writes backend code in Go."
    assert hits[0]["score"] >= hits[1]["score"]
    pet = data.retrieve_memory_records(memoryId=mid, namespace=namespace, searchCriteria={
        "searchQuery": "what is the name of the user's pet?", "topK": 1})["memoryRecordSummaries"]
    assert pet[0]["content"]["text"] == "The user's cat is called Miso."
    every = data.get_paginator("retrieve_memory_records").paginate(
        memoryId=mid, namespace=namespace, searchCriteria={"searchQuery": "user", "topK": 4},
        PaginationConfig={"PageSize": 3}).build_full_result()["memoryRecordSummaries"]
    assert len(every) <= 4
    scores = [h["score"] for h in every]
    assert scores == sorted(scores, reverse=True)


def test_retrieval_leaves_out_records_below_the_minimum_score(data, memory):
    mid, namespace = memory["id"], "minscore/user"
    data.batch_create_memory_records(memoryId=mid, records=[{
        "requestIdentifier": "r", "namespaces": [namespace],
        "content": {"text": "The user deploys containers to Amazon ECS."},
        "timestamp": dt.datetime.now(dt.timezone.utc)}])
    # About -0.1 cosine similarity: unrelated, so nothing comes back however large topK is.
    unrelated = data.retrieve_memory_records(memoryId=mid, namespace=namespace, searchCriteria={
        "searchQuery": "zebra stripes pattern biology", "topK": 5})["memoryRecordSummaries"]
    assert unrelated == []
    related = data.retrieve_memory_records(memoryId=mid, namespace=namespace, searchCriteria={
        "searchQuery": "where does the user run containers?", "topK": 5})["memoryRecordSummaries"]
    assert len(related) == 1 and related[0]["score"] > 0.3


def test_record_get_delete_and_batch_operations(data, memory):
    mid = memory["id"]
    now = dt.datetime.now(dt.timezone.utc)
    made = data.batch_create_memory_records(memoryId=mid, records=[
        {"requestIdentifier": "ok", "namespaces": ["batch/ns"], "content": {"text": "kept"}, "timestamp": now},
        {"requestIdentifier": "bad", "namespaces": [], "content": {"text": "no namespace"}, "timestamp": now}])
    assert [r["requestIdentifier"] for r in made["successfulRecords"]] == ["ok"]
    assert [r["requestIdentifier"] for r in made["failedRecords"]] == ["bad"]
    rid = made["successfulRecords"][0]["memoryRecordId"]
    assert rid.startswith("mem-") and 40 <= len(rid) <= 50
    assert data.get_memory_record(memoryId=mid, memoryRecordId=rid)["memoryRecord"]["content"]["text"] == "kept"
    with pytest.raises(ClientError) as err:
        data.get_memory_record(memoryId=mid, memoryRecordId=rid, namespace="other/ns")
    assert _code(err) == "ResourceNotFoundException"
    data.batch_update_memory_records(memoryId=mid, records=[
        {"memoryRecordId": rid, "timestamp": now, "content": {"text": "changed"}}])
    assert data.get_memory_record(memoryId=mid, memoryRecordId=rid)["memoryRecord"]["content"]["text"] == "changed"
    data.delete_memory_record(memoryId=mid, memoryRecordId=rid)
    with pytest.raises(ClientError) as err:
        data.delete_memory_record(memoryId=mid, memoryRecordId=rid)
    assert _code(err) == "ResourceNotFoundException"
    gone = data.batch_delete_memory_records(memoryId=mid, records=[{"memoryRecordId": rid}])
    assert gone["successfulRecords"] == [] and gone["failedRecords"][0]["errorCode"] == 404


# -- persistence ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_restart_keeps_every_memory_event_and_record(tmp_path):
    emu = EmulatorProcess(tmp_path, env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    try:
        control, data = emu.client("bedrock-agentcore-control"), emu.client("bedrock-agentcore")
        mem = _active(control, control.create_memory(name="Durable", eventExpiryDuration=30,
                                                     memoryStrategies=SEED_STRATEGIES)["memory"]["id"])
        _converse(data, mem["id"], "dana", "s1")
        facts = _wait(lambda: _records(data, mem["id"], "coding/user/dana/facts"), lambda r: len(r) >= 3)
        events = data.list_events(memoryId=mem["id"], actorId="dana", sessionId="s1")["events"]
    finally:
        assert emu.stop() == 0
    emu = EmulatorProcess(tmp_path).start()
    try:
        control, data = emu.client("bedrock-agentcore-control"), emu.client("bedrock-agentcore")
        again = control.get_memory(memoryId=mem["id"])["memory"]
        assert again["status"] == "ACTIVE" and again["strategies"] == mem["strategies"]
        assert data.list_events(memoryId=mem["id"], actorId="dana", sessionId="s1")["events"] == events
        assert _records(data, mem["id"], "coding/user/dana/facts") == facts
        hits = data.retrieve_memory_records(memoryId=mem["id"], namespace="coding/user/dana/facts",
                                            searchCriteria={"searchQuery": "database"})["memoryRecordSummaries"]
        assert "Postgres" in hits[0]["content"]["text"]
    finally:
        emu.stop()


@pytest.mark.slow
def test_extraction_pending_at_shutdown_runs_after_a_restart(tmp_path):
    emu = EmulatorProcess(tmp_path, env={"EMULATOR_EXTRACTION_DELAY": "3"}).start()
    try:
        control, data = emu.client("bedrock-agentcore-control"), emu.client("bedrock-agentcore")
        mem = _active(control, control.create_memory(name="Pending", eventExpiryDuration=30,
                                                     memoryStrategies=SEED_STRATEGIES)["memory"]["id"])
        _say(data, mem["id"], "pat", "s1", "USER", "I maintain the billing service.")
    finally:
        emu.stop()
    emu = EmulatorProcess(tmp_path, env={"EMULATOR_EXTRACTION_DELAY": "0.3"}).start()
    try:
        data = emu.client("bedrock-agentcore")
        # The job kept its due time from the first run (3 s after the event), stopped before it fell due.
        facts = _wait(lambda: _records(data, mem["id"], "coding/user/pat/facts"), lambda r: len(r) == 1, timeout=20)
        assert facts[0]["content"]["text"] == "The user maintains the billing service."
    finally:
        emu.stop()


def test_memories_belong_to_their_region(emulator, memory):
    west = emulator.client("bedrock-agentcore-control", region="us-west-2")
    with pytest.raises(ClientError) as err:
        west.get_memory(memoryId=memory["id"])
    assert _code(err) == "ResourceNotFoundException"
    assert memory["id"] not in [m["id"] for m in west.list_memories()["memories"]]


def test_an_event_without_a_session_is_rejected_naming_the_field(data, memory):
    with pytest.raises(ClientError) as err:
        data.create_event(memoryId=memory["id"], actorId="a", eventTimestamp=dt.datetime.now(dt.timezone.utc),
                          payload=[{"conversational": {"content": {"text": "x"}, "role": "USER"}}])
    assert _code(err) == "ValidationException" and "sessionId" in err.value.response["Error"]["Message"]


def _forged(doc) -> str:
    import base64
    import json

    return base64.b64encode(json.dumps(doc).encode()).decode()


def _scoped(doc, scope: str):
    """The doc with the placeholder scope "ListMemories" replaced by the scope a ListMemories call has."""
    return {**doc, "s": scope} if isinstance(doc, dict) and doc.get("s") == "ListMemories" else doc


@pytest.mark.parametrize("doc", [{"s": "ListMemories"}, {"s": "ListMemories", "o": -5},
                                 {"s": "ListMemories", "o": "3"}, {"s": "ListMemories", "o": 1.5},
                                 {"s": "ListMemories", "o": True}, {"s": "ListActors", "o": 0}, ["ListMemories"]])
def test_a_malformed_list_memories_token_is_a_validation_error_naming_it(control, doc):
    from emulator.core import paginator

    doc = _scoped(doc, paginator.scope("ListMemories", {}))
    with pytest.raises(ClientError) as err:
        control.list_memories(nextToken=_forged(doc))
    assert _code(err) == "ValidationException"
    message = err.value.response["Error"]["Message"]
    assert "nextToken" in message
    if isinstance(doc, dict) and doc["s"] != "ListActors":
        assert "malformed" in message, message  # refused for its position, not as another request's


def test_malformed_data_plane_tokens_are_validation_errors_not_500s(data, memory):
    from emulator.core import paginator

    actor, session = "token-actor", "token-session"
    _say(data, memory["id"], actor, session, "USER", "hello")
    events_scope = paginator.scope("ListEvents", {"memoryId": memory["id"], "actorId": actor, "sessionId": session})
    sessions_scope = paginator.scope("ListSessions", {"memoryId": memory["id"], "actorId": actor})
    actors_scope = paginator.scope("ListActors", {"memoryId": memory["id"]})
    calls = [
        lambda t: data.list_events(memoryId=memory["id"], actorId=actor, sessionId=session, nextToken=t),
        lambda t: data.list_sessions(memoryId=memory["id"], actorId=actor, nextToken=t),
        lambda t: data.list_actors(memoryId=memory["id"], nextToken=t),
    ]
    forged = [
        [{"s": events_scope}, {"s": events_scope, "t": "x", "q": 1}, {"s": events_scope, "t": 1.0, "q": -1}],
        [{"s": sessions_scope}, {"s": sessions_scope, "o": -1}],
        [{"s": actors_scope, "o": "0"}],
    ]
    for call, docs in zip(calls, forged):
        for doc in docs:
            with pytest.raises(ClientError) as err:
                call(_forged(doc))
            assert _code(err) == "ValidationException", doc
            assert "malformed" in err.value.response["Error"]["Message"], doc
    with pytest.raises(ClientError) as err:
        calls[2](_forged({"s": paginator.scope("ListMemories", {}), "o": 0}))
    assert _code(err) == "ValidationException" and "different request" in err.value.response["Error"]["Message"]


# -- what AWS's clients send (issue 14) -------------------------------------------------------------------
def _strands(role: str, blocks: list, index: int, redacted: list | None = None) -> str:
    """A message exactly as Strands' AgentCore session manager stores it: json.dumps(SessionMessage.to_dict())
    (bedrock-agentcore-sdk-python, memory/integrations/strands/bedrock_converter.py, message_to_payload)."""
    import json

    return json.dumps({"message": {"role": role, "content": blocks}, "message_id": index,
                       "redact_message": None if redacted is None else {"role": role, "content": redacted},
                       "created_at": "2026-12-02T08:00:00.123456+00:00",
                       "updated_at": "2026-12-02T08:00:00.123456+00:00"})


def test_strands_session_messages_are_extracted_as_the_text_they_carry(data, memory):
    mid, actor, session = memory["id"], "strands-user", "strands-session"
    turns = [
        ("USER", _strands("user", [{"text": "I work at Globex on a Rust CLI."}], 0)),
        ("ASSISTANT", _strands("assistant", [{"text": "Let me look."}, {"toolUse": {
            "toolUseId": "t1", "name": "shell", "input": {"command": "ls"}}}], 1)),
        # Strands returns tool results in user-role messages: they are not what the user said.
        ("USER", _strands("user", [{"toolResult": {"toolUseId": "t1", "status": "success",
                                                   "content": [{"text": "My notes mention the Acme deal."}]}}], 2)),
        ("USER", _strands("user", [{"text": "My password is hunter2."}], 3,
                          redacted=[{"text": "My shell is zsh."}])),
        ("ASSISTANT", _strands("assistant", [{"text": "I created Cargo.toml for the CLI."}], 4)),
    ]
    for role, text in turns:
        _say(data, mid, actor, session, role, text)
    facts = _wait(lambda: _records(data, mid, f"coding/user/{actor}/facts"), lambda r: len(r) >= 3, what="facts")
    texts = sorted(r["content"]["text"] for r in facts)
    assert "The user works at Globex on a Rust CLI." in texts
    assert "The user's shell is zsh." in texts  # the redacted message stands for the original
    assert "The assistant created Cargo.toml for the CLI." in texts
    summary = _wait(lambda: _records(data, mid, f"coding/user/{actor}/{session}"),
                    lambda r: len(r) == 1 and "Cargo.toml" in r[0]["content"]["text"], what="summary")[0]
    everything = " ".join(texts) + summary["content"]["text"]
    assert "Globex" in summary["content"]["text"]
    for leaked in ('"message_id"', "{", "hunter2", "Acme deal", "toolUse"):
        assert leaked not in everything


def test_event_timestamps_are_kept_to_the_millisecond_and_every_event_id_fits_the_model(data, memory):
    import re

    mid, actor, session = memory["id"], "clock", "ms"
    pattern = data.meta.service_model.shape_for("EventId").metadata["pattern"]
    base = dt.datetime(2026, 12, 2, 8, 0, 0, 123000, tzinfo=dt.timezone.utc)
    # Two events in one millisecond, microseconds apart and written out of order: stored as the same millisecond,
    # they keep the order they were written in.
    late = _say(data, mid, actor, session, "USER", "second, written first", when=base + dt.timedelta(microseconds=900))
    early = _say(data, mid, actor, session, "USER", "first, written second", when=base + dt.timedelta(microseconds=5))
    assert late["eventTimestamp"] == early["eventTimestamp"] == base
    assert late["eventId"].split("#")[0] == early["eventId"].split("#")[0] == f"{1796198400123:019d}"
    listed = data.list_events(memoryId=mid, actorId=actor, sessionId=session)["events"]
    assert [e["eventId"] for e in listed] == [early["eventId"], late["eventId"]]  # newest first
    got = data.get_event(memoryId=mid, actorId=actor, sessionId=session, eventId=late["eventId"])["event"]
    assert got["eventTimestamp"] == base
    for when in (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)):
        event = _say(data, mid, actor, "edges", "USER", "edge", when=when)
        assert re.fullmatch(pattern, event["eventId"]), event["eventId"]
        data.get_event(memoryId=mid, actorId=actor, sessionId="edges", eventId=event["eventId"])
    before_1970 = _error_of(lambda: _say(data, mid, actor, "edges", "USER", "x",
                                         when=dt.datetime(1969, 12, 31, 23, 59, tzinfo=dt.timezone.utc)))
    assert before_1970["Code"] == "ValidationException" and "eventTimestamp" in before_1970["Message"]


EPISODIC = {"episodicMemoryStrategy": {
    "name": "episodes", "namespaceTemplates": ["/strategies/{memoryStrategyId}/actors/{actorId}/sessions/{sessionId}/"],
    "reflectionConfiguration": {"namespaceTemplates": ["/strategies/{memoryStrategyId}/actors/{actorId}/"]}}}
CUSTOM_EPISODIC = {"customMemoryStrategy": {
    "name": "custom_episodes", "namespaceTemplates": ["custom/{actorId}/{sessionId}/"],
    "configuration": {"episodicOverride": {
        "extraction": {"appendToPrompt": "Focus on deployments.", "modelId": "anthropic.claude-sonnet-4"},
        "reflection": {"appendToPrompt": "Name the lesson.", "modelId": "anthropic.claude-sonnet-4",
                       "namespaceTemplates": ["custom/{actorId}/"]}}}}}


def test_episodic_strategies_write_an_episode_per_session_and_reflections_across_them(control, data):
    memory = _active(control, control.create_memory(name=_name("Episodic"), eventExpiryDuration=30,
                                                     memoryStrategies=[EPISODIC, CUSTOM_EPISODIC])["memory"]["id"])
    assert_output_shape(control, "GetMemory", {"memory": memory})
    mid, actor = memory["id"], "ep"
    built_in = _strategy_id(memory, "EPISODIC")
    custom = _strategy_id(memory, "CUSTOM")
    assert next(s for s in memory["strategies"] if s["type"] == "EPISODIC")["configuration"] == {"reflection": {
        "episodicReflectionConfiguration": {"namespaces": [f"/strategies/{{memoryStrategyId}}/actors/{{actorId}}/"],
                                            "namespaceTemplates": ["/strategies/{memoryStrategyId}/actors/{actorId}/"]}}}
    _converse(data, mid, actor, "one", [("USER", "Deploy the API to staging."),
                                        ("TOOL", "Error: the image tag was not found."),
                                        ("ASSISTANT", "The deploy failed because the image tag was missing.")])
    _converse(data, mid, actor, "two", [("USER", "Deploy the worker to staging."),
                                        ("ASSISTANT", "I deployed the worker; all checks pass.")])
    reflections_ns = f"/strategies/{built_in}/actors/{actor}/"
    reflection = _wait(lambda: [r for r in _records(data, mid, reflections_ns)],
                       lambda r: len(r) == 1 and "Across 2 episodes" in r[0]["content"]["text"], what="reflection")[0]
    text = reflection["content"]["text"]
    assert "1 met a problem" in text and "deploy (2)" in text and "image tag" in text
    one = _records(data, mid, f"/strategies/{built_in}/actors/{actor}/sessions/one/")
    assert len(one) == 1 and one[0]["memoryStrategyId"] == built_in
    episode = one[0]["content"]["text"]
    for tag in ("situation", "intent", "assessment", "justification", "reflection"):
        assert f"<{tag}>" in episode
    assert "Deploy the API to staging." in episode and "ended on a problem" in episode
    # The custom strategy's episodes and reflections go to its own namespaces.
    _wait(lambda: _records(data, mid, f"custom/{actor}/"),
          lambda r: len(r) == 1 and "Across 2 episodes" in r[0]["content"]["text"], what="custom reflection")
    assert len(_records(data, mid, f"custom/{actor}/two/")) == 1
    assert next(s for s in memory["strategies"] if s["strategyId"] == custom)["configuration"]["type"] == \
        "EPISODIC_OVERRIDE"


def test_strategies_the_emulator_cannot_run_are_refused_naming_what_is_missing(control):
    no_reflections = {"episodicMemoryStrategy": {"name": "episodes"}}
    self_managed = {"customMemoryStrategy": {"name": "mine", "configuration": {"selfManagedConfiguration": {
        "invocationConfiguration": {"topicArn": "arn:aws:sns:us-east-1:123456789012:jobs",
                                    "payloadDeliveryBucketName": "payloads"}}}}}
    for strategy, named in ((no_reflections, "reflectionConfiguration"), (self_managed, "selfManagedConfiguration")):
        err = _error_of(lambda: control.create_memory(name=_name("Refused"), eventExpiryDuration=30,
                                                      memoryStrategies=[strategy]))
        assert err["Code"] == "ValidationException" and named in err["Message"], err


def test_an_extraction_job_that_is_not_failed_cannot_be_started(data, memory):
    listed = data.list_memory_extraction_jobs(memoryId=memory["id"])
    assert_output_shape(data, "ListMemoryExtractionJobs", listed)
    err = _error_of(lambda: data.start_memory_extraction_job(memoryId=memory["id"],
                                                             extractionJob={"jobId": "job-none"}))
    assert err["Code"] == "ResourceNotFoundException" and "job-none" in err["Message"]
