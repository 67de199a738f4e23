"""CloudFormation property values in an API request's shape, matched against botocore's models."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from moto.cloudformation.exceptions import ValidationError


@lru_cache(maxsize=None)
def input_shape(service: str, operation: str):
    """The botocore input shape of one operation (models are read once per process)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return model.operation_model(operation).input_shape


def invalid(message: str) -> ValidationError:
    return ValidationError(message=message)


def to_api(value: Any, shape, where: str) -> Any:
    """`value` (CloudFormation's PascalCase, scalars often as strings) in the API's shape.

    CloudFormation's property names are the API's member names in another case (`BuildSpec`,
    `buildspec`), so members are matched case-insensitively against the model, never listed by hand;
    a property with no counterpart is refused by name rather than dropped.
    """
    if shape is None:
        return value
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            raise invalid(f"Property {where} must be an object, not {type(value).__name__}.")
        by_lower = {name.lower(): name for name in shape.members}
        out = {}
        for key, item in value.items():
            member = by_lower.get(str(key).lower())
            if member is None:
                raise invalid(f"Property {where}.{key} is not one the emulator can apply "
                                    f"(no member of {shape.name} is called so).")
            out[member] = to_api(item, shape.members[member], f"{where}.{key}")
        return out
    if shape.type_name == "list":
        if not isinstance(value, list):
            raise invalid(f"Property {where} must be a list, not {type(value).__name__}.")
        return [to_api(item, shape.member, f"{where}[{i}]") for i, item in enumerate(value)]
    if shape.type_name in ("integer", "long") and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise invalid(f"Property {where} must be an integer, not {value!r}.") from None
    if shape.type_name == "boolean" and isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise invalid(f"Property {where} must be true or false, not {value!r}.")
        return value.lower() == "true"
    return value
