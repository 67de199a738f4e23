"""Bedrock's responses: bedrock-runtime InvokeModel(WithResponseStream) and the bedrock control-plane calls
Claude Code makes before them (ListInferenceProfiles).

As in every service of the emulator, a handler takes the parameters emulator/core/restjson.py parsed from
botocore's model, calls the backend (models.py), and returns the members of the output shape (or a stream,
framed here as AWS's event stream).
"""
from __future__ import annotations

import json
import uuid

from ..core.backend import Backend
from ..core.restjson import RequestContext, StreamingResult
from ..core.settings import Settings
from . import eventstream
from .models import BedrockBackend, DropConnection
from .script import Script


class BedrockResponses:
    def __init__(self, backend: BedrockBackend):
        self.backend = backend

    # -- bedrock-runtime -------------------------------------------------------------------
    def invoke_model(self, params: dict, ctx: RequestContext) -> dict | StreamingResult:
        try:
            message = self.backend.message(params["modelId"], params.get("body"))
        except DropConnection as drop:
            return StreamingResult(_cut(drop), content_type="application/json")
        return {"body": json.dumps(message).encode("utf-8"), "contentType": "application/json"}

    def invoke_model_with_response_stream(self, params: dict, ctx: RequestContext) -> StreamingResult:
        events = self.backend.stream(params["modelId"], params.get("body"))
        return StreamingResult(
            (_frame(member, event) for member, event in events),
            content_type=eventstream.CONTENT_TYPE,
            headers={"X-Amzn-Bedrock-Content-Type": "application/json",
                     "x-amzn-RequestId": str(uuid.uuid4())},
        )

    # -- bedrock (control plane) -----------------------------------------------------------
    def list_inference_profiles(self, params: dict, ctx: RequestContext) -> dict:
        wanted = params.get("typeEquals")
        profiles = self.backend.inference_profiles(ctx.account_id, ctx.region)
        return {"inferenceProfileSummaries": [p for p in profiles if wanted in (None, p["type"])]}

    def get_inference_profile(self, params: dict, ctx: RequestContext) -> dict:
        return self.backend.inference_profile(params["inferenceProfileIdentifier"], ctx.account_id, ctx.region)

    def list_foundation_models(self, params: dict, ctx: RequestContext) -> dict:
        return {"modelSummaries": [self.backend.foundation_model(None, ctx.region)]}

    def get_foundation_model(self, params: dict, ctx: RequestContext) -> dict:
        return {"modelDetails": self.backend.foundation_model(params["modelIdentifier"], ctx.region)}


def _frame(member: str, event: dict) -> bytes:
    if member == "chunk":
        return eventstream.chunk_event(event)
    fields = dict(event)
    return eventstream.exception_event(member, fields.pop("message"), **fields)


def _cut(drop: DropConnection):
    """A body that breaks after its first part: the client has the headers and some bytes, then no more."""
    yield drop.partial
    raise drop


class BedrockService(Backend):
    """The bedrock backend, with its script reachable by the emulator's admin route."""

    def __init__(self, backend: BedrockBackend, handlers: dict):
        super().__init__("bedrock", handlers)
        self.script: Script = backend.script


def create_backend(settings: Settings) -> Backend:
    backend = BedrockBackend(settings)
    r = BedrockResponses(backend)
    return BedrockService(backend, {
        "InvokeModel": r.invoke_model,
        "InvokeModelWithResponseStream": r.invoke_model_with_response_stream,
        "ListInferenceProfiles": r.list_inference_profiles,
        "GetInferenceProfile": r.get_inference_profile,
        "ListFoundationModels": r.list_foundation_models,
        "GetFoundationModel": r.get_foundation_model,
    })
