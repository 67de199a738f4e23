"""The errors a judged request can get, one class per AWS error code, named exactly as AWS names them.

Each service answers in its own protocol (emulator/iam/responses.py renders them); the code and the
message are AWS's. Message shape of a deny: IAM User Guide, "Troubleshoot access denied error
messages" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
"""
from __future__ import annotations


class IamError(Exception):
    code = "AccessDenied"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AccessDeniedException(IamError):
    """Every JSON and rest-json service's deny (SSM, Logs, ECR, Bedrock, AgentCore)."""

    code = "AccessDeniedException"


class AccessDenied(IamError):
    """S3's (and the query services') deny."""

    code = "AccessDenied"


class ExpiredTokenException(IamError):
    code = "ExpiredTokenException"


class ExpiredToken(IamError):
    """S3's name for an expired session token."""

    code = "ExpiredToken"


class UnrecognizedClientException(IamError):
    code = "UnrecognizedClientException"


class InvalidToken(IamError):
    """S3's name for a session token that does not belong to the access key."""

    code = "InvalidToken"


def denied_message(principal_arn: str, action: str, resource: str, explicit: bool) -> str:
    why = ("with an explicit deny in an identity-based policy" if explicit
           else f"because no identity-based policy allows the {action} action")
    return f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {why}"
