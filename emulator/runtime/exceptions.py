"""AgentCore Runtime errors, named and numbered as AWS names them (see botocore's error shapes)."""
from __future__ import annotations

from ..core.errors import (  # noqa: F401  (re-exported: one place to import the service's errors from)
    ConflictException,
    ResourceNotFoundException,
    RuntimeClientError,
    ServiceError,
    ValidationException,
)


class RetryableConflictException(ServiceError):
    """The resource is busy changing state; the caller may try again shortly (409).

    botocore's model marks this error retryable, so boto3 retries it by itself in the standard and
    adaptive retry modes (the helpers use standard): a short transition is ridden out by the client.
    """

    code = "RetryableConflictException"
    status = 409


def runtime_not_found(runtime_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"AgentRuntime not found: {runtime_id}. "
                                     "List the runtimes of this region with ListAgentRuntimes.")


def endpoint_not_found(runtime_id: str, name: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"AgentRuntimeEndpoint {name} not found for runtime {runtime_id}.")
