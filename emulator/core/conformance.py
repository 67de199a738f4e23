"""Every response held to botocore's output and error shapes, as it leaves the emulator (EMULATOR_CHECK_RESPONSES).

With `EMULATOR_CHECK_RESPONSES=<file>`, each response that breaks its operation's shape appends one JSON line
to the file: the operation, the status, and what is wrong (a missing required member, a wrong type, a length
or range outside the model's limits, a value outside an enum or its pattern, an error code the operation
cannot raise, a missing x-amzn-RequestId). The workshop test and the fuzz section of the proof suite run the
emulator with it and expect the file to stay empty. Bodies are checked as they are on the wire (wire names,
epoch-second timestamps), so what is checked is what botocore parses. Streamed bodies are not read.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

from botocore.model import OperationModel, Shape

log = logging.getLogger("emulator")

# Errors every AWS service may answer to any operation, beside the ones an operation models: the
# authentication and throttling errors of AWS's "Common errors" reference
# (https://docs.aws.amazon.com/general/latest/gr/api-retries.html lists the throttling ones; the common-errors
# page of each API reference the rest). A front end answers them before any operation is chosen.
COMMON_ERRORS = frozenset({
    "AccessDeniedException", "IncompleteSignatureException", "InvalidSignatureException",
    "MissingAuthenticationTokenException", "UnrecognizedClientException", "ExpiredTokenException",
    "InvalidClientTokenId", "ThrottlingException", "ServiceUnavailableException", "InternalFailure",
})

# Where botocore's model contradicts itself, no answer can fit it; (shape, member) -> what the emulator does.
MODEL_CONTRADICTIONS = {
    # AgentRuntime (an item of ListAgentRuntimes and ListAgentRuntimeVersions) lists `description` as required
    # with min length 1, yet CreateAgentRuntime's description is optional: a runtime made without one has no
    # description that fits. The emulator omits it (an empty string would break the minimum instead).
    ("AgentRuntime", "description"): "required, min 1, yet optional on create: omitted when the runtime has none",
}

# What the emulator answers on purpose outside a shape; (shape, member) -> the values let through, and why.
KNOWN_DEVIATIONS = {
    # The local model's id is `local-stand-in` (or the upstream's model name), a design contract (DESIGN.md: "its
    # model id is local-stand-in"); Bedrock's foundation-model ARN pattern wants `<provider>.<model>`.
    ("InferenceProfileModel", "modelArn"): re.compile(r"^arn:aws:bedrock:[a-z0-9-]+::foundation-model/[^.]+$"),
    ("FoundationModelDetails", "modelArn"): re.compile(r"^arn:aws:bedrock:[a-z0-9-]+::foundation-model/[^.]+$"),
}

_REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def shape_problems(shape: Shape, value: Any, path: str) -> list[str]:
    """Where a wire value (JSON as sent) breaks `shape`; empty when it fits."""
    problems: list[str] = []
    _check(shape, value, path, problems)
    return problems


def response_problems(op: OperationModel | None, status: int, headers: dict[str, str], body: bytes | None,
                      model=None) -> list[str]:
    """What is wrong with one response. `op` None: no operation matched (only errors fit then);
    `body` None: a streamed body, not read; `model` is the service model when `op` is None."""
    lower = {k.lower(): v for k, v in headers.items()}
    problems = []
    request_id = lower.get("x-amzn-requestid")
    if request_id is None:
        problems.append("no x-amzn-RequestId header")
    elif not _REQUEST_ID.match(request_id):
        problems.append(f"x-amzn-RequestId {request_id!r} is not a UUID")
    error_type = lower.get("x-amzn-errortype")
    if status >= 300 or error_type:
        problems.extend(_error_problems(op, model, status, error_type, body))
        return problems
    if op is None:
        return problems + [f"status {status} without an operation"]
    expected = int(op.http.get("responseCode", 200))
    shape = op.output_shape
    if shape is None:
        return problems
    status_member = next((n for n, m in shape.members.items() if m.serialization.get("location") == "statusCode"),
                         None)
    if status != expected and status_member is None:
        problems.append(f"status {status}; the model's responseCode is {expected}")
    payload = shape.serialization.get("payload")
    if payload is not None and shape.members[payload].type_name != "structure":
        return problems  # a blob or streaming payload: bytes as they are
    if body is None:
        return problems
    try:
        doc = json.loads(body) if body.strip() else {}
    except ValueError:
        return problems + ["the body is not JSON"]
    if payload is not None:
        return problems + shape_problems(shape.members[payload], doc, payload)
    for name in shape.required_members:
        member = shape.members[name]
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "header" and wire.lower() not in lower:
            problems.append(f"{shape.name}.{name}: required header {wire} missing")
    body_shape_members = {n: m for n, m in shape.members.items() if not m.serialization.get("location")}
    if not isinstance(doc, dict):
        return problems + ["the body is not a JSON object"]
    _check_members(shape, body_shape_members, doc, shape.name, problems)
    return problems


def _error_problems(op, model, status: int, error_type: str | None, body: bytes | None) -> list[str]:
    problems = []
    doc: Any = None
    if body is not None:
        try:
            doc = json.loads(body) if body.strip() else {}
        except ValueError:
            return [f"error {status}: the body is not JSON"]
    code = (error_type or "").split(":", 1)[0] or (doc.get("__type", "") if isinstance(doc, dict) else "")
    code = code.rsplit("#", 1)[-1]
    if not code:
        return [f"error {status} names no error code (x-amzn-ErrorType)"]
    service = op.service_model if op is not None else model
    shapes = {s.name: s for s in (op.error_shapes if op is not None else (service.error_shapes if service else []))}
    shape = shapes.get(code)
    if shape is None and code == "ValidationException" and service is not None:
        # AWS validates every operation's input against the model, so every operation can answer the service's
        # ValidationException, listed in its errors or not (DeleteAgentRuntime's list omits it); AWS's
        # common-errors reference lists it for all actions. Its body is held to the service's shape.
        shape = next((s for s in service.error_shapes if s.name == code), None)
    if shape is None:
        if code in COMMON_ERRORS or (op is None and code == "UnknownOperationException"):
            # (UnknownOperationException is what a rest-json front end answers for a route no operation has.)
            return problems
        where = op.name if op is not None else "this service"
        return [f"error {code}: {where} cannot raise it (its model's errors: {', '.join(sorted(shapes)) or 'none'})"]
    modelled = shape.metadata.get("error", {}).get("httpStatusCode")
    if modelled is not None and modelled != status:
        problems.append(f"error {code}: status {status}; its shape says {modelled}")
    if doc is not None:
        if not isinstance(doc, dict):
            return problems + [f"error {code}: the body is not a JSON object"]
        members = {n: m for n, m in shape.members.items() if not m.serialization.get("location")}
        _check_members(shape, members, {k: v for k, v in doc.items() if k != "__type"}, code, problems)
    return problems


def _check_members(shape: Shape, members: dict, doc: dict, path: str, problems: list[str]) -> None:
    wire_to_name = {m.serialization.get("name", n): n for n, m in members.items()}
    for name in shape.required_members:
        if name in members and members[name].serialization.get("name", name) not in doc \
                and (shape.name, name) not in MODEL_CONTRADICTIONS:
            problems.append(f"{path}.{name}: required but missing")
    for wire, item in doc.items():
        name = wire_to_name.get(wire)
        if name is None:
            problems.append(f"{path}.{wire}: not in the model")
        elif item is not None:
            allowed = KNOWN_DEVIATIONS.get((shape.name, name))
            if allowed is not None and isinstance(item, str) and allowed.match(item):
                continue
            _check(members[name], item, f"{path}.{name}", problems)


def _sized(shape: Shape, size: int, unit: str, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if "min" in meta and size < meta["min"]:
        problems.append(f"{path}: {size} {unit}, fewer than the minimum {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{path}: {size} {unit}, more than the maximum {meta['max']}")


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        if shape.metadata.get("union") and len([v for v in value.values() if v is not None]) != 1:
            problems.append(f"{path}: a union with {len(value)} members set; exactly one must be")
        _check_members(shape, dict(shape.members), value, path, problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        _sized(shape, len(value), "items", path, problems)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        _sized(shape, len(value), "entries", path, problems)
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key>", problems)
            _check(shape.value, item, f"{path}.{key}", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        _sized(shape, len(value), "characters", path, problems)
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value[:80]!r} is not one of {list(shape.enum)}")
        pattern = shape.metadata.get("pattern")
        if pattern and len(value) <= 10_000:
            try:
                ok = re.fullmatch(pattern, value, flags=re.DOTALL) is not None
            except re.error:
                ok = True  # a Java-only construct Python cannot compile: left unchecked
            if not ok:
                problems.append(f"{path}: {value[:80]!r} does not match {pattern}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {type(value).__name__}")
            return
        _ranged(shape, value, path, problems)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{path}: expected a finite number, got {value!r}")
            return
        _ranged(shape, value, path, problems)
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean, got {type(value).__name__}")
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            problems.append(f"{path}: expected a timestamp, got {type(value).__name__}")
        elif isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{path}: {value!r} is not an ISO 8601 timestamp")
    elif kind == "blob":
        if not isinstance(value, str):
            problems.append(f"{path}: expected base64 text, got {type(value).__name__}")


def _ranged(shape: Shape, value, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if "min" in meta and value < meta["min"]:
        problems.append(f"{path}: {value} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        problems.append(f"{path}: {value} is above the maximum {meta['max']}")


class ResponseChecker:
    """Appends one JSON line per response that breaks its shape to a file; safe to share between threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._lock = threading.Lock()

    def check(self, method: str, path: str, op: OperationModel | None, status: int, headers: dict[str, str],
              body: bytes | None, model=None) -> None:
        try:
            problems = response_problems(op, status, headers, body, model)
        except Exception as exc:  # the checker must never cost the client its answer; the failure is a finding
            log.exception("the response checker failed on %s %s", method, path)
            problems = [f"the checker itself failed: {exc!r}"]
        if not problems:
            return
        line = json.dumps({"time": round(time.time(), 3), "method": method, "path": path[:300],
                           "operation": op.name if op is not None else None, "status": status,
                           "problems": problems[:20]})
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
