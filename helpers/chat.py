"""Chat with the agent: a plain `ChatSession` that tests drive, and a thin ipywidgets front end for it."""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable

from .config import Settings
from .errors import WorkshopError

QUIT = "/quit"

# invoker(prompt, actor_id, session_id, on_event, should_stop) -> the agent's output dict
Invoker = Callable[[str, str, str, Callable[[dict], None], Callable[[], bool]], dict]


@dataclass
class Turn:
    role: str  # "user", "agent" or "system"
    text: str
    files: list[dict] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)


class ChatSession:
    """The conversation's state and rules, free of any widget: send, stop, change actor or session."""

    def __init__(self, invoker: Invoker, actor_id: str, session_id: str):
        self.invoker = invoker
        self.actor_id = actor_id
        self.session_id = session_id
        self.history: list[Turn] = []
        self.closed = False
        self.busy = False
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self.listeners: list[Callable[[], None]] = []

    # -- what a person does ------------------------------------------------------------------
    def send(self, text: str) -> Turn | None:
        """Send one message; returns the agent's turn (None for an empty message or after /quit)."""
        text = (text or "").strip()
        if not text or self.closed:
            return None
        if text.lower() == QUIT:
            self.closed = True
            return self._add(Turn("system", "Chat ended. Run the cell again to start a new one."))
        with self._guard:  # two quick Sends must not start two invocations
            if self.busy:
                return self._add(Turn("system", "The agent is still working on the last message; wait, or press Stop."))
            self.busy = True
        self._stop.clear()
        self._add(Turn("user", text))
        # The reply is in the history from the start, so its progress lines show while the agent works.
        reply = self._add(Turn("agent", "working ..."))
        output = None
        try:
            output = self.invoker(text, self.actor_id, self.session_id,
                                  lambda event: self._progress(reply, event), self._stop.is_set)
        except WorkshopError as exc:
            reply.role, reply.text = "system", f"Invocation failed: {exc}"
        except Exception as exc:  # runs in the widget's thread: an error must show, not vanish with it
            reply.role, reply.text = "system", f"Invocation failed: {type(exc).__name__}: {exc}"
        finally:
            self.busy = False  # before the last redraw below, so the widget shows the chat idle again
        if output is not None and output.get("stopped"):
            reply.role, reply.text = "system", ("Stopped, and the session's agent with it: files from earlier turns "
                                                "stay in the session; what this turn wrote was not uploaded.")
        elif output is not None:
            reply.text = output.get("result") or ("(no answer)" if output.get("success") else
                                                  f"The agent reported a failure: {output.get('error', output)}")
            reply.files = list(output.get("metadata", {}).get("uploaded_files", []))
        self._notify()
        return reply

    def stop(self) -> None:
        """Ask the running invocation to stop; the invoker checks this between streamed events."""
        self._stop.set()

    def switch(self, actor_id: str | None = None, session_id: str | None = None) -> None:
        """Continue as another actor or in another session; the history shown starts afresh."""
        if actor_id:
            self.actor_id = actor_id.strip()
        if session_id:
            self.session_id = session_id.strip()
        self._add(Turn("system", f"Now chatting as {self.actor_id} in session {self.session_id}."))

    # -- internals ----------------------------------------------------------------------------
    def _progress(self, reply: Turn, event: dict) -> None:
        line = describe_event(event)
        if line:
            reply.progress.append(line)
            self._notify()

    def _add(self, turn: Turn) -> Turn:
        self.history.append(turn)
        self._notify()
        return turn

    def _notify(self) -> None:
        for listener in self.listeners:
            listener()

    def transcript(self) -> str:
        """The conversation as plain text, the way the widget shows it."""
        lines = []
        for turn in self.history:
            lines.append(f"{turn.role}: {turn.text}")
            lines.extend(f"    · {p}" for p in turn.progress)
            lines.extend(f"    file: {f.get('file_name')} -> {f.get('s3_url')}" for f in turn.files)
        return "\n".join(lines)


def describe_event(event: dict) -> str | None:
    """One line for a streamed progress event, or None for events a person need not see."""
    kind = event.get("type")
    if kind == "tool_use":
        target = event.get("target")
        return f"{event.get('tool')} {target}" if target else str(event.get("tool"))
    if kind == "text":
        text = " ".join(str(event.get("text", "")).split())
        return text[:200] if text else None
    if kind == "file_uploaded":
        return f"uploaded {event.get('file_name')}"
    if kind == "files_restored":
        files = event.get("files") or []
        return f"restored {len(files)} file(s) from the session" if files else None
    if kind == "memory":
        return f"memory: {event.get('turns', 0)} turn(s), {event.get('facts', 0)} fact(s) in context"
    if kind == "status":
        return event.get("message")
    return None


def invoker_for(settings: Settings) -> Invoker:
    """An Invoker that calls the deployed runtime through `helpers.invoke`."""
    from . import invoke

    def run(prompt, actor_id, session_id, on_event, should_stop):
        return invoke.invoke(settings, prompt, actor_id, session_id, stream=True,
                             on_event=on_event, should_stop=should_stop, progress=False)

    return run


def chat_widget(settings: Settings, actor_id: str, session_id: str, invoker: Invoker | None = None):
    """An ipywidgets chat: history, input box, Send and Stop, actor and session fields."""
    import html

    import ipywidgets as w

    session = ChatSession(invoker or invoker_for(settings), actor_id, session_id)
    history = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="6px"))
    box = w.Text(placeholder="Ask the agent (type /quit to end)", layout=w.Layout(width="70%"))
    send, stop = w.Button(description="Send", button_style="primary"), w.Button(description="Stop")
    actor, sess = w.Text(value=actor_id, description="actor"), w.Text(value=session_id, description="session")
    stop.disabled = True

    def render():
        parts = []
        for turn in session.history:
            who = {"user": "🧑 you", "agent": "🤖 agent", "system": "ℹ️"}[turn.role]
            parts.append(f"<p><b>{who}</b>: {html.escape(turn.text)}</p>")
            parts += [f"<div style='color:#777;margin-left:1em'>· {html.escape(p)}</div>" for p in turn.progress]
            parts += [f"<div style='margin-left:1em'>📄 {html.escape(str(f.get('file_name')))} "
                      f"<code>{html.escape(str(f.get('s3_url')))}</code></div>" for f in turn.files]
        # A column-reverse box stays scrolled to its end: the newest message is always in view.
        history.value = ("<div style='display:flex;flex-direction:column-reverse;height:320px;overflow:auto'>"
                         f"<div>{''.join(parts)}</div></div>")
        for control in (box, send):
            control.disabled = session.closed or session.busy
        stop.disabled = not session.busy

    def on_send(_=None):
        text, box.value = box.value, ""
        if actor.value.strip() != session.actor_id or sess.value.strip() != session.session_id:
            session.switch(actor.value, sess.value)
        # Run in the background so the Stop button and the history stay live while the agent works.
        threading.Thread(target=session.send, args=(text,), daemon=True).start()

    session.listeners.append(render)
    send.on_click(on_send)
    with warnings.catch_warnings():  # Enter-to-send is deprecated in ipywidgets 8 but has no replacement
        warnings.simplefilter("ignore", DeprecationWarning)
        box.on_submit(on_send)
    stop.on_click(lambda _: session.stop())
    render()
    ui = w.VBox([w.HBox([actor, sess]), history, w.HBox([box, send, stop])])
    ui.session = session  # so a notebook cell (or a test) can reach the conversation
    return ui
