"""Bedrock for the emulator: bedrock-runtime InvokeModel(WithResponseStream) answered by the stand-in
model, and the bedrock control-plane calls Claude Code makes before them (ListInferenceProfiles)."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import uuid

from ..core.backend import Backend
from ..core.errors import ResourceNotFoundException, ValidationException
from ..core.restjson import RequestContext, StreamingResult
from ..core.settings import Settings
from . import eventstream
from .models import MODEL_ID, StandInModel, message_json, stream_events

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

    def _record(self, model_id: str, doc: dict, reply) -> None:
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(),
            "model_id": model_id,
            "answered_by": MODEL_ID,
            "messages": len(doc["messages"]),
            "tools": len(doc.get("tools") or []),
            "max_tokens": doc.get("max_tokens"),
            "thinking": doc.get("thinking"),
            "stop_reason": reply.stop_reason,
            "tool_calls": [b.name for b in reply.blocks if b.kind == "tool_use"],
            "text": " ".join(b.text for b in reply.blocks if b.kind == "text")[:2000],
        }
        if self.dump_bodies:
            entry["request"] = doc
        with self._log_lock:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    @staticmethod
    def _check_model(model_id: str) -> None:
        if not _MODEL_ID.match(model_id):
            # Bedrock's own words for an unknown id (the rest tells the reader what the emulator takes).
            raise ValidationException(
                f"The provided model identifier is invalid. (The emulator answers {MODEL_ID} and Anthropic "
                f"Claude model or inference-profile ids such as us.anthropic.claude-sonnet-4-20250514-v1:0; "
                f"got {model_id!r}.)")

    def invoke_model(self, params: dict, ctx: RequestContext) -> dict:
        self._check_model(params["modelId"])
        doc = self._request(params)
        reply = self.model.reply(doc)
        self._record(params["modelId"], doc, reply)
        body = json.dumps(message_json(reply, f"msg_{uuid.uuid4().hex[:24]}")).encode("utf-8")
        return {"body": body, "contentType": "application/json"}

    def invoke_model_with_response_stream(self, params: dict, ctx: RequestContext) -> StreamingResult:
        self._check_model(params["modelId"])
        doc = self._request(params)
        reply = self.model.reply(doc)
        self._record(params["modelId"], doc, reply)
        events = stream_events(reply, f"msg_{uuid.uuid4().hex[:24]}")
        return StreamingResult(
            (eventstream.chunk_event(e) for e in events),
            content_type=eventstream.CONTENT_TYPE,
            headers={"X-Amzn-Bedrock-Content-Type": "application/json",
                     "x-amzn-RequestId": str(uuid.uuid4())},
        )

    # -- bedrock (control plane) -----------------------------------------------------------
    def _profile(self, region: str) -> dict:
        return {
            "inferenceProfileName": MODEL_ID,
            "description": "The emulator's deterministic stand-in model (a test double, not Claude).",
            "createdAt": _CREATED,
            "updatedAt": _CREATED,
            "inferenceProfileArn": f"arn:aws:bedrock:{region}:{self.settings.account_id}:inference-profile/{MODEL_ID}",
            "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{MODEL_ID}"}],
            "inferenceProfileId": MODEL_ID,
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }

    def list_inference_profiles(self, params: dict, ctx: RequestContext) -> dict:
        wanted = params.get("typeEquals")
        profiles = [p for p in [self._profile(ctx.region)] if wanted in (None, p["type"])]
        return {"inferenceProfileSummaries": profiles}

    def get_inference_profile(self, params: dict, ctx: RequestContext) -> dict:
        profile = self._profile(ctx.region)
        if params["inferenceProfileIdentifier"] not in (MODEL_ID, profile["inferenceProfileArn"]):
            raise ResourceNotFoundException(
                f"Inference profile {params['inferenceProfileIdentifier']} not found; the emulator "
                f"has one: {MODEL_ID}.")
        return profile

    def _foundation_model(self, region: str) -> dict:
        return {
            "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{MODEL_ID}",
            "modelId": MODEL_ID, "modelName": "Local stand-in (test double)", "providerName": "emulator",
            "inputModalities": ["TEXT"], "outputModalities": ["TEXT"], "responseStreamingSupported": True,
            "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
            "modelLifecycle": {"status": "ACTIVE"},
        }

    def list_foundation_models(self, params: dict, ctx: RequestContext) -> dict:
        return {"modelSummaries": [self._foundation_model(ctx.region)]}

    def get_foundation_model(self, params: dict, ctx: RequestContext) -> dict:
        if params["modelIdentifier"] != MODEL_ID:
            raise ResourceNotFoundException(
                f"Foundation model {params['modelIdentifier']} not found; the emulator has one: {MODEL_ID}.")
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
