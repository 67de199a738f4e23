"""Answers checked against botocore's output shapes: members, types, required, enums, patterns and limits.

Written here rather than borrowed from the emulator's own validation, so the emulator is not its own judge.
"""
from __future__ import annotations

import datetime as dt
import re


# Where botocore's model contradicts itself, no answer can fit it: (shape, member) -> why, and what the emulator does.
MODEL_CONTRADICTIONS = {
    # AgentRuntime (an item of ListAgentRuntimes and ListAgentRuntimeVersions) has `description` required
    # with min 1, yet CreateAgentRuntime's description is optional: a runtime made without one has no
    # description that fits. The emulator omits it (as the length rule asks), so the required rule is waived.
    ("AgentRuntime", "description"): "required, min 1, yet optional on create",
}


def output_problems(client, operation: str, response: dict) -> list[str]:
    """Where `response` breaks the operation's output shape; empty when it fits."""
    shape = client.meta.service_model.operation_model(operation).output_shape
    problems: list[str] = []
    _check(shape, {k: v for k, v in response.items() if k != "ResponseMetadata"}, shape.name, problems)
    return problems


def assert_output_shape(client, operation: str, response: dict) -> None:
    problems = output_problems(client, operation, response)
    assert not problems, f"{operation}: " + "; ".join(problems)


def _sized(shape, size: int, unit: str, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if "min" in meta and size < meta["min"]:
        problems.append(f"{path}: {size} {unit}, fewer than the minimum {meta['min']}")
    if "max" in meta and size > meta["max"]:
        problems.append(f"{path}: {size} {unit}, more than the maximum {meta['max']}")


def _check(shape, value, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if name not in value and (shape.name, name) not in MODEL_CONTRADICTIONS:
                problems.append(f"{path}.{name}: required but missing")
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"{path}.{name}: not in the model")
            elif item is not None:
                _check(shape.members[name], item, f"{path}.{name}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        _sized(shape, len(value), "items", path, problems)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map")
            return
        _sized(shape, len(value), "entries", path, problems)
        for key, item in value.items():
            _check(shape.value, item, f"{path}.{key}", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        _sized(shape, len(value), "characters", path, problems)
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in {shape.enum}")
        pattern = shape.metadata.get("pattern")
        if pattern and re.fullmatch(pattern, value) is None:
            problems.append(f"{path}: {value!r} does not match {pattern}")
    elif kind == "timestamp":
        if not isinstance(value, dt.datetime):
            problems.append(f"{path}: expected a timestamp")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer")
            return
        _sized(shape, value, "(value)", path, problems)
    elif kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"{path}: expected a number")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean")
    elif kind == "blob":
        if not isinstance(value, (bytes, bytearray)) and not hasattr(value, "read"):
            problems.append(f"{path}: expected bytes")
