"""What 07_chat must show: a message sent through the chat's session reaches the agent, streams progress and lists files."""
from __future__ import annotations

from tests.notebooks.checks import check
from tests.support.notebooks import cell_text, recorded_value


@check("07_chat")
def the_chat_reaches_the_agent_and_lists_the_file_it_wrote(workshop, executed):
    transcript = cell_text(executed, "print(ui.session.transcript())")
    assert "user: Create a file notes.md" in transcript
    assert "agent: " in transcript
    assert "· Write notes.md" in transcript  # progress streamed while it worked, named within the workspace
    assert "file: notes.md -> s3://" in transcript


@check("07_chat")
def quit_ends_a_chat_but_not_the_one_a_person_types_into(workshop, executed):
    # Run All must leave the widget of section 1 open: /quit is shown on a conversation of its own.
    assert recorded_value(executed, "quit_closed") == [True, False]
