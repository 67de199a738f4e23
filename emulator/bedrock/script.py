"""The stand-in model's script: per-prompt answers and faults on purpose, set by tests through an admin route.

    POST   /_emulator/bedrock/script   {"rules": [rule, ...]} or one rule: appended; answers the whole script
    GET    /_emulator/bedrock/script   the script, each rule with how often it fired
    DELETE /_emulator/bedrock/script   clears it

A rule (every member optional, but it must do something):
    match          a substring of the last user message's own text (harness reminders left out; a message of
                   tool results only has none); absent: every request
    times          how many requests it answers before it is spent; absent: no limit
    answer         the text to answer with
    tool           {"name", "input"}: a tool call to answer with (after `answer`'s text, if any)
    error          an error the operation can raise, by its code in botocore's model (ThrottlingException,
                   ServiceUnavailableException, InternalServerException, ModelErrorException, ...): answered
                   with that error's HTTP status before any byte of the answer, as Bedrock refuses a call
    stream_error   a member of the ResponseStream union (throttlingException, internalServerException, ...):
                   the answer starts, then that exception event ends the stream, as Bedrock fails mid-answer
    drop           true: the answer starts, then the connection is dropped (no message_stop, no last chunk)
    after_events   how many of the answer's events go out before a stream_error or drop (default 1); never the
                   message_stop, so the fault always comes
    delay_seconds  wait this long before the first byte (0-600): a slow first byte
Rules are tried in the order they were added; the first that matches and is not spent answers the request.
Requests no rule takes are answered as before (the stand-in, or WORKSHOP_MODEL_UPSTREAM). A scripted answer
is still the stand-in's (model `local-stand-in`); every request, scripted or not, is in the invocation log.
The script lives in the emulator's memory: a restart, like DELETE, clears it.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

import botocore.session

from ..core import wsgi
from ..core.errors import ServiceError
from ..core.restjson import HttpResponse

PATH = "/_emulator/bedrock/script"
MAX_DELAY_SECONDS = 600.0
STREAM_OPERATION = "InvokeModelWithResponseStream"
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_FIELDS = ("match", "times", "answer", "tool", "error", "stream_error", "drop", "after_events", "delay_seconds")


class _Model:
    """What botocore's bedrock-runtime model says about the faults a script may name."""

    def __init__(self):
        model = botocore.session.get_session().get_service_model("bedrock-runtime")
        self.errors = {op: {e.name: e for e in model.operation_model(op).error_shapes}
                       for op in ("InvokeModel", STREAM_OPERATION)}
        stream = model.operation_model(STREAM_OPERATION).output_shape.members["body"]
        # The union's exception members (chunk is the answer itself), and the error shape each one carries.
        self.stream_members = {name: shape for name, shape in stream.members.items() if name != "chunk"}

    def status(self, code: str) -> int:
        for errors in self.errors.values():
            if code in errors:
                return errors[code].metadata["error"]["httpStatusCode"]
        raise KeyError(code)

    def summary(self, code: str) -> str:
        """The first sentence of the error's own documentation, as the message's opening."""
        shape = next((errors[code] for errors in self.errors.values() if code in errors), None)
        text = " ".join(_TAG.sub("", shape.documentation if shape is not None else "").split())
        return (text.split(". ")[0].rstrip(".") + ".") if text else code


_model: _Model | None = None
_model_lock = threading.Lock()


def model() -> _Model:
    global _model
    with _model_lock:
        if _model is None:
            _model = _Model()
        return _model


class ScriptError(ValueError):
    """A script the emulator cannot follow; the message names the member at fault and what it takes."""


@dataclass
class Rule:
    id: str
    match: str | None = None
    times: int | None = None
    answer: str | None = None
    tool: dict | None = None
    error: str | None = None
    stream_error: str | None = None
    drop: bool = False
    after_events: int = 1
    delay_seconds: float = 0.0
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    @property
    def fault(self) -> str | None:
        """What goes wrong when this rule answers, in a word (for the log and the figures)."""
        if self.error:
            return self.error
        if self.stream_error:
            return f"stream:{self.stream_error}"
        return "drop" if self.drop else None

    def error_for(self, operation: str) -> str | None:
        """The error code this rule answers `operation` with before any byte, or None."""
        if self.error:
            return self.error
        if self.stream_error and operation != STREAM_OPERATION:
            # InvokeModel has no stream to fail in: the same fault as the whole call's error.
            return model().stream_members[self.stream_error].name
        return None

    def applies_to(self, operation: str) -> bool:
        code = self.error_for(operation)
        return code is None or code in model().errors[operation]

    def as_dict(self) -> dict:
        doc = {"id": self.id, "fired": self.fired, "spent": self.spent}
        for name in _FIELDS:
            value = getattr(self, name)
            if value not in (None, False) and not (name == "after_events" and not (self.stream_error or self.drop)) \
                    and not (name == "delay_seconds" and not value):
                doc[name] = value
        return doc

    def note(self) -> dict:
        """What the invocation log says about a request this rule answered."""
        return {"rule": self.id, "fired": self.fired, "times": self.times, "fault": self.fault,
                "delay_seconds": self.delay_seconds or None, "answer": bool(self.answer or self.tool)}


def last_user_text(doc: dict) -> str:
    """The own words of the last user message: its text blocks without harness reminders (tool results have none)."""
    for message in reversed(doc.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return _REMINDER.sub("", content).strip()
        texts = [_REMINDER.sub("", b.get("text", "")).strip() for b in content or []
                 if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)]
        return "\n".join(t for t in texts if t)
    return ""


@dataclass
class Script:
    rules: list[Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _made: int = 0

    def add(self, doc) -> list[Rule]:
        """Check every rule of a POST body, then append them all (or none)."""
        if not isinstance(doc, dict):
            raise ScriptError("body: send a JSON object, either one rule or {\"rules\": [rule, ...]}.")
        if "rules" in doc:
            extra = sorted(set(doc) - {"rules"})
            if extra:
                raise ScriptError(f"body: {', '.join(extra)} beside \"rules\"; put each rule's members inside it.")
            items, prefix = doc["rules"], "rules"
            if not isinstance(items, list) or not items:
                raise ScriptError("rules: a non-empty list of rule objects.")
        else:
            items, prefix = [doc], "rule"
        parsed = [_parse(item, f"{prefix}[{n}]" if prefix == "rules" else prefix) for n, item in enumerate(items)]
        with self._lock:
            for rule in parsed:
                self._made += 1
                rule.id = f"r{self._made}"
                self.rules.append(rule)
        return parsed

    def take(self, doc: dict, operation: str) -> tuple[Rule, dict] | None:
        """The rule that answers this request (counted as fired) and its note for the log, or None."""
        text = last_user_text(doc)
        with self._lock:
            for rule in self.rules:
                if rule.spent or not rule.applies_to(operation):
                    continue
                if rule.match is not None and rule.match not in text:
                    continue
                rule.fired += 1
                return rule, rule.note()
        return None

    def clear(self) -> int:
        with self._lock:
            count, self.rules = len(self.rules), []
            return count

    def as_dict(self) -> dict:
        with self._lock:
            return {"rules": [r.as_dict() for r in self.rules]}


def _parse(item, where: str) -> Rule:
    if not isinstance(item, dict):
        raise ScriptError(f"{where}: a rule is a JSON object with some of {', '.join(_FIELDS)}.")
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise ScriptError(f"{where}: unknown member(s) {', '.join(unknown)}; a rule takes {', '.join(_FIELDS)}.")
    rule = Rule(id="")
    if "match" in item:
        if not isinstance(item["match"], str) or not item["match"]:
            raise ScriptError(f"{where}.match: a non-empty string (a substring of the last user message); "
                              "leave it out to match every request.")
        rule.match = item["match"]
    if "times" in item:
        rule.times = _whole(item["times"], f"{where}.times", 1)
    if "answer" in item:
        if not isinstance(item["answer"], str):
            raise ScriptError(f"{where}.answer: the text to answer with, a string.")
        rule.answer = item["answer"]
    if "tool" in item:
        tool = item["tool"]
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"] \
                or not isinstance(tool.get("input", {}), dict) or set(tool) - {"name", "input"}:
            raise ScriptError(f"{where}.tool: {{\"name\": <a tool the request offers, e.g. \"Write\">, "
                              f"\"input\": {{...}}}}.")
        rule.tool = {"name": tool["name"], "input": tool.get("input", {})}
    known = model()
    if "error" in item:
        codes = sorted(known.errors[STREAM_OPERATION])
        if item["error"] not in codes:
            raise ScriptError(f"{where}.error: {item['error']!r} is not an error of InvokeModel(WithResponseStream); "
                              f"choose one of {', '.join(codes)}.")
        rule.error = item["error"]
    if "stream_error" in item:
        members = sorted(known.stream_members)
        if item["stream_error"] not in members:
            raise ScriptError(f"{where}.stream_error: {item['stream_error']!r} is not an exception member of "
                              f"Bedrock's ResponseStream; choose one of {', '.join(members)}.")
        rule.stream_error = item["stream_error"]
    if "drop" in item:
        if not isinstance(item["drop"], bool):
            raise ScriptError(f"{where}.drop: true or false.")
        rule.drop = item["drop"]
    if "after_events" in item:
        rule.after_events = _whole(item["after_events"], f"{where}.after_events", 0)
    if "delay_seconds" in item:
        delay = item["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_SECONDS:
            raise ScriptError(f"{where}.delay_seconds: a number of seconds from 0 to {MAX_DELAY_SECONDS:g}.")
        rule.delay_seconds = float(delay)
    faults = [name for name in ("error", "stream_error", "drop") if item.get(name)]
    if len(faults) > 1:
        raise ScriptError(f"{where}: {' and '.join(faults)} together; a rule has at most one fault "
                          "(add one rule per fault, each with its own times).")
    if rule.error and (rule.answer is not None or rule.tool):
        raise ScriptError(f"{where}: error with an answer; an error is answered before any byte of an answer, "
                          "so give the answer its own rule.")
    if "after_events" in item and not (rule.stream_error or rule.drop):
        raise ScriptError(f"{where}.after_events: only with stream_error or drop.")
    if not (rule.answer is not None or rule.tool or faults or rule.delay_seconds):
        raise ScriptError(f"{where}: does nothing; give it an answer, a tool, a fault (error, stream_error, drop) "
                          "or a delay_seconds.")
    return rule


def _whole(value, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScriptError(f"{where}: a whole number of at least {minimum}, got {json.dumps(value)}.")
    return value


def scripted_error(code: str, rule: Rule) -> ServiceError:
    """The error a rule answers with: the code and HTTP status of botocore's error shape, a message saying so."""
    known = model()
    count = f"{rule.fired} of {rule.times}" if rule.times is not None else f"{rule.fired}, no limit"
    return ServiceError(f"{known.summary(code)} (Scripted by the emulator: rule {rule.id}, {count}.)",
                        code=code, status=known.status(code))


def stream_error_body(member: str, rule: Rule) -> dict:
    code = model().stream_members[member].name
    count = f"{rule.fired} of {rule.times}" if rule.times is not None else f"{rule.fired}, no limit"
    return {"message": f"{model().summary(code)} (Scripted by the emulator mid-stream: rule {rule.id}, {count}.)"}


# -- the admin route -------------------------------------------------------------------------------
def admin_response(script: Script, environ: dict) -> HttpResponse:
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "GET":
        return _json(200, script.as_dict())
    if method == "DELETE":
        return _json(200, {"cleared": script.clear(), "rules": []})
    if method != "POST":
        return _json(405, {"code": "MethodNotAllowed", "message": f"{PATH} answers GET, POST and DELETE."})
    try:
        raw = wsgi.read_body(environ)
        doc = json.loads(raw or b"null")
    except ServiceError as exc:
        return _json(400, {"code": "ValidationException", "message": exc.message})
    except ValueError as exc:
        return _json(400, {"code": "ValidationException",
                           "message": f"body: not JSON ({exc}); send a rule or {{\"rules\": [...]}}."})
    try:
        added = script.add(doc)
    except ScriptError as exc:
        return _json(400, {"code": "ValidationException", "message": str(exc)})
    return _json(200, {"added": [r.id for r in added], **script.as_dict()})


def _json(status: int, doc: dict) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())
