"""Serve a rest-json AWS service from botocore's own model: routes, input parsing, validation, output.

Each emulated service supplies plain handlers, `handler(params, ctx) -> dict`, keyed by operation
name; this module turns HTTP requests into those `params` exactly as botocore serialised them and
turns the returned dicts back into the wire shape botocore parses. Nothing about an operation's
route or shape is written by hand: it is read from `botocore`'s service model.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

from .errors import ServiceError, UnknownOperationException, ValidationException

_session = botocore.session.get_session()


@dataclass
class RequestContext:
    """What a handler may need beyond its parameters."""

    account_id: str
    region: str
    operation: str
    headers: dict[str, str]
    raw_body: bytes


@dataclass
class StreamingResult:
    """A handler's answer whose body is sent as it is produced (event streams, agent output)."""

    chunks: Iterable[bytes]
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes | Iterator[bytes]


Handler = Callable[[dict, RequestContext], Any]


@dataclass
class _Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern
    static_query: dict[str, str]
    literal_chars: int


def _compile(uri: str) -> tuple[re.Pattern, dict[str, str], int]:
    path, _, query = uri.partition("?")
    static_query = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        static_query[key] = value
    regex = ""
    literal = 0
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            name = piece[1:-1]
            if name.endswith("+"):
                regex += f"(?P<{name[:-1]}>.+)"
            else:
                regex += f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(piece)
            literal += len(piece)
    return re.compile(f"^{regex}/?$"), static_query, literal


class RestJsonService:
    """One HTTP surface for one or more botocore service models that share a signing name."""

    def __init__(self, service_names: list[str], handlers: dict[str, Handler]):
        self.models = [_session.get_service_model(name) for name in service_names]
        self.handlers = handlers
        self.routes: list[_Route] = []
        for model in self.models:
            for name in model.operation_names:
                op = model.operation_model(name)
                pattern, static_query, literal = _compile(op.http["requestUri"])
                self.routes.append(_Route(op, op.http["method"], pattern, static_query, literal))
        # Prefer the most specific route, as AWS's own routers do.
        self.routes.sort(key=lambda r: (-r.literal_chars, -len(r.static_query)))
        self._validator = ParamValidator()

    def operation_names(self) -> list[str]:
        return sorted(self.handlers)

    # -- routing ---------------------------------------------------------------------------
    def match(self, method: str, raw_path: str, query: dict[str, list[str]]):
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.match(raw_path)
            if not m:
                continue
            if any(key not in query for key in route.static_query):
                continue
            return route.operation, {k: unquote(v) for k, v in m.groupdict().items()}
        return None, None

    def handle(self, method: str, raw_path: str, query_string: str, headers: dict[str, str],
               body: bytes, account_id: str, region: str) -> HttpResponse | None:
        """Answer the request, or None when no operation of these models has this route."""
        query = parse_qs(query_string, keep_blank_values=True)
        op, path_params = self.match(method, raw_path, query)
        if op is None:
            return None
        try:
            handler = self.handlers.get(op.name)
            if handler is None:
                raise UnknownOperationException(
                    f"The emulator does not implement {op.name} of {op.service_model.service_name}."
                )
            params = self._parse(op, path_params, query, headers, body)
            ctx = RequestContext(account_id, region, op.name, headers, body)
            result = handler(params, ctx)
            if isinstance(result, StreamingResult):
                return HttpResponse(result.status, {"Content-Type": result.content_type, **result.headers},
                                    iter(result.chunks))
            return self._serialize(op, result or {})
        except ServiceError as exc:
            return error_response(exc)

    # -- input -----------------------------------------------------------------------------
    def _parse(self, op: OperationModel, path_params: dict, query: dict, headers: dict,
               body: bytes) -> dict:
        shape = op.input_shape
        if shape is None:
            return {}
        lower_headers = {k.lower(): v for k, v in headers.items()}
        params: dict[str, Any] = {}
        payload_name = shape.serialization.get("payload")
        body_members = {}
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                if wire in path_params:
                    params[name] = _coerce(member, path_params[wire])
            elif location == "querystring":
                if member.type_name == "list":
                    if wire in query:
                        params[name] = [_coerce(member.member, v) for v in query[wire]]
                elif wire in query:
                    params[name] = _coerce(member, query[wire][0])
            elif location == "header":
                if wire.lower() in lower_headers:
                    params[name] = _coerce(member, lower_headers[wire.lower()])
            elif location == "headers":
                prefix = wire.lower()
                found = {k[len(prefix):]: v for k, v in lower_headers.items() if k.startswith(prefix)}
                if found:
                    params[name] = found
            elif name == payload_name:
                if member.type_name in ("blob", "string"):
                    params[name] = body if member.type_name == "blob" else body.decode("utf-8")
                elif member.type_name == "structure" and body:
                    # A structure payload is the whole JSON body (e.g. InvokeAgentRuntimeCommand's `body`).
                    params[name] = _from_json(member, _json_object(body))
            else:
                body_members[name] = member
        if body_members and body:
            doc = _json_object(body)
            for name, member in body_members.items():
                wire = member.serialization.get("name", name)
                if wire in doc:
                    params[name] = _from_json(member, doc[wire])
        self._validate(params, shape)
        return params

    def _validate(self, params: dict, shape: Shape) -> None:
        report = self._validator.validate(params, shape)
        if report.has_errors():
            # generate_report() is one line per problem (the "Parameter validation failed" header
            # is added by botocore's exception, not the report): answer with the first.
            first = report.generate_report().splitlines()[:1] or ["invalid input"]
            raise ValidationException(first[0].strip())
        problem = _check_limits(params, shape, "")
        if problem:
            raise ValidationException(problem)

    # -- output ----------------------------------------------------------------------------
    def _serialize(self, op: OperationModel, result: dict) -> HttpResponse:
        shape = op.output_shape
        headers = {"Content-Type": "application/json"}
        if shape is None:
            return HttpResponse(200, headers, b"{}")
        payload_name = shape.serialization.get("payload")
        doc: dict[str, Any] = {}
        status = int(op.http.get("responseCode", 200))  # e.g. 202 for CreateAgentRuntime, 201 for CreateEvent
        body: bytes | Iterator[bytes] | None = None
        for name, member in shape.members.items():
            if name not in result or result[name] is None:
                continue
            value = result[name]
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "header":
                headers[wire] = _header_value(member, value)
            elif location == "statusCode":
                status = int(value)
            elif name == payload_name:
                if isinstance(value, (bytes, bytearray)):
                    body = bytes(value)
                elif isinstance(value, str):
                    body = value.encode("utf-8")
                elif isinstance(value, dict):
                    body = json.dumps(_to_json(member, value)).encode("utf-8")
                else:
                    body = iter(value)
            else:
                doc[wire] = _to_json(member, value)
        if body is None:
            body = json.dumps(doc).encode("utf-8")
        return HttpResponse(status, headers, body)


def error_response(exc: ServiceError) -> HttpResponse:
    return HttpResponse(
        exc.status,
        {"Content-Type": "application/json", "x-amzn-ErrorType": exc.code},
        json.dumps({"message": exc.message}).encode("utf-8"),
    )


# -- value conversion -------------------------------------------------------------------------
def _coerce(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean":
            return text.lower() == "true"
        if kind == "timestamp":
            return _parse_timestamp(text)
    except ValueError:
        raise ValidationException(f"{shape.name} value {text!r} is not a valid {kind}.") from None
    return text


def _parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    text = str(value)
    try:
        return dt.datetime.fromtimestamp(float(text), tz=dt.timezone.utc)
    except ValueError:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _json_object(body: bytes) -> dict:
    """A request body that must be one JSON object, or the ValidationException AWS answers."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise ValidationException("The request body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise ValidationException("The request body must be a JSON object.")
    return doc


def _from_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        if shape.is_document_type:
            return value
        out = {}
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if wire in value:
                out[name] = _from_json(member, value[wire])
        return out
    if kind == "list" and isinstance(value, list):
        return [_from_json(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        try:
            return _parse_timestamp(value)
        except ValueError:
            raise ValidationException(f"{shape.name} value {value!r} is not a timestamp.") from None
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value)
        except ValueError:
            raise ValidationException(f"{shape.name} is not valid base64.") from None
    return value


def _to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict) and not shape.is_document_type:
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[member.serialization.get("name", name)] = _to_json(member, value[name])
        return out
    if kind == "list" and isinstance(value, (list, tuple)):
        return [_to_json(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _to_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, dt.datetime):
            if shape.serialization.get("timestampFormat") == "iso8601":
                return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
            return value.timestamp()
        return value
    if kind == "blob" and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _header_value(shape: Shape, value: Any) -> str:
    if shape.type_name == "timestamp" and isinstance(value, dt.datetime):
        return value.strftime("%a, %d %b %Y %H:%M:%S GMT")
    if shape.type_name == "boolean":
        return "true" if value else "false"
    return str(value)


def _check_limits(value: Any, shape: Shape, path: str) -> str | None:
    """Length, range, enum and pattern limits that botocore's client-side validation leaves to AWS."""
    label = path or shape.name
    meta = shape.metadata
    if value is None:
        return None
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                problem = _check_limits(value[name], member, f"{path}.{name}" if path else name)
                if problem:
                    return problem
        return None
    if shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            return f"{label} has {len(value)} items; at most {meta['max']} are allowed."
        for i, item in enumerate(value):
            problem = _check_limits(item, shape.member, f"{label}[{i}]")
            if problem:
                return problem
        return None
    if shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            problem = _check_limits(item, shape.value, f"{label}.{key}")
            if problem:
                return problem
        return None
    if shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            return f"{label} is {len(value)} characters long; at most {meta['max']} are allowed."
        if shape.enum and value not in shape.enum:
            return f"{label} must be one of {', '.join(shape.enum)}; got {value!r}."
        pattern = meta.get("pattern")
        if pattern:
            try:
                ok = re.fullmatch(pattern, value, flags=re.DOTALL) is not None
            except re.error:
                ok = True  # a Java-only regex construct; leave the check to AWS
            if not ok:
                return f"{label} value {value!r} does not match the pattern {pattern}."
        return None
    if shape.type_name in ("integer", "long") and isinstance(value, int):
        if "min" in meta and value < meta["min"]:
            return f"{label} is {value}; the minimum is {meta['min']}."
        if "max" in meta and value > meta["max"]:
            return f"{label} is {value}; the maximum is {meta['max']}."
    return None
