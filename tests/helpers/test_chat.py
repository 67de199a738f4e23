"""The chat's rules, driven without a kernel: send, progress, files, stop, /quit, switching actor or session."""
from __future__ import annotations

import threading

from helpers.chat import ChatSession, chat_widget, describe_event
from helpers.errors import InvocationError


class FakeAgent:
    """Records calls and streams a few events, as the runtime does."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompt, actor_id, session_id, on_event, should_stop):
        self.calls.append((prompt, actor_id, session_id))
        on_event({"type": "tool_use", "tool": "Write", "target": "hello.py"})
        on_event({"type": "file_uploaded", "file_name": "hello.py"})
        return {"success": True, "result": f"done: {prompt}",
                "metadata": {"uploaded_files": [{"file_name": "hello.py", "s3_url": "s3://b/k/hello.py"}]}}


def test_a_message_reaches_the_agent_with_actor_and_session_and_shows_progress_and_files():
    agent = FakeAgent()
    chat = ChatSession(agent, "alice", "project-one")
    reply = chat.send("create hello.py")
    assert agent.calls == [("create hello.py", "alice", "project-one")]
    assert reply.text == "done: create hello.py"
    assert reply.progress == ["Write hello.py", "uploaded hello.py"]
    assert reply.files[0]["file_name"] == "hello.py"
    assert [t.role for t in chat.history] == ["user", "agent"]
    assert "file: hello.py -> s3://b/k/hello.py" in chat.transcript()


def test_quit_ends_the_chat_and_later_messages_are_not_sent():
    agent = FakeAgent()
    chat = ChatSession(agent, "alice", "s")
    chat.send("/quit")
    assert chat.closed
    assert chat.send("hello") is None
    assert agent.calls == []


def test_empty_messages_are_ignored():
    agent = FakeAgent()
    chat = ChatSession(agent, "alice", "s")
    assert chat.send("   ") is None and agent.calls == [] and chat.history == []


def test_switching_actor_or_session_applies_to_the_next_message():
    agent = FakeAgent()
    chat = ChatSession(agent, "alice", "s1")
    chat.switch(actor_id="bob", session_id="s2")
    chat.send("hi")
    assert agent.calls[-1][1:] == ("bob", "s2")


def test_a_failed_invocation_is_shown_as_a_message_not_raised():
    def failing(*_args):
        raise InvocationError("The runtime claude_code_agent_runtime is not READY (status CREATING).")

    chat = ChatSession(failing, "alice", "s")
    reply = chat.send("hi")
    assert reply.role == "system" and "not READY" in reply.text
    assert not chat.busy


def test_stop_is_seen_by_the_running_invocation():
    started, seen = threading.Event(), []

    def slow(prompt, actor, session, on_event, should_stop):
        started.set()
        for _ in range(200):
            if should_stop():
                seen.append("stopped")
                return {"stopped": True, "success": False}
            threading.Event().wait(0.01)
        return {"success": True, "result": "finished"}

    chat = ChatSession(slow, "alice", "s")
    worker = threading.Thread(target=chat.send, args=("long task",))
    worker.start()
    started.wait(5)
    chat.stop()
    worker.join(5)
    assert seen == ["stopped"]
    assert chat.history[-1].role == "system" and chat.history[-1].text.startswith("Stopped")


def test_progress_lines_name_the_tool_and_its_target():
    assert describe_event({"type": "tool_use", "tool": "Bash", "target": "ls -la"}) == "Bash ls -la"
    assert describe_event({"type": "output", "output": {}}) is None


def test_the_widget_renders_history_and_disables_input_after_quit():
    from helpers import config

    ui = chat_widget(config.load(target="local"), "alice", "s", invoker=FakeAgent())
    chat = ui.session
    chat.send("create hello.py")
    html = ui.children[1].value
    assert "create hello.py" in html and "hello.py" in html
    chat.send("/quit")
    box, send, _stop = ui.children[2].children
    assert box.disabled and send.disabled


def test_any_failure_of_an_invocation_shows_as_a_message():
    def broken(*_args):
        raise ConnectionError("connection refused")

    chat = ChatSession(broken, "alice", "s")
    reply = chat.send("hi")
    assert reply.role == "system" and "ConnectionError: connection refused" in reply.text and not chat.busy


def test_a_second_send_while_busy_does_not_start_a_second_invocation():
    release, started, calls = threading.Event(), threading.Event(), []

    def slow(prompt, *_args):
        calls.append(prompt)
        started.set()
        release.wait(5)
        return {"success": True, "result": "ok"}

    chat = ChatSession(slow, "alice", "s")
    worker = threading.Thread(target=chat.send, args=("first",))
    worker.start()
    started.wait(5)
    reply = chat.send("second")
    release.set()
    worker.join(5)
    assert calls == ["first"] and "still working" in reply.text


def test_progress_shows_while_the_agent_works_not_only_at_the_end():
    seen_during_call = []

    def agent(prompt, actor, session, on_event, should_stop):
        on_event({"type": "tool_use", "tool": "Write", "target": "notes.md"})
        seen_during_call.append([(t.role, list(t.progress)) for t in chat.history])
        return {"success": True, "result": "done"}

    chat = ChatSession(agent, "alice", "s")
    chat.send("write notes")
    assert seen_during_call == [[("user", []), ("agent", ["Write notes.md"])]]
    assert [t.role for t in chat.history] == ["user", "agent"] and chat.history[-1].text == "done"


def test_after_a_failure_the_last_redraw_sees_the_chat_idle():
    def failing(*_args):
        raise InvocationError("boom")

    chat = ChatSession(failing, "alice", "s")
    states = []
    chat.listeners.append(lambda: states.append(chat.busy))
    chat.send("hi")
    assert states[-1] is False


# -- what a person sees (issue 12) ---------------------------------------------------------------

def _local_settings():
    from helpers import config

    return config.load(target="local")


class AnsweringAgent:
    """Streams the preface and the answer as text events, as Claude Code does, then returns the answer."""

    def __init__(self, answer: str):
        self.answer = answer

    def __call__(self, prompt, actor_id, session_id, on_event, should_stop):
        on_event({"type": "text", "text": "Listing the workspace."})
        on_event({"type": "tool_use", "tool": "Bash", "target": "ls -la"})
        on_event({"type": "text", "text": self.answer})
        return {"success": True, "result": self.answer, "metadata": {}}


LISTING = "Bash ls -la:\n```\ntotal 8\n-rw-r--r-- 1 u u 21 hello.py\n-rw-r--r-- 1 u u 9 notes.md\n```"


def test_step_lines_do_not_repeat_the_answer():
    reply = ChatSession(AnsweringAgent(LISTING), "alice", "s").send("What files are in the workspace?")
    assert reply.progress == ["Listing the workspace.", "Bash ls -la"]
    assert reply.text == LISTING


def test_a_multi_line_text_event_is_one_step_line_naming_how_many_lines_follow():
    assert describe_event({"type": "text", "text": "first\nsecond\n\nthird"}) == "first (+2 more lines)"
    assert describe_event({"type": "text", "text": "only"}) == "only"


def test_the_memory_step_counts_earlier_messages_not_turns():
    line = describe_event({"type": "memory", "turns": 6, "facts": 2})
    assert line == "memory: 6 earlier message(s), 2 fact(s) in context" and "turn" not in line


def test_stop_while_idle_says_there_is_nothing_to_stop():
    agent = FakeAgent()
    chat = ChatSession(agent, "alice", "s")
    chat.stop()
    assert chat.history[-1].role == "system" and chat.history[-1].text.startswith("Nothing to stop")
    chat.send("create hello.py")
    assert agent.calls, "a Stop pressed while idle must not stop the next message"


def test_a_stop_the_agent_no_longer_sees_says_it_came_too_late():
    chat = ChatSession(None, "alice", "s")

    def finishes_anyway(prompt, actor, session, on_event, should_stop):
        chat.stop()  # pressed while the agent writes its last event: it finishes without looking again
        return {"success": True, "result": "done"}

    chat.invoker = finishes_anyway
    reply = chat.send("hi")
    assert reply.text == "done" and "stopping ..." in reply.progress
    assert chat.history[-1].role == "system" and chat.history[-1].text.startswith("Stop came too late")


def test_the_widget_keeps_line_breaks_and_shows_tool_output_as_a_block():
    ui = chat_widget(_local_settings(), "alice", "s", invoker=AnsweringAgent(LISTING))
    ui.session.send("What files are in the workspace?")
    html = ui.children[1].value
    assert "<pre" in html and "total 8\n-rw-r--r-- 1 u u 21 hello.py\n" in html
    assert "white-space:pre-wrap" in html


def test_the_widget_labels_who_speaks_with_text_not_emoji():
    ui = chat_widget(_local_settings(), "alice", "s", invoker=FakeAgent())
    ui.session.send("create hello.py")
    ui.session.send("/quit")
    html = ui.children[1].value
    assert ">you</b>" in html and ">agent</b>" in html and ">note</b>" in html
    assert not any(ord(ch) > 0x2000 for ch in html), "a character that may need an emoji font"


def test_the_empty_widget_lists_the_cues_the_local_model_acts_on():
    from helpers.chat import STAND_IN_CUES

    html = chat_widget(_local_settings(), "alice", "s", invoker=FakeAgent()).children[1].value
    assert "local-stand-in" in html and all(example in html for example, _ in STAND_IN_CUES)


def test_the_session_field_is_wide_enough_for_the_default_session_id():
    ui = chat_widget(_local_settings(), "alice", "workshop-chat-0001-claude-code-agent", invoker=FakeAgent())
    _actor, session = ui.children[0].children
    # 1 em holds at least one character of the field's font; the label has its own width.
    assert float(session.layout.width.removesuffix("em")) >= len(session.value) * 0.75
    assert session.style.description_width == "initial"


def test_every_cue_listed_makes_the_stand_in_act_as_listed():
    """The list the README, the CLI and 07 show is the stand-in's own behaviour, not a promise."""
    from emulator.bedrock.models import StandInModel
    from helpers.chat import STAND_IN_CUES

    tools = [{"name": name} for name in ("Write", "Bash", "Read")]
    model, acted = StandInModel(), []
    for example, _what in STAND_IN_CUES:
        blocks = model.reply({"messages": [{"role": "user", "content": example}], "tools": tools}).blocks
        acted.append(next((b.name for b in blocks if b.kind == "tool_use"), None) or
                     ("quotes" if "Earlier in this conversation" in blocks[0].text else "cannot reason"))
    assert acted == ["Write", "Bash", "Read", "quotes"]


def test_the_readme_the_cli_help_and_07_list_every_cue():
    import nbformat

    from helpers.chat import STAND_IN_CUES
    from helpers.cli import INVOKE_EPILOG
    from tests.support.emulator import ROOT

    readme = (ROOT / "README.md").read_text()
    chat_notebook = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / "07_chat.ipynb", 4).cells)
    for example, _what in STAND_IN_CUES:
        assert example in readme and example in INVOKE_EPILOG and example in chat_notebook, example


def test_the_readme_s_command_line_examples_are_ones_the_stand_in_acts_on():
    import re

    from emulator.bedrock.models import StandInModel
    from tests.support.emulator import ROOT

    prompts = re.findall(r'helpers invoke "([^"]+)"', (ROOT / "README.md").read_text())
    assert prompts
    tools = [{"name": name} for name in ("Write", "Bash", "Read")]
    for prompt in prompts:
        blocks = StandInModel().reply({"messages": [{"role": "user", "content": prompt}], "tools": tools}).blocks
        assert any(b.kind == "tool_use" for b in blocks), prompt


def test_a_turn_shows_in_a_notebook_as_the_message_not_a_dataclass():
    reply = ChatSession(FakeAgent(), "alice", "s").send("create hello.py")
    shown = reply._repr_markdown_()
    assert shown.startswith("**agent**: done: create hello.py") and "`hello.py`" in shown and "Turn(" not in shown


def test_a_turn_and_a_chat_read_as_plain_lines_not_python_reprs():
    from helpers.chat import ChatSession, Turn

    turn = Turn("agent", "Bash ls -la:\n```\ntotal 8\n```")
    assert repr(turn) == "agent: Bash ls -la: ..." and "Turn(" not in str(turn)
    session = ChatSession(lambda *args: {"success": True, "result": "ok"}, "alice", "s1")
    session.send("hello")
    assert repr(session) == "chat as alice in session s1: open, 2 message(s)"
    session.send("/quit")
    assert "ended" in repr(session)
