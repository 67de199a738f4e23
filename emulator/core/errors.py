"""AWS-shaped errors: a code, a message, an HTTP status (4xx unless the fault is ours)."""
from __future__ import annotations


class ServiceError(Exception):
    """An error answered to the client as AWS answers it: `x-amzn-ErrorType` and `{"message"}`."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class ValidationException(ServiceError):
    """Input AWS refuses. AgentCore's model (ValidationException in both botocore models) requires a `reason`
    from its enum and carries a `fieldList` of {name, message} naming the members at fault; `fields` holds them.
    `reason` None means: FieldValidationFailed, or CannotParse when the body itself could not be read.
    """

    code = "ValidationException"
    status = 400

    def __init__(self, message: str, *, fields: list[str] | None = None, reason: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.fields = list(fields or [])
        self.reason = reason


def cannot_parse(message: str) -> ValidationException:
    """A body or header that could not be read at all (reason CannotParse in AgentCore's model)."""
    return ValidationException(message, reason="CannotParse")


class ResourceNotFoundException(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


class ConflictException(ServiceError):
    code = "ConflictException"
    status = 409


class ServiceQuotaExceededException(ServiceError):
    code = "ServiceQuotaExceededException"
    status = 402


class AccessDeniedException(ServiceError):
    code = "AccessDeniedException"
    status = 403


class UnknownOperationException(ServiceError):
    code = "UnknownOperationException"
    status = 400


class RuntimeClientError(ServiceError):
    """What InvokeAgentRuntime answers when the agent itself fails (AWS: 424)."""

    code = "RuntimeClientError"
    status = 424
