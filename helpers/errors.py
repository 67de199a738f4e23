"""One family of errors for the workshop: each names what failed, its state, and what to do next."""
from __future__ import annotations


class WorkshopError(Exception):
    """The root of every error helpers raise on purpose. Its message is one line meant for a person."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: this one line (boto3's error stays in __cause__).

        IPython still publishes it as the cell's error output, so papermill and nbclient see the
        cell fail with this class's name and message.
        """
        return [f"{type(self).__name__}: {self}"]


class ConfigError(WorkshopError):
    """A setting is missing or has a value the workshop cannot use."""


class EmulatorError(WorkshopError):
    """The local emulator could not be reached or started."""


class StackError(WorkshopError):
    """The CloudFormation stack could not be deployed, or is in a state that needs a person."""


class WaitTimeout(WorkshopError):
    """Something did not reach the state awaited in time."""


class MemoryServiceError(WorkshopError):
    """AgentCore Memory could not be created, found or read."""


class ImageBuildError(WorkshopError):
    """The agent image could not be built or pushed."""


class AgentRuntimeError(WorkshopError):
    """The AgentCore Runtime could not be created, updated or found."""


class InvocationError(WorkshopError):
    """The agent could not be invoked, or answered with a failure."""


def aws_error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (or of its cause), else None."""
    seen = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return response.get("Error", {}).get("Code")
        seen = seen.__cause__
    return None


# -- AWS's own errors, as people meet them -------------------------------------------------------
_AWS_HINTS = {
    "AccessDeniedException": "Your credentials lack a permission this step needs; the message names it.",
    "AccessDenied": "Your credentials lack a permission this step needs; the message names it.",
    "UnrecognizedClientException": "The credentials are not valid here: check the profile and region.",
    "InvalidClientTokenId": "The credentials are not valid here: check the profile and region.",
    "ExpiredTokenException": "The session credentials expired: log in again (e.g. `aws sso login`).",
    "ExpiredToken": "The session credentials expired: log in again (e.g. `aws sso login`).",
    "ThrottlingException": "AWS is throttling these calls: wait a little and run the step again.",
    "ServiceQuotaExceededException": "A service quota is reached: delete unused resources or ask for more.",
}
_BOTOCORE_HINTS = {
    "NoCredentialsError": "No AWS credentials were found: run `aws configure` (or `aws sso login`), "
                          "or use TARGET='local' for the emulator.",
    "NoRegionError": "No region is set: set REGION in the parameters cell or AWS_REGION.",
    "EndpointConnectionError": "The endpoint cannot be reached: check the network and the region "
                               "(with TARGET='local', that the emulator runs).",
    "ReadTimeoutError": "AWS took too long to answer: run the step again.",
}


def explain_aws_error(exc: BaseException) -> str:
    """One line for a botocore error: what AWS refused, its code and message, and what to do."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code", "Unknown")
        message = " ".join(str(response.get("Error", {}).get("Message", "")).split())
        operation = getattr(exc, "operation_name", "a call")
        hint = _AWS_HINTS.get(code, "")
        return f"AWS refused {operation} ({code}): {message} {hint}".strip()
    name = type(exc).__name__
    return f"{name}: {' '.join(str(exc).split())} {_BOTOCORE_HINTS.get(name, '')}".strip()


def _show_aws_errors_briefly() -> None:
    """In IPython, show botocore's errors as `explain_aws_error`'s one line instead of a traceback.

    IPython asks an exception for `_render_traceback_` before formatting a traceback; giving
    botocore's two base classes one changes only how they are displayed (the cell still fails,
    papermill still records the error's class and message). Outside IPython nothing changes.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    def render(self) -> list[str]:
        return [explain_aws_error(self)]

    for cls in (ClientError, BotoCoreError):
        if not hasattr(cls, "_render_traceback_"):
            cls._render_traceback_ = render


_show_aws_errors_briefly()
