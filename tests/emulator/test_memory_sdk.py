"""AWS's own bedrock-agentcore SDK works against the emulator, reached only through endpoint variables."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.emulator.test_memory import _wait


@pytest.fixture
def sdk_env(emulator, monkeypatch):
    """Only what a user would set: the endpoint, a region and throwaway credentials."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE", emulator.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL", emulator.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sdk-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sdk-test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return emulator


def test_memory_client_creates_waits_writes_reads_and_retrieves(sdk_env):
    from bedrock_agentcore.memory import MemoryClient

    client = MemoryClient(region_name="us-east-1")
    started = time.monotonic()
    memory = client.create_memory_and_wait(
        name=f"Sdk_{uuid.uuid4().hex[:8]}",
        strategies=[
            {"semanticMemoryStrategy": {"name": "facts", "namespaceTemplates": ["coding/user/{actorId}/facts"]}},
            {"userPreferenceMemoryStrategy": {"name": "prefs",
                                              "namespaceTemplates": ["coding/user/{actorId}/preferences"]}},
            {"summaryMemoryStrategy": {"name": "summary",
                                       "namespaceTemplates": ["coding/user/{actorId}/{sessionId}"]}},
        ],
        event_expiry_days=30, poll_interval=1)
    assert memory["status"] == "ACTIVE"
    assert time.monotonic() - started >= 0.9  # it really waited through CREATING
    memory_id = memory["id"]
    client.create_event(memory_id=memory_id, actor_id="sam", session_id="sdk-session",
                        messages=[("I work on a Rust compiler.", "USER"), ("I created main.rs.", "ASSISTANT")])
    client.create_event(memory_id=memory_id, actor_id="sam", session_id="sdk-session",
                        messages=[("I prefer small pull requests.", "USER"), ("Noted.", "ASSISTANT")])
    turns = client.get_last_k_turns(memory_id=memory_id, actor_id="sam", session_id="sdk-session", k=5)
    texts = [m["content"]["text"] for turn in turns for m in turn]
    assert "I prefer small pull requests." in texts and "I work on a Rust compiler." in texts
    facts = _wait(lambda: client.retrieve_memories(memory_id=memory_id, namespace="coding/user/sam/facts",
                                                   query="what does the user work on?"),
                  lambda r: len(r) >= 1, what="facts through the SDK")
    assert facts[0]["content"]["text"] == "The user works on a Rust compiler."
    prefs = _wait(lambda: client.retrieve_memories(memory_id=memory_id, namespace="coding/user/sam/preferences",
                                                   query="pull requests"), lambda r: len(r) >= 1)
    assert "small pull requests" in prefs[0]["content"]["text"]


def test_memory_session_manager_adds_turns_and_lists_them(sdk_env):
    from bedrock_agentcore.memory import MemoryClient, MemorySessionManager
    from bedrock_agentcore.memory.constants import ConversationalMessage, MessageRole

    memory = MemoryClient(region_name="us-east-1").create_memory_and_wait(
        name=f"Sdk_{uuid.uuid4().hex[:8]}",
        strategies=[{"semanticMemoryStrategy": {"name": "facts",
                                                "namespaceTemplates": ["coding/user/{actorId}/facts"]}}],
        poll_interval=1)
    manager = MemorySessionManager(memory_id=memory["id"], region_name="us-east-1")
    session = manager.create_memory_session(actor_id="kim", session_id="mgr-session")
    session.add_turns(messages=[ConversationalMessage("My team ships a mobile app.", MessageRole.USER),
                                ConversationalMessage("I added a README.", MessageRole.ASSISTANT)])
    turns = session.get_last_k_turns(k=3)
    assert [m["content"]["text"] for m in turns[0]] == ["My team ships a mobile app.", "I added a README."]
    assert [s["sessionId"] for s in manager.list_actor_sessions(actor_id="kim")] == ["mgr-session"]
    assert "kim" in [a["actorId"] for a in manager.list_actors()]
    records = _wait(lambda: session.search_long_term_memories(query="mobile app", namespace="coding/user/kim/facts",
                                                              top_k=3), lambda r: len(r) >= 1)
    assert "mobile app" in records[0]["content"]["text"]
