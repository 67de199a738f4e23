"""Bedrock's InvokeModel answered by a real model: the request forwarded to an Anthropic Messages API endpoint.

Bedrock's Anthropic body is the Messages API body with `anthropic_version` (and `anthropic_beta`) in it and the
model in the URL (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages.html).
The Messages API takes the model in the body and the version and betas as headers
(docs.claude.com/en/api/messages; docs.claude.com/en/api/versioning). Its stream is server-sent events
(docs.claude.com/en/docs/build-with-claude/streaming); Bedrock carries the same event JSON, each in a `chunk`.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Iterator

from ..core.errors import ServiceError
from ..core.settings import ModelUpstream
from .exceptions import (AccessDeniedException, ModelErrorException, ModelTimeoutException,
                         ResourceNotFoundException, ServiceUnavailableException, ThrottlingException,
                         ValidationException)

ANTHROPIC_VERSION = "2023-06-01"
# Stream error types (the `error` event after a 200) mapped to the member of Bedrock's ResponseStream union
# that carries the same kind of fault (botocore bedrock-runtime: ResponseStream).
_STREAM_ERRORS = {
    "overloaded_error": "throttlingException",
    "rate_limit_error": "throttlingException",
    "invalid_request_error": "validationException",
    "api_error": "internalServerException",
    "timeout_error": "modelTimeoutException",
}


@dataclass
class Outcome:
    """What the upstream answered, for the invocation log."""

    stop_reason: str | None = None
    tool_calls: list[str] = field(default_factory=list)
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None


def upstream_body(doc: dict, model: str, stream: bool) -> tuple[bytes, dict[str, str]]:
    """The Messages API request for a Bedrock body, and its headers' Anthropic part."""
    body = {k: v for k, v in doc.items() if k not in ("anthropic_version", "anthropic_beta")}
    body["model"] = model
    body["stream"] = stream
    headers = {"anthropic-version": ANTHROPIC_VERSION}
    betas = doc.get("anthropic_beta")
    if isinstance(betas, list) and betas:
        headers["anthropic-beta"] = ",".join(str(b) for b in betas)
    elif isinstance(betas, str) and betas:
        headers["anthropic-beta"] = betas
    return json.dumps(body).encode("utf-8"), headers


def _error_message(raw: bytes) -> str:
    # Anthropic's error body: {"type": "error", "error": {"type": ..., "message": ...}} (docs.claude.com/en/api/errors).
    try:
        doc = json.loads(raw)
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):
            return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
        if isinstance(error, str):
            return error
    except ValueError:
        pass
    return raw.decode("utf-8", "replace")[:500].strip() or "(no body)"


def status_error(status: int, raw: bytes, upstream: ModelUpstream) -> ServiceError:
    """Bedrock's error for the upstream's HTTP status (before any of the answer was sent)."""
    said = f"The model upstream {upstream.messages_url} answered {status}: {_error_message(raw)}"
    if status in (401, 403):
        return AccessDeniedException(f"{said} (check WORKSHOP_MODEL_UPSTREAM_API_KEY or "
                                     "WORKSHOP_MODEL_UPSTREAM_AUTH_TOKEN)")
    if status == 404:
        return ResourceNotFoundException(f"{said} (does it serve the model WORKSHOP_MODEL_UPSTREAM_MODEL="
                                         f"{upstream.model}?)")
    if status in (429, 529):  # 529 is Anthropic's overloaded_error
        return ThrottlingException(said)
    if status == 408:
        return ModelTimeoutException(said)
    if status in (502, 503, 504):
        return ServiceUnavailableException(said)
    if status >= 500:
        return ModelErrorException(said)
    return ValidationException(said)


class Upstream:
    """Forwards Messages requests to one endpoint; one HTTP request per call, nothing pooled or retried
    (the client's SDK retries throttling, as it does on Bedrock)."""

    def __init__(self, config: ModelUpstream):
        self.config = config

    def _open(self, doc: dict, stream: bool):
        body, headers = upstream_body(doc, self.config.model, stream)
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream" if stream else "application/json"
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        if self.config.auth_token:
            headers["authorization"] = f"Bearer {self.config.auth_token}"
        request = urllib.request.Request(self.config.messages_url, data=body, headers=headers, method="POST")
        try:
            return urllib.request.urlopen(request, timeout=self.config.timeout)
        except urllib.error.HTTPError as e:
            with e:
                raise status_error(e.code, e.read(), self.config) from None
        except (TimeoutError, socket.timeout):
            raise ModelTimeoutException(f"The model upstream {self.config.messages_url} did not answer within "
                                        f"{self.config.timeout:g} s (WORKSHOP_MODEL_UPSTREAM_TIMEOUT).") from None
        except (urllib.error.URLError, OSError) as e:
            # 424 rather than 503: an upstream that is not running will not come back while boto3 retries.
            reason = getattr(e, "reason", e)
            raise ModelErrorException(f"The model upstream {self.config.messages_url} cannot be reached ({reason}): "
                                      "start it, or unset WORKSHOP_MODEL_UPSTREAM to use the stand-in.") from None

    def message(self, doc: dict) -> tuple[dict, Outcome]:
        """InvokeModel: the whole answer, which is already the body Bedrock returns for Anthropic models."""
        with self._open(doc, stream=False) as resp:
            try:
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise ModelErrorException(f"The model upstream {self.config.messages_url} dropped the connection "
                                          f"before its answer was complete ({e!r}).") from None
        try:
            message = json.loads(raw)
        except ValueError:
            raise ModelErrorException(f"The model upstream {self.config.messages_url} answered something that is "
                                      f"not JSON: {raw[:200]!r}") from None
        outcome = Outcome(stop_reason=message.get("stop_reason"))
        for block in message.get("content") or []:
            if block.get("type") == "tool_use":
                outcome.tool_calls.append(block.get("name", ""))
            elif block.get("type") == "text":
                outcome.text += block.get("text", "")
        usage = message.get("usage") or {}
        outcome.input_tokens, outcome.output_tokens = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        return message, outcome

    def open_stream(self, doc: dict):
        """Opened before the answer starts, so an HTTP error becomes Bedrock's error with its status."""
        return self._open(doc, stream=True)

    def events(self, resp, outcome: Outcome, started: float) -> Iterator[tuple[str, dict]]:
        """("chunk", event) for each Anthropic stream event as it arrives, or ("<exception member>", body) once
        if the stream fails; Bedrock's invocation metrics are added to message_stop as Bedrock adds them."""
        first_byte = None
        finished = False
        data: list[str] = []
        with resp:
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as e:  # a reset connection, or a chunk cut short
                    outcome.error = f"connection lost: {e}"
                    break
                if not line:
                    break
                if first_byte is None:
                    first_byte = time.monotonic()
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if text.startswith("data:"):
                    data.append(text[5:].lstrip(" "))
                    continue
                if text or not data:
                    continue  # `event:` lines repeat the JSON's own type; comments and ids are not needed
                payload, data = "\n".join(data), []
                try:
                    event = json.loads(payload)
                except ValueError:
                    outcome.error = f"an event that is not JSON: {payload[:200]}"
                    break
                kind = event.get("type")
                if kind == "ping":
                    continue
                if kind == "error":
                    error = event.get("error") or {}
                    outcome.error = f"{error.get('type', 'error')}: {error.get('message', '')}"
                    member = _STREAM_ERRORS.get(error.get("type"), "modelStreamErrorException")
                    yield member, {"message": f"The model upstream failed mid-stream: {outcome.error}"}
                    return
                self._note(event, outcome)
                if kind == "message_stop":
                    now = time.monotonic()
                    event["amazon-bedrock-invocationMetrics"] = {
                        "inputTokenCount": outcome.input_tokens, "outputTokenCount": outcome.output_tokens,
                        "invocationLatency": int((now - started) * 1000),
                        "firstByteLatency": int(((first_byte or now) - started) * 1000)}
                    finished = True
                yield "chunk", event
                if finished:
                    return
        if not finished:
            outcome.error = outcome.error or "the stream ended before message_stop"
            yield "modelStreamErrorException", {
                "message": f"The model upstream {self.config.messages_url} stopped mid-answer ({outcome.error}).",
                "originalMessage": outcome.error}

    @staticmethod
    def _note(event: dict, outcome: Outcome) -> None:
        kind = event.get("type")
        if kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            outcome.input_tokens = usage.get("input_tokens", 0) + usage.get("cache_read_input_tokens", 0) \
                + usage.get("cache_creation_input_tokens", 0)
            outcome.output_tokens = usage.get("output_tokens", 0)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                outcome.tool_calls.append(block.get("name", ""))
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and len(outcome.text) < 2000:
                outcome.text += delta.get("text", "")
        elif kind == "message_delta":
            outcome.stop_reason = (event.get("delta") or {}).get("stop_reason") or outcome.stop_reason
            usage = event.get("usage") or {}
            if "output_tokens" in usage:
                outcome.output_tokens = usage["output_tokens"]
