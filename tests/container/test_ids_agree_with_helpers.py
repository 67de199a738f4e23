"""The agent and helpers.outputs check actor and session ids alike: helpers cannot import container/, so each
keeps a copy of the two patterns, and this test is what keeps the copies one rule."""
from __future__ import annotations

from agent.request import ACTOR_ID_PATTERN, SESSION_ID_PATTERN

from helpers import outputs


def test_helpers_accept_exactly_the_actor_and_session_ids_the_agent_accepts():
    assert outputs._IDS["actor_id"].pattern == ACTOR_ID_PATTERN.pattern
    assert outputs._IDS["session_id"].pattern == SESSION_ID_PATTERN.pattern
