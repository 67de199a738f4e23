"""What 06_inspect_memory must show: the session's turns, and real records in all three namespaces, and a ranked retrieval."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("06_inspect_memory")
def shows_the_turns_of_05_and_its_own_conversation(workshop, executed):
    turns = cell_text(executed, "memory.events_df(settings, ACTOR_ID, SESSION_ID)")
    assert "Create a file hello.py" in turns  # notebook 05's first turn, reused
    assert "USER" in turns and "ASSISTANT" in turns


@check("06_inspect_memory")
def every_namespace_has_extracted_records(workshop, executed):
    facts = cell_text(executed, 'records_df(settings, ACTOR_ID, "facts")')
    preferences = cell_text(executed, 'records_df(settings, ACTOR_ID, "preferences")')
    summaries = cell_text(executed, 'records_df(settings, ACTOR_ID, "summaries"')
    assert "coding/user/workshop-user/facts" in facts and "The user" in facts
    assert "coding/user/workshop-user/preferences" in preferences and "prefers" in preferences
    assert "coding/user/workshop-user/workshop-session-0001-claude-code-agent" in summaries


@check("06_inspect_memory")
def retrieval_ranks_the_matching_preference_first(workshop, executed):
    ranked = recorded_value(executed, "ranked_preferences")
    assert "pytest" in ranked[0]["text"]  # the first row answers "Which test framework does the user like?"
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert "score" in cell_text(executed, "query=QUERY)")  # the reader sees the scores
