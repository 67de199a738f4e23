"""Bedrock for the emulator: bedrock-runtime InvokeModel(WithResponseStream) answered by the stand-in
model (or, with WORKSHOP_MODEL_UPSTREAM, by a real model behind an Anthropic Messages API endpoint), and the
bedrock control-plane calls Claude Code makes before them (ListInferenceProfiles)."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
import uuid

from ..core.backend import Backend
from ..core.errors import ResourceNotFoundException, ValidationException
from ..core.restjson import RequestContext, StreamingResult
from ..core.settings import Settings
from . import eventstream
from .models import MODEL_ID, StandInModel, message_json, stream_events
from .upstream import Outcome, Upstream

_CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# Model ids the stand-in answers for: its own, and anything shaped like an Anthropic model or
# cross-region inference profile on Bedrock (anthropic.claude-..., us./eu./apac./global.anthropic.claude-...),
# bare or as an ARN, so code written for real AWS runs unchanged. Anything else Bedrock would refuse.
_MODEL_ID = re.compile(
    r"^(?:arn:aws[a-z-]*:bedrock:[a-z0-9-]+:(?:[0-9]{12})?:(?:foundation-model|inference-profile)/)?"
    r"(?:" + re.escape(MODEL_ID) + r"|(?:[a-z]{2,6}(?:-[a-z]+)?\.)?anthropic\.claude-[A-Za-z0-9._:-]+)$")


class BedrockBackend:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.model = StandInModel()
        self.upstream = Upstream(settings.model_upstream) if settings.model_upstream else None
        # The id every answer, profile and log line shows: the upstream's model when there is one.
        self.model_id = settings.model_upstream.model if settings.model_upstream else MODEL_ID
        self._log_lock = threading.Lock()
        self.log_path = settings.state_dir / "bedrock" / "invocations.jsonl"
        # Full request bodies are 50-90 KB each; keep them only when someone is debugging.
        self.dump_bodies = os.environ.get("EMULATOR_BEDROCK_DUMP_REQUESTS") == "1"

    # -- bedrock-runtime -------------------------------------------------------------------
    def _request(self, params: dict) -> dict:
        try:
            doc = json.loads(params.get("body") or b"")
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

    def _record(self, model_id: str, doc: dict, reply=None, outcome: Outcome | None = None) -> None:
        if reply is not None:
            outcome = Outcome(stop_reason=reply.stop_reason,
                              tool_calls=[b.name for b in reply.blocks if b.kind == "tool_use"],
                              text=" ".join(b.text for b in reply.blocks if b.kind == "text"),
                              input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(),
            "model_id": model_id,
            "answered_by": self.model_id,
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

    def invoke_model(self, params: dict, ctx: RequestContext) -> dict:
        self._check_model(params["modelId"])
        doc = self._request(params)
        if self.upstream is not None:
            try:
                message, outcome = self.upstream.message(doc)
            except Exception as e:
                self._record(params["modelId"], doc, outcome=Outcome(error=str(e)))
                raise
            self._record(params["modelId"], doc, outcome=outcome)
            return {"body": json.dumps(message).encode("utf-8"), "contentType": "application/json"}
        reply = self.model.reply(doc)
        self._record(params["modelId"], doc, reply)
        body = json.dumps(message_json(reply, f"msg_{uuid.uuid4().hex[:24]}")).encode("utf-8")
        return {"body": body, "contentType": "application/json"}

    def invoke_model_with_response_stream(self, params: dict, ctx: RequestContext) -> StreamingResult:
        self._check_model(params["modelId"])
        doc = self._request(params)
        if self.upstream is not None:
            chunks = self._forwarded(params["modelId"], doc)
        else:
            reply = self.model.reply(doc)
            self._record(params["modelId"], doc, reply)
            chunks = (eventstream.chunk_event(e) for e in stream_events(reply, f"msg_{uuid.uuid4().hex[:24]}"))
        return StreamingResult(
            chunks,
            content_type=eventstream.CONTENT_TYPE,
            headers={"X-Amzn-Bedrock-Content-Type": "application/json",
                     "x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _forwarded(self, model_id: str, doc: dict):
        """The upstream's stream, each event framed as it arrives (nothing is buffered)."""
        started = time.monotonic()
        try:
            resp = self.upstream.open_stream(doc)
        except Exception as e:
            self._record(model_id, doc, outcome=Outcome(error=str(e)))
            raise

        def frames():
            outcome = Outcome()
            try:
                for member, event in self.upstream.events(resp, outcome, started):
                    if member == "chunk":
                        yield eventstream.chunk_event(event)
                    else:
                        message = event.pop("message")
                        yield eventstream.exception_event(member, message, **event)
            finally:
                self._record(model_id, doc, outcome=outcome)

        return frames()

    # -- bedrock (control plane) -----------------------------------------------------------
    def _profile(self, region: str) -> dict:
        model_id = self.model_id
        return {
            "inferenceProfileName": model_id,
            "description": (f"{model_id}, answered by {self.upstream.config.messages_url}" if self.upstream else
                            "The emulator's deterministic stand-in model (a test double, not Claude)."),
            "createdAt": _CREATED,
            "updatedAt": _CREATED,
            "inferenceProfileArn": f"arn:aws:bedrock:{region}:{self.settings.account_id}:inference-profile/{model_id}",
            "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}"}],
            "inferenceProfileId": model_id,
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }

    def list_inference_profiles(self, params: dict, ctx: RequestContext) -> dict:
        wanted = params.get("typeEquals")
        profiles = [p for p in [self._profile(ctx.region)] if wanted in (None, p["type"])]
        return {"inferenceProfileSummaries": profiles}

    def get_inference_profile(self, params: dict, ctx: RequestContext) -> dict:
        profile = self._profile(ctx.region)
        if params["inferenceProfileIdentifier"] not in (self.model_id, profile["inferenceProfileArn"]):
            raise ResourceNotFoundException(
                f"Inference profile {params['inferenceProfileIdentifier']} not found; the emulator "
                f"has one: {self.model_id}.")
        return profile

    def _foundation_model(self, region: str) -> dict:
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

    def list_foundation_models(self, params: dict, ctx: RequestContext) -> dict:
        return {"modelSummaries": [self._foundation_model(ctx.region)]}

    def get_foundation_model(self, params: dict, ctx: RequestContext) -> dict:
        if params["modelIdentifier"] != self.model_id:
            raise ResourceNotFoundException(
                f"Foundation model {params['modelIdentifier']} not found; the emulator has one: {self.model_id}.")
        return {"modelDetails": self._foundation_model(ctx.region)}


def create_backend(settings: Settings) -> Backend:
    b = BedrockBackend(settings)
    return Backend({
        "InvokeModel": b.invoke_model,
        "InvokeModelWithResponseStream": b.invoke_model_with_response_stream,
        "ListInferenceProfiles": b.list_inference_profiles,
        "GetInferenceProfile": b.get_inference_profile,
        "ListFoundationModels": b.list_foundation_models,
        "GetFoundationModel": b.get_foundation_model,
    })
