"""What 05_invoke_agent must show: a file made, kept with the first turn and the Claude conversation in its
session, visible inside the microVM, unseen by another actor."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("05_invoke_agent")
def the_agent_creates_the_file(workshop, executed):
    shown = cell_text(executed, "first = invoke.invoke(settings, FIRST_PROMPT")
    assert "succeeded" in shown or "'success': True" in shown
    assert "hello.py" in shown


@check("05_invoke_agent")
def the_same_session_gets_its_file_and_first_turn_back(workshop, executed):
    same = recorded_value(executed, "same_session")
    assert "hello.py" in same["files_restored"]
    assert same["turns_remembered"] >= 2


@check("05_invoke_agent")
def the_reclaimed_session_continues_the_same_claude_conversation(workshop, executed):
    same = recorded_value(executed, "same_session")
    assert same["same_claude_conversation"] is True
    assert same["resumed_from"] == same["claude_session_id"]
    # The stand-in quotes the earlier request from the resumed transcript it was sent.
    answer = cell_text(executed, "follow_up = invoke.invoke(")
    assert '1. "Create a file hello.py that prints hello world"' in answer


@check("05_invoke_agent")
def a_command_inside_the_session_lists_its_files_and_transcript(workshop, executed):
    same = recorded_value(executed, "same_session")
    listing = cell_text(executed, "invoke.session_files(settings, ACTOR_ID, SESSION_ID)")
    assert "hello.py" in listing and f"{same['claude_session_id']}.jsonl" in listing
    assert "[exit code 0, COMPLETED" in listing


@check("05_invoke_agent")
def a_second_actor_sees_none_of_it(workshop, executed):
    other = recorded_value(executed, "other_actor")
    assert other["actor_id"] != "workshop-user"
    assert other["files_restored"] == [] and other["turns_remembered"] == 0
