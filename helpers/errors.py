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
