"""Bedrock's backend: which model ids the stand-in answers for, what a Messages request must hold, the
invocation log, and the one inference profile and foundation model the emulator has."""
from __future__ import annotations

import datetime as dt
import json
import re
import threading

from ..core.errors import ResourceNotFoundException, ValidationException
from ..core.settings import Settings
from .standin import MODEL_ID, Reply, StandInModel

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
        self.dump_bodies = settings.bedrock_dump_requests

    # -- bedrock-runtime -------------------------------------------------------------------
    def reply(self, model_id: str, body: bytes | None) -> Reply:
        """The stand-in's answer to one Messages request, recorded in the invocation log."""
        self._check_model(model_id)
        doc = self._request(body)
        reply = self.model.reply(doc)
        self._record(model_id, doc, reply)
        return reply

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

    def _record(self, model_id: str, doc: dict, reply: Reply) -> None:
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

    # -- bedrock (control plane) -----------------------------------------------------------
    def inference_profiles(self, account: str, region: str) -> list[dict]:
        return [{
            "inferenceProfileName": MODEL_ID,
            "description": "The emulator's deterministic stand-in model (a test double, not Claude).",
            "createdAt": _CREATED,
            "updatedAt": _CREATED,
            "inferenceProfileArn": f"arn:aws:bedrock:{region}:{account}:inference-profile/{MODEL_ID}",
            "models": [{"modelArn": f"arn:aws:bedrock:{region}::foundation-model/{MODEL_ID}"}],
            "inferenceProfileId": MODEL_ID,
            "status": "ACTIVE",
            "type": "SYSTEM_DEFINED",
        }]

    def inference_profile(self, identifier: str, account: str, region: str) -> dict:
        for profile in self.inference_profiles(account, region):
            if identifier in (profile["inferenceProfileId"], profile["inferenceProfileArn"]):
                return profile
        raise ResourceNotFoundException(
            f"Inference profile {identifier} not found; the emulator has one: {MODEL_ID}.")

    @staticmethod
    def foundation_model(identifier: str | None, region: str) -> dict:
        if identifier is not None and identifier != MODEL_ID:
            raise ResourceNotFoundException(
                f"Foundation model {identifier} not found; the emulator has one: {MODEL_ID}.")
        return {
            "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{MODEL_ID}",
            "modelId": MODEL_ID, "modelName": "Local stand-in (test double)", "providerName": "emulator",
            "inputModalities": ["TEXT"], "outputModalities": ["TEXT"], "responseStreamingSupported": True,
            "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
            "modelLifecycle": {"status": "ACTIVE"},
        }
