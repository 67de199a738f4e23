"""AgentCore Memory's errors, one class per AWS error code (the shared ones live in core.errors)."""
from __future__ import annotations

from ..core.errors import (  # noqa: F401  (re-exported: this service raises exactly these)
    ConflictException,
    ResourceNotFoundException,
    ServiceError,
    ServiceQuotaExceededException,
    ValidationException,
)


class InvalidInputException(ServiceError):
    """The data plane's answer to input that is well-formed but unusable."""

    code = "InvalidInputException"
    status = 400
