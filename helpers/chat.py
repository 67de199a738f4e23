"""Chat with the agent: a plain `ChatSession` that tests drive, and a thin ipywidgets front end for it."""
from __future__ import annotations

import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable

from .config import Settings
from .errors import WorkshopError

QUIT = "/quit"
WORKING = "working ... (starting the session's agent: a session's first message takes a few seconds)"

# What the local stand-in model (emulator/bedrock/models.py) acts on; the README, the CLI's help and
# 07_chat show this list, and tests/helpers/test_chat.py sends each example to the stand-in itself.
# It is a test double: anything else gets a plain "I cannot reason" reply that quotes its memory context.
STAND_IN_CUES: list[tuple[str, str]] = [
    ("Create hello.py that prints hello world", "writes the file (a real Write call; any file name with an extension)"),
    ("What files are in the workspace?", "lists the workspace (a real Bash `ls -la`)"),
    ("Show hello.py", "reads the file back (a real Read call)"),
    ("What did I ask you before?", "quotes this conversation's earlier requests"),
]


def stand_in_cues_text(indent: str = "  ") -> str:
    """The cues as plain lines, for a terminal."""
    width = max(len(example) for example, _ in STAND_IN_CUES) + 2
    return "\n".join(f"{indent}{example:<{width}}{what}" for example, what in STAND_IN_CUES)

# invoker(prompt, actor_id, session_id, on_event, should_stop) -> the agent's output dict
Invoker = Callable[[str, str, str, Callable[[dict], None], Callable[[], bool]], dict]


@dataclass(repr=False)
class Turn:
    role: str  # "user", "agent" or "system"
    text: str
    files: list[dict] = field(default_factory=list)
    progress: list[str] = field(default_factory=list)
    # The agent's streamed text, by progress line: the last of it is usually the answer itself,
    # which the turn's text already shows.
    said: dict[int, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        first = (self.text.strip().splitlines() or [""])[0]
        more = " ..." if len(self.text.strip().splitlines()) > 1 else ""
        return f"{_LABELS[self.role][0]}: {first}{more}"

    __str__ = __repr__

    def _repr_markdown_(self) -> str:
        # What a notebook cell that sends a message shows: the message, as the chat shows it.
        steps = f"{len(self.progress)} step(s)" if self.progress else "no steps"
        files = ", ".join(f"`{f.get('file_name')}`" for f in self.files) or "none"
        return f"**{_LABELS[self.role][0]}**: {self.text}\n\n*{steps}; files: {files}*"


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

    def __repr__(self) -> str:
        state = "ended" if self.closed else ("busy" if self.busy else "open")
        said = sum(t.role in ("user", "agent") for t in self.history)
        return f"chat as {self.actor_id} in session {self.session_id}: {state}, {said} message(s)"

    __str__ = __repr__

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
        # What it is waiting for, said at once: a cold session shows no step for the seconds its agent
        # takes to start.
        reply = self._add(Turn("agent", WORKING))
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
        stop_was_late = self._stop.is_set() and not (output or {}).get("stopped")
        if output is not None and output.get("stopped"):
            reply.role, reply.text = "system", ("Stopped, and the session's agent with it: files from earlier turns "
                                                "stay in the session; what this turn wrote was not uploaded.")
        elif output is not None:
            reply.text = output.get("result") or ("(no answer)" if output.get("success") else
                                                  f"The agent reported a failure: {output.get('error', output)}")
            reply.files = list(output.get("metadata", {}).get("uploaded_files", []))
            _drop_repeated_answer(reply)
        if stop_was_late:
            self._add(Turn("system", "Stop came too late: the agent had already finished; its answer is above."))
        self._notify()
        return reply

    def stop(self) -> None:
        """Ask the running invocation to stop; the invoker checks this between streamed events."""
        if not self.busy:
            self._add(Turn("system", "Nothing to stop: the agent is not working on a message."))
            return
        self._stop.set()
        # Said at once: the invoker sees the request only at the agent's next streamed event.
        agent_turns = [t for t in self.history if t.role == "agent"]
        if agent_turns:
            agent_turns[-1].progress.append("stopping ...")
        self._notify()

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
            if reply.text == WORKING:
                reply.text = "working ..."  # the agent has started: the steps say what it does
            if event.get("type") == "text":
                reply.said[len(reply.progress)] = str(event.get("text", "")).strip()
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


def _drop_repeated_answer(reply: Turn) -> None:
    """Remove the progress lines that only repeat (part of) the answer shown as the turn's text."""
    answer = " ".join(reply.text.split())
    keep = [i for i in range(len(reply.progress))
            if not (i in reply.said and reply.said[i] and " ".join(reply.said[i].split()) in answer)]
    reply.progress = [reply.progress[i] for i in keep]
    reply.said = {}


def describe_event(event: dict) -> str | None:
    """One line for a streamed progress event, or None for events a person need not see."""
    kind = event.get("type")
    if kind == "tool_use":
        target = event.get("target")
        return f"{event.get('tool')} {target}" if target else str(event.get("tool"))
    if kind == "text":
        # One step line, never a run-on of a multi-line answer: its first line, and how much follows.
        lines = [line.strip() for line in str(event.get("text", "")).strip().splitlines() if line.strip()]
        if not lines:
            return None
        first = lines[0] if len(lines[0]) <= 120 else lines[0][:117] + "..."
        return first + (f" (+{len(lines) - 1} more line{'s' if len(lines) > 2 else ''})" if len(lines) > 1 else "")
    if kind == "file_uploaded":
        return f"uploaded {event.get('file_name')}"
    if kind == "files_restored":
        files = event.get("files") or []
        return f"restored {len(files)} file(s) from the session" if files else None
    if kind == "memory":
        # The agent counts remembered messages (each user or agent message is one event in memory);
        # the chat calls them messages, as it calls everything in its history.
        return f"memory: {event.get('turns', 0)} earlier message(s), {event.get('facts', 0)} fact(s) in context"
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


# Text labels, not emoji: a browser without an emoji font draws those as empty boxes.
_LABELS = {"user": ("you", "#1565c0"), "agent": ("agent", "#2e7d32"), "system": ("note", "#6d4c41")}
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_WRAP = "white-space:pre-wrap;overflow-wrap:anywhere"


def _text_html(text: str) -> str:
    """A message as HTML that keeps its line breaks; fenced blocks (tool output) in a monospace box."""
    import html

    parts, at = [], 0
    for block in _FENCE.finditer(text):
        before = text[at:block.start()].strip("\n")
        if before:
            parts.append(f"<div style='{_WRAP}'>{html.escape(before)}</div>")
        parts.append("<pre style='margin:2px 0;padding:4px;background:#f5f5f5;white-space:pre-wrap;"
                     f"overflow-wrap:anywhere'>{html.escape(block.group(1).rstrip())}</pre>")
        at = block.end()
    rest = text[at:].strip("\n")
    if rest:
        parts.append(f"<div style='{_WRAP}'>{html.escape(rest)}</div>")
    return "".join(parts)


def _hint_html(settings: Settings) -> str:
    import html

    if settings.model_id != "local-stand-in":
        return "<p style='color:#777'>Type a task for the agent below and press Send.</p>"
    rows = "".join(f"<li><code>{html.escape(example)}</code>: {html.escape(what)}</li>" for example, what in STAND_IN_CUES)
    return ("<div style='color:#555'><p>Locally the agent talks to <code>local-stand-in</code>, a deterministic "
            "test double, not a language model. It acts on these cues:</p>"
            f"<ul>{rows}</ul><p>Anything else gets a reply that it cannot reason, quoting the memory context "
            "it was given. Against AWS, Claude answers anything.</p></div>")


def _cues_line(settings: Settings) -> str:
    """One line under the input, so the cues stay in view once the history has filled up."""
    import html

    if settings.model_id != "local-stand-in":
        return ""
    examples = " · ".join(f"<code>{html.escape(example)}</code>" for example, _ in STAND_IN_CUES)
    return f"<div style='color:#777;font-size:90%;line-height:1.4;{_WRAP}'>local-stand-in acts on: {examples}</div>"


def chat_widget(settings: Settings, actor_id: str, session_id: str, invoker: Invoker | None = None):
    """An ipywidgets chat: history, input box, Send and Stop, actor and session fields."""
    import html

    import ipywidgets as w

    session = ChatSession(invoker or invoker_for(settings), actor_id, session_id)
    hint = _hint_html(settings)
    history = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="6px"))
    box = w.Text(placeholder="Ask the agent (type /quit to end)", layout=w.Layout(flex="1 1 auto", width="auto"))
    send, stop = w.Button(description="Send", button_style="primary"), w.Button(description="Stop")
    # Wide enough for a whole default session id (36 characters); the description keeps its own width.
    field_style = {"description_width": "initial"}
    actor = w.Text(value=actor_id, description="actor", style=field_style, layout=w.Layout(width="16em"))
    sess = w.Text(value=session_id, description="session", style=field_style,
                  layout=w.Layout(width="30em", max_width="100%"))
    stop.disabled = True
    cues = w.HTML(_cues_line(settings))

    def render():
        parts = []
        for turn in session.history:
            label, colour = _LABELS[turn.role]
            parts.append(f"<div style='margin:8px 0 2px'><b style='color:{colour}'>{label}</b></div>")
            # Steps first, as they happened, then the answer (or "working ..." while there is none yet).
            parts += [f"<div style='color:#777;margin-left:1em;line-height:1.3;{_WRAP}'>&gt; {html.escape(p)}</div>"
                      for p in turn.progress]
            parts.append(f"<div style='margin-left:1em'>{_text_html(turn.text)}</div>")
            parts += [f"<div style='margin-left:1em;{_WRAP}'>file {html.escape(str(f.get('file_name')))} "
                      f"<code>{html.escape(str(f.get('s3_url')))}</code></div>" for f in turn.files]
        # A column-reverse box stays scrolled to its end: the newest message is always in view.
        history.value = ("<div style='display:flex;flex-direction:column-reverse;height:320px;overflow:auto'>"
                         f"<div>{''.join(parts) or hint}</div></div>")
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
    ui = w.VBox([w.HBox([actor, sess], layout=w.Layout(flex_flow="row wrap")), history,
                 w.HBox([box, send, stop]), cues], layout=w.Layout(max_width="1000px"))
    ui.session = session  # so a notebook cell (or a test) can reach the conversation
    return ui
