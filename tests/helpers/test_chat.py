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
