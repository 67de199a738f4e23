"""bedrock-runtime's errors, named and numbered as botocore's bedrock-runtime model lists them."""
from __future__ import annotations

from ..core.errors import AccessDeniedException, ResourceNotFoundException, ServiceError, ValidationException

__all__ = ["AccessDeniedException", "ModelErrorException", "ModelTimeoutException", "ResourceNotFoundException",
           "ServiceUnavailableException", "ThrottlingException", "ValidationException"]


class ThrottlingException(ServiceError):
    code = "ThrottlingException"
    status = 429


class ModelTimeoutException(ServiceError):
    code = "ModelTimeoutException"
    status = 408


class ServiceUnavailableException(ServiceError):
    code = "ServiceUnavailableException"
    status = 503


class ModelErrorException(ServiceError):
    """The model failed while processing the request (424); `originalStatusCode` is the model's own status."""

    code = "ModelErrorException"
    status = 424
