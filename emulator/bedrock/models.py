"""Bedrock's backend: which model ids it answers for, what a Messages request must hold, who answers it (the
stand-in, or with WORKSHOP_MODEL_UPSTREAM a real model behind an Anthropic Messages API endpoint), the
invocation log, and the one inference profile and foundation model the emulator has."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
import uuid
from typing import Iterator

from ..core.errors import ResourceNotFoundException, ValidationException
from ..core.settings import Settings
from .script import STREAM_OPERATION, Rule, Script, last_user_text, scripted_error, stream_error_body
from .standin import MODEL_ID, ContentBlock, Reply, StandInModel, message_json, stream_events
from .upstream import Outcome, Upstream

_CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# Model ids the emulator answers for: its own, and anything shaped like an Anthropic model or
# cross-region inference profile on Bedrock (anthropic.claude-..., us./eu./apac./global.anthropic.claude-...),
# bare or as an ARN, so code written for real AWS runs unchanged. Anything else Bedrock would refuse.
_MODEL_ID = re.compile(
    r"^(?:arn:aws[a-z-]*:bedrock:[a-z0-9-]+:(?:[0-9]{12})?:(?:foundation-model|inference-profile)/)?"
    r"(?:" + re.escape(MODEL_ID) + r"|(?:[a-z]{2,6}(?:-[a-z]+)?\.)?anthropic\.claude-[A-Za-z0-9._:-]+)$")

# One streamed event: ("chunk", Anthropic stream event) or (an exception member of the stream, its fields).
StreamEvent = tuple[str, dict]


class BedrockBackend:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.model = StandInModel()
        # Per-prompt answers and faults on purpose, set through /_emulator/bedrock/script (script.py).
        self.script = Script()
        self.upstream = Upstream(settings.model_upstream) if settings.model_upstream else None
        # The id every answer, profile and log line shows: the upstream's model when there is one.
        self.model_id = settings.model_upstream.model if settings.model_upstream else MODEL_ID
        self._log_lock = threading.Lock()
        self.log_path = settings.state_dir / "bedrock" / "invocations.jsonl"
        # Full request bodies are 50-90 KB each; keep them only when someone is debugging.
        self.dump_bodies = settings.bedrock_dump_requests

    # -- bedrock-runtime -------------------------------------------------------------------
    def message(self, model_id: str, body: bytes | None) -> dict:
        """InvokeModel: the whole Anthropic message answering one Messages request, recorded in the log."""
        self._check_model(model_id)
        doc = self._request(body)
        taken = self.script.take(doc, "InvokeModel")
        if taken is not None:
            return self._scripted_message(model_id, doc, *taken)
        return self._message(model_id, doc)

    def _message(self, model_id: str, doc: dict, scripted: dict | None = None) -> dict:
        if self.upstream is not None:
            try:
                message, outcome = self.upstream.message(doc)
            except Exception as e:
                self._record(model_id, doc, outcome=Outcome(error=str(e)), scripted=scripted)
                raise
            self._record(model_id, doc, outcome=outcome, scripted=scripted)
            return message
        reply = self.model.reply(doc)
        self._record(model_id, doc, reply, scripted=scripted)
        return message_json(reply, f"msg_{uuid.uuid4().hex[:24]}")

    def _scripted_message(self, model_id: str, doc: dict, rule: Rule, note: dict) -> dict:
        if rule.delay_seconds:
            time.sleep(rule.delay_seconds)
        code = rule.error_for("InvokeModel")
        if code is not None:
            error = scripted_error(code, rule)
            self._record(model_id, doc, outcome=Outcome(error=f"{code}: {error.message}"), scripted=note)
            raise error
        if rule.drop:
            # Half the answer, then the connection breaks: its headers went out, its body is cut. The stand-in
            # writes it even with an upstream: it never arrives whole, so the upstream need not be asked.
            reply = self._scripted_reply(doc, rule) or self.model.reply(doc)
            self._record(model_id, doc, reply, scripted=note)
            whole = json.dumps(message_json(reply, f"msg_{uuid.uuid4().hex[:24]}")).encode()
            raise DropConnection(f"connection dropped on purpose by script rule {rule.id}",
                                 partial=whole[:len(whole) // 2])
        reply = self._scripted_reply(doc, rule)
        if reply is None:
            return self._message(model_id, doc, scripted=note)
        self._record(model_id, doc, reply, scripted=note)
        return message_json(reply, f"msg_{uuid.uuid4().hex[:24]}")

    def stream(self, model_id: str, body: bytes | None) -> Iterator[StreamEvent]:
        """InvokeModelWithResponseStream: the answer's events, an upstream's passed on as they arrive.

        The request is checked, and an upstream's connection opened, before this returns, so those
        failures are answered as errors rather than inside a stream that has begun.
        """
        self._check_model(model_id)
        doc = self._request(body)
        taken = self.script.take(doc, STREAM_OPERATION)
        if taken is not None:
            return self._scripted_stream(model_id, doc, *taken)
        return self._stream(model_id, doc)

    def _stream(self, model_id: str, doc: dict, scripted: dict | None = None) -> Iterator[StreamEvent]:
        if self.upstream is not None:
            return self._forwarded(model_id, doc, scripted)
        reply = self.model.reply(doc)
        self._record(model_id, doc, reply, scripted=scripted, operation=STREAM_OPERATION)
        return (("chunk", e) for e in stream_events(reply, f"msg_{uuid.uuid4().hex[:24]}"))

    def _scripted_stream(self, model_id: str, doc: dict, rule: Rule, note: dict) -> Iterator[StreamEvent]:
        code = rule.error_for(STREAM_OPERATION)
        if code is not None:
            # Refused before any byte, as Bedrock refuses a call; a delay still comes first.
            if rule.delay_seconds:
                time.sleep(rule.delay_seconds)
            error = scripted_error(code, rule)
            self._record(model_id, doc, outcome=Outcome(error=f"{code}: {error.message}"), scripted=note,
                         operation=STREAM_OPERATION)
            raise error
        reply = self._scripted_reply(doc, rule)
        if reply is None:
            events = self._stream(model_id, doc, scripted=note)
        else:
            self._record(model_id, doc, reply, scripted=note, operation=STREAM_OPERATION)
            events = (("chunk", e) for e in stream_events(reply, f"msg_{uuid.uuid4().hex[:24]}"))
        return _faulted(events, rule)

    def _scripted_reply(self, doc: dict, rule: Rule) -> Reply | None:
        """The rule's own answer (still the stand-in's: model local-stand-in), or None to answer as usual."""
        if rule.answer is None and rule.tool is None:
            return None
        blocks = []
        if rule.answer is not None:
            blocks.append(ContentBlock("text", text=rule.answer))
        if rule.tool is not None:
            digest = hashlib.sha1(json.dumps([rule.id, rule.fired, rule.tool["name"]]).encode()).hexdigest()[:20]
            blocks.append(ContentBlock("tool_use", name=rule.tool["name"], input=rule.tool["input"],
                                       id=f"toolu_{digest}"))
        return StandInModel._reply(blocks, "tool_use" if rule.tool is not None else "end_turn", len(json.dumps(doc)))

    def _forwarded(self, model_id: str, doc: dict, scripted: dict | None = None) -> Iterator[StreamEvent]:
        started = time.monotonic()
        try:
            resp = self.upstream.open_stream(doc)
        except Exception as e:
            self._record(model_id, doc, outcome=Outcome(error=str(e)), scripted=scripted,
                         operation=STREAM_OPERATION)
            raise

        def events():
            outcome = Outcome()
            try:
                yield from self.upstream.events(resp, outcome, started)
            finally:
                self._record(model_id, doc, outcome=outcome, scripted=scripted, operation=STREAM_OPERATION)

        return events()

    @staticmethod
    def _request(body: bytes | None) -> dict:
        try:
            doc = json.loads(body or b"")
        except ValueError:
            raise ValidationException("body: the request body is not valid JSON; send an Anthropic "
                                      "Messages request with anthropic_version and messages.") from None
        if not isinstance(doc, dict):
            raise ValidationException("body: must be a JSON object.")
        if "anthropic_version" not in doc:
            raise ValidationException("anthropic_version: required (e.g. \"bedrock-2023-05-31\").")
        if not isinstance(doc.get("messages"), list) or not doc["messages"]:
            raise ValidationException("messages: required, a non-empty list of {role, content}.")
        return doc

    def _record(self, model_id: str, doc: dict, reply: Reply | None = None, outcome: Outcome | None = None,
                scripted: dict | None = None, operation: str = "InvokeModel") -> None:
        if reply is not None:
            outcome = Outcome(stop_reason=reply.stop_reason,
                              tool_calls=[b.name for b in reply.blocks if b.kind == "tool_use"],
                              text=" ".join(b.text for b in reply.blocks if b.kind == "text"),
                              input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(),
            "model_id": model_id,
            # Which call (a client that falls back from streaming to InvokeModel shows here) and what the user
            # said last (so a test can tell its calls from others'), beside what answered.
            "operation": operation,
            "prompt": last_user_text(doc)[:200],
            # A Reply is the stand-in's (scripted answers too, whatever answers the unscripted requests).
            "answered_by": MODEL_ID if reply is not None else self.model_id,
            "messages": len(doc["messages"]),
            "tools": len(doc.get("tools") or []),
            "max_tokens": doc.get("max_tokens"),
            "thinking": doc.get("thinking"),
            "stop_reason": outcome.stop_reason,
            "tool_calls": outcome.tool_calls,
            "text": outcome.text[:2000],
            "input_tokens": outcome.input_tokens,
            "output_tokens": outcome.output_tokens,
        }
        if outcome.error:
            entry["error"] = outcome.error
        if scripted:
            entry["scripted"] = scripted
            if scripted["fault"] and "error" not in entry:
                entry["error"] = f"scripted fault: {scripted['fault']}"
        if self.dump_bodies:
            entry["request"] = doc
        with self._log_lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def _check_model(self, model_id: str) -> None:
        if model_id == self.model_id or model_id.endswith(f"/{self.model_id}"):
            return
        if not _MODEL_ID.match(model_id):
            # Bedrock's own words for an unknown id (the rest tells the reader what the emulator takes).
            raise ValidationException(
                f"The provided model identifier is invalid. (The emulator answers {self.model_id} and Anthropic "
                f"Claude model or inference-profile ids such as us.anthropic.claude-sonnet-4-20250514-v1:0; "
                f"got {model_id!r}.)")

    # -- bedrock (control plane) -----------------------------------------------------------
    def inference_profiles(self, account: str, region: str) -> list[dict]:
        model_id = self.model_id
        return [{
            "inferenceProfileName": model_id,
            # Bedrock's model holds a description to ([0-9a-zA-Z:.][ _-]?)+: no commas, slashes or brackets.
            "description": (f"{model_id} through an Anthropic Messages API upstream" if self.upstream else
                            "Local stand-in model. A deterministic test double and not Claude."),
            "createdAt": _CREATED,
            "updatedAt": _CREATED,
            "inferenceProfileArn": f"arn:aws:bedrock:{region}:{account}:inference-profile/{model_id}",
            "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}"}],
            "inferenceProfileId": model_id,
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }]

    def inference_profile(self, identifier: str, account: str, region: str) -> dict:
        for profile in self.inference_profiles(account, region):
            if identifier in (profile["inferenceProfileId"], profile["inferenceProfileArn"]):
                return profile
        raise ResourceNotFoundException(
            f"Inference profile {identifier} not found; the emulator has one: {self.model_id}.")

    def foundation_model(self, identifier: str | None, region: str) -> dict:
        if identifier is not None and identifier != self.model_id:
            raise ResourceNotFoundException(
                f"Foundation model {identifier} not found; the emulator has one: {self.model_id}.")
        if self.upstream:
            name, provider = f"{self.model_id} (through {self.upstream.config.messages_url})", "upstream"
        else:
            name, provider = "Local stand-in (test double)", "emulator"
        return {
            "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{self.model_id}",
            "modelId": self.model_id, "modelName": name, "providerName": provider,
            "inputModalities": ["TEXT"], "outputModalities": ["TEXT"], "responseStreamingSupported": True,
            "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
            "modelLifecycle": {"status": "ACTIVE"},
        }


class DropConnection(ConnectionError):
    """Raised while an answer is sent to drop the client's connection on purpose.

    The WSGI server (werkzeug) takes a ConnectionError from the body as a dropped connection: it stops
    writing, sends no last chunk and closes the socket, which is what a client sees when Bedrock's
    connection breaks mid-answer. It closes only once the headers have gone out (they say
    `Connection: close`), so some of the answer is always sent first: `partial`, for InvokeModel.
    """

    def __init__(self, message: str, partial: bytes = b""):
        super().__init__(message)
        self.partial = partial


def _faulted(events: Iterator[StreamEvent], rule: Rule) -> Iterator[StreamEvent]:
    """The answer's events, after the rule's delay, cut by its fault after `after_events` (before message_stop)."""
    if rule.delay_seconds:
        time.sleep(rule.delay_seconds)
    faulty = rule.stream_error or rule.drop
    sent = 0
    try:
        for member, event in events:
            if faulty and (sent >= rule.after_events or event.get("type") == "message_stop" or member != "chunk"):
                break
            yield member, event
            sent += 1
        else:
            if not faulty:
                return
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # an upstream's connection is closed, and its call logged, when the stream is cut
    if rule.stream_error:
        yield rule.stream_error, stream_error_body(rule.stream_error, rule)
        return
    raise DropConnection(f"connection dropped on purpose by script rule {rule.id}")
