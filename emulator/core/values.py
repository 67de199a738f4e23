"""Values between the wire and botocore's shapes: JSON bodies, strings, numbers, timestamps and blobs parsed
into what a handler gets, turned back into what botocore parses, and checked against the model's limits.

Kept apart from restjson.py (routes, requests, responses): these rules are about one value and its shape.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
from typing import Any

from botocore.model import Shape

from .errors import ValidationException, cannot_parse


def _shorten(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The path of the first string (or map key) holding a lone UTF-16 surrogate, or None."""
    if isinstance(value, str):
        return (path or "input") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                return path or "input"
            found = _lone_surrogate(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{i}]")
            if found:
                return found
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


# -- value conversion -------------------------------------------------------------------------
def _coerce(shape: Shape, text: str, label: str) -> Any:
    """A path, query or header value as the member's type; an error names the member (`label`)."""
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if kind == "timestamp":
            return _parse_timestamp(text)
    except (ValueError, OverflowError, OSError):
        raise ValidationException(f"{label} value {_shorten(repr(text), 100)} is not a valid {kind}.",
                                  fields=[label]) from None
    return text


def _parse_timestamp(value: Any) -> dt.datetime:
    """Epoch seconds (what boto3 sends) or ISO 8601. Raises ValueError, OverflowError or OSError for values
    no datetime holds (a year beyond 9999, NaN, infinity): callers turn those into errors naming the member."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    if not isinstance(value, str):
        raise ValueError(value)
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    except ValueError:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _refuse_constant(name: str):
    raise ValueError(name)


def _json_object(body: bytes, payload: str | None = None) -> dict:
    """A request body that must be one JSON object, or the ValidationException AWS answers (CannotParse).
    `payload` is the member the whole body is (InvokeAgentRuntimeCommand's `body`), named when it is no object."""
    try:
        # NaN and Infinity are not JSON (RFC 8259), though Python's decoder reads them by default.
        doc = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise cannot_parse("The request body is nested too deeply to be parsed as JSON.") from None
    except ValueError:
        raise cannot_parse("The request body is not valid JSON.") from None
    if not isinstance(doc, dict):
        if payload:
            raise ValidationException(f"{payload} (the request body) must be a JSON object.", fields=[payload],
                                      reason="CannotParse")
        raise cannot_parse("The request body must be a JSON object.")
    return doc


def _from_json(shape: Shape, value: Any, path: str) -> Any:
    """A JSON value as the member's Python value; `path` names the member in errors (e.g. records[0].content)."""
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
                out[name] = _from_json(member, value[wire], f"{path}.{name}")
        return out
    if kind == "list" and isinstance(value, list):
        return [_from_json(shape.member, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v, f"{path}.{k}") for k, v in value.items()}
    if kind == "timestamp":
        try:
            return _parse_timestamp(value)
        except (ValueError, OverflowError, OSError):
            raise ValidationException(f"{path} value {_shorten(repr(value), 100)} is not a timestamp AWS accepts: "
                                      "send epoch seconds between years 1 and 9999.", fields=[path]) from None
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ValidationException(f"{path} is not valid base64.", fields=[path]) from None
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


def _check_limits(value: Any, shape: Shape, path: str) -> tuple[str, str] | None:
    """(member path, message) for the first length, range, enum or pattern limit broken, or None.

    These are the limits botocore's client-side validation leaves to AWS; integers and longs are also held to
    the 32 and 64 bits AWS stores them in (a larger one reached SQLite and failed there).
    """
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
            return label, _shorten(f"{label} has {len(value)} items; at most {meta['max']} are allowed.")
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
    if shape.type_name in ("float", "double") and isinstance(value, float) and not math.isfinite(value):
        return label, f"{label} must be a finite number."
    if shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            return label, _shorten(f"{label} is {len(value)} characters long; at most {meta['max']} are allowed.")
        if shape.enum and value not in shape.enum:
            return label, _shorten(f"{label} must be one of {', '.join(shape.enum)}; got {value!r}.")
        pattern = meta.get("pattern")
        if pattern:
            try:
                ok = re.fullmatch(pattern, value, flags=re.DOTALL) is not None
            except re.error:
                ok = True  # a Java-only regex construct; leave the check to AWS
            if not ok:
                return label, f"{label} value {_shorten(repr(value), 200)} does not match the pattern {pattern}."
        return None
    if shape.type_name in ("integer", "long", "float", "double") and isinstance(value, bool):
        # botocore's validator takes True for an integer (bool is an int in Python); JSON's true is no number.
        return label, f"{label} must be a number, not {str(value).lower()}."
    if shape.type_name in ("integer", "long") and isinstance(value, int):
        bits = 31 if shape.type_name == "integer" else 63
        if not -(2 ** bits) <= value < 2 ** bits:
            return label, f"{label} does not fit in a {bits + 1}-bit {shape.type_name}."
        if "min" in meta and value < meta["min"]:
            return label, _shorten(f"{label} is {value}; the minimum is {meta['min']}.")
        if "max" in meta and value > meta["max"]:
            return label, _shorten(f"{label} is {value}; the maximum is {meta['max']}.")
    return None
