"""What 06_inspect_memory must show: the session's turns, and real records in all three namespaces, and a ranked retrieval."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("06_inspect_memory")
def the_sample_conversation_has_a_session_of_its_own(workshop, executed):
    sample = cell_text(executed, "memory.events_df(settings, ACTOR_ID, SAMPLE_SESSION_ID)")
    assert "I prefer pytest over unittest" in sample and "Create a file hello.py" not in sample
    turns = cell_text(executed, "memory.events_df(settings, ACTOR_ID, SESSION_ID)")
    assert "Create a file hello.py" in turns  # notebook 05's first turn
    assert "USER" in turns and "ASSISTANT" in turns and "I prefer pytest" not in turns


@check("06_inspect_memory")
def the_sessions_table_says_what_each_count_counts(workshop, executed):
    sessions = cell_text(executed, "memory.sessions_df(settings, ACTOR_ID)")
    assert "events" in sessions and "messages" in sessions


@check("06_inspect_memory")
def every_namespace_has_extracted_records(workshop, executed):
    facts = cell_text(executed, 'records_df(settings, ACTOR_ID, "facts")')
    preferences = cell_text(executed, 'records_df(settings, ACTOR_ID, "preferences")')
    summaries = cell_text(executed, 'records_df(settings, ACTOR_ID, "summaries"')
    assert "coding/user/workshop-user/facts" in facts and "The user" in facts
    assert "coding/user/workshop-user/preferences" in preferences and "prefers" in preferences
    assert "coding/user/workshop-user/workshop-memory-sample-0001-claude-code" in summaries


@check("06_inspect_memory")
def retrieval_ranks_the_matching_preference_first(workshop, executed):
    ranked = recorded_value(executed, "ranked_preferences")
    assert "pytest" in ranked[0]["text"]  # the first row answers "Which test framework does the user like?"
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert "score" in cell_text(executed, "query=QUERY)")  # the reader sees the scores
