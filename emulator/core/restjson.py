"""Serve a rest-json AWS service from botocore's own model: routes, input parsing, validation, output.

Each emulated service supplies plain handlers, `handler(params, ctx) -> dict`, keyed by operation
name; this module turns HTTP requests into those `params` exactly as botocore serialised them and
turns the returned dicts back into the wire shape botocore parses. Nothing about an operation's
route or shape is written by hand: it is read from `botocore`'s service model.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, unquote

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

from .errors import ServiceError, UnknownOperationException, ValidationException, cannot_parse
from .values import _lone_surrogate, _coerce, _json_object, _from_json, _to_json, _header_value, _check_limits, _shorten

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
    # The operation that answered (None when no route matched): what the response is checked against.
    operation: OperationModel | None = None


Handler = Callable[[dict, RequestContext], Any]


@dataclass
class _Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern
    static_query: dict[str, str]
    literal_chars: int
    # The same route with every label allowed to be empty: finds a request that left a path member empty.
    loose: re.Pattern


def _compile(uri: str, *, loose: bool = False) -> tuple[re.Pattern, dict[str, str], int]:
    path, _, query = uri.partition("?")
    static_query = {}
    for part in filter(None, query.split("&")):
        key, _, value = part.partition("=")
        static_query[key] = value
    regex = ""
    literal = 0
    # A route's own trailing slash may be left out, but no slash is added: with "/?" after a route's "/",
    # PUT /runtimes// (an empty agentRuntimeId for UpdateAgentRuntime) matched CreateAgentRuntime's PUT /runtimes/,
    # and .../sessions/ (ListEvents with an empty sessionId) matched ListSessions' .../sessions.
    trailing = path.endswith("/") and len(path) > 1
    trimmed = path[:-1] if trailing else path
    for piece in re.split(r"(\{[^}]+\})", trimmed):
        if piece.startswith("{"):
            name = piece[1:-1]
            if name.endswith("+"):
                regex += f"(?P<{name[:-1]}>.{'*' if loose else '+'})"
            else:
                regex += f"(?P<{name}>[^/]{'*' if loose else '+'})"
        else:
            regex += re.escape(piece)
            literal += len(piece)
    return re.compile(f"^{regex}{'/?' if trailing else ''}$"), static_query, literal


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
                loose, _, _ = _compile(op.http["requestUri"], loose=True)
                self.routes.append(_Route(op, op.http["method"], pattern, static_query, literal, loose))
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
            # Percent-encoded bytes that are not UTF-8 stay as lone surrogates (surrogateescape), which
            # _validate refuses naming the member, rather than turning silently into U+FFFD.
            return route.operation, {k: unquote(v, errors="surrogateescape") for k, v in m.groupdict().items()}
        return None, None

    def empty_path_members(self, method: str, raw_path: str, query: dict[str, list[str]]):
        """(operation, members left empty) for a request whose route matches only with an empty path label."""
        for route in self.routes:
            if route.method != method or any(key not in query for key in route.static_query):
                continue
            m = route.loose.match(raw_path)
            if m:
                empty = [label for label, value in m.groupdict().items() if not value]
                if empty:
                    return route.operation, [_member_for_label(route.operation, label) for label in empty]
        return None, []

    def handle(self, method: str, raw_path: str, query_string: str, headers: dict[str, str],
               body: bytes, account_id: str, region: str) -> HttpResponse | None:
        """Answer the request, or None when no operation of these models has this route."""
        query = parse_qs(query_string, keep_blank_values=True, errors="surrogateescape")
        op, path_params = self.match(method, raw_path, query)
        if op is None:
            op, empty = self.empty_path_members(method, raw_path, query)
            if op is None:
                return None
            names = ", ".join(empty)
            response = error_response(ValidationException(
                f"{names} must not be empty: the path of {op.name} has an empty segment where {names} belongs.",
                fields=empty), op.service_model)
            response.operation = op
            return response
        try:
            handler = self.handlers.get(op.name)
            if handler is None:
                raise UnknownOperationException(
                    f"The emulator does not implement {op.name} of {op.service_model.service_name}."
                )
            try:
                params = self._parse(op, path_params, query, headers, body)
            except RecursionError:
                raise cannot_parse("The request is nested too deeply to be parsed.") from None
            ctx = RequestContext(account_id, region, op.name, headers, body)
            try:
                result = handler(params, ctx)
            except ValidationException as exc:
                if not exc.fields:
                    exc.fields = _members_named(op, exc.message)
                raise
            if isinstance(result, StreamingResult):
                return HttpResponse(result.status, {"Content-Type": result.content_type, **result.headers},
                                    iter(result.chunks), op)
            response = self._serialize(op, result or {})
        except ServiceError as exc:
            response = error_response(exc, op.service_model)
        response.operation = op
        return response

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
                    params[name] = _coerce(member, path_params[wire], name)
            elif location == "querystring":
                if member.type_name == "list":
                    if wire in query:
                        params[name] = [_coerce(member.member, v, name) for v in query[wire]]
                elif wire in query:
                    params[name] = _coerce(member, query[wire][0], name)
            elif location == "header":
                if wire.lower() in lower_headers:
                    params[name] = _coerce(member, lower_headers[wire.lower()], name)
            elif location == "headers":
                prefix = wire.lower()
                found = {k[len(prefix):]: v for k, v in lower_headers.items() if k.startswith(prefix)}
                if found:
                    params[name] = found
            elif name == payload_name:
                if member.type_name == "blob":
                    params[name] = body
                elif member.type_name == "string":
                    try:
                        params[name] = body.decode("utf-8")
                    except UnicodeDecodeError:
                        raise cannot_parse(f"{name} (the request body) is not valid UTF-8.") from None
                elif member.type_name == "structure" and body:
                    # A structure payload is the whole JSON body (e.g. InvokeAgentRuntimeCommand's `body`).
                    params[name] = _from_json(member, _json_object(body, name), name)
            else:
                body_members[name] = member
        if body_members and body:
            doc = _json_object(body)
            for name, member in body_members.items():
                wire = member.serialization.get("name", name)
                if wire in doc:
                    params[name] = _from_json(member, doc[wire], name)
        self._validate(params, shape)
        return params

    def _validate(self, params: dict, shape: Shape) -> None:
        surrogate = _lone_surrogate(params, "")
        if surrogate:
            # Python's JSON decoder accepts "\ud800" alone; no UTF-8 text (SQLite, the tokenizer) can hold it.
            raise ValidationException(f"{surrogate} is not valid Unicode text: it holds a lone UTF-16 surrogate "
                                      "(or percent-encoded bytes that are not UTF-8); send UTF-8 text.",
                                      fields=[surrogate])
        report = self._validator.validate(params, shape)
        if report.has_errors():
            # Each of the report's errors is (kind, parent path, details); the message is botocore's own line for
            # the first, with values cut short (a rejected 1 MB string need not come back whole).
            kind, parent, details = report._errors[0]
            member = details.get("required_name") or details.get("unknown_param") if kind in (
                "missing required field", "unknown field") else None
            # botocore names a top-level member ".name" (its root is the empty string).
            field_name = (".".join(p for p in (parent, member) if p) if member else parent).lstrip(".")
            line = report._format_error(report._errors[0])
            raise ValidationException(_shorten(line), fields=[field_name or shape.name])
        problem = _check_limits(params, shape, "")
        if problem:
            field_name, message = problem
            raise ValidationException(message, fields=[field_name])

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


def error_response(exc: ServiceError, model=None) -> HttpResponse:
    """The error as AWS's rest-json services send it; `model` (a botocore ServiceModel) adds what its error shape
    requires beyond `message`: AgentCore's ValidationException has a required `reason` and a `fieldList`."""
    doc: dict[str, Any] = {"message": exc.message}
    if isinstance(exc, ValidationException) and model is not None:
        shape = _error_shape(model, exc.code)
        if shape is not None and "reason" in shape.members:
            enum = shape.members["reason"].enum or []
            reason = exc.reason or "FieldValidationFailed"
            doc["reason"] = reason if (not enum or reason in enum) else "FieldValidationFailed"
        if shape is not None and "fieldList" in shape.members and exc.fields:
            doc["fieldList"] = [{"name": name, "message": exc.message} for name in exc.fields]
    return HttpResponse(
        exc.status,
        {"Content-Type": "application/json", "x-amzn-ErrorType": exc.code},
        json.dumps(doc).encode("utf-8"),
    )


def _error_shape(model, code: str) -> Shape | None:
    for shape in model.error_shapes:
        if shape.name == code or shape.metadata.get("error", {}).get("code") == code:
            return shape
    return None


def _member_for_label(op: OperationModel, label: str) -> str:
    """The input member a URI label carries (labels are wire names)."""
    for name, member in op.input_shape.members.items():
        if member.serialization.get("location") == "uri" and member.serialization.get("name", name) == label:
            return name
    return label


def _members_named(op: OperationModel, message: str) -> list[str]:
    """The input members a handler's ValidationException names in its message, for its fieldList."""
    shape = op.input_shape
    if shape is None:
        return []

    def named(name: str) -> bool:
        return re.search(rf"(?<![A-Za-z0-9_.]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None

    top = [name for name in shape.members if named(name)]
    if top:
        return top
    # A rule about a member inside a structure (InvokeAgentRuntimeCommand's body.timeout): its path.
    return [f"{name}.{inner}" for name, member in shape.members.items() if member.type_name == "structure"
            for inner in member.members if named(inner)]
