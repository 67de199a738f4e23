"""One deployment's context, resolved once: memory id and strategies, bucket, runtime ARN, log group.

Helpers that read several of these take a `Deployment` (or Settings, from which they make one), so a
call, or a wait that polls, reads SSM, GetMemory, DescribeStacks and the runtime once instead of on
every step. Each part is looked up on first use and kept; `refresh()` forgets them all, for a
deployment that changed (a memory recreated, a runtime updated).
"""
from __future__ import annotations

from functools import cached_property

from .config import Settings


class Deployment:
    """The workshop's resources for `settings`, each read from AWS the first time it is asked for."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def memory_id(self) -> str:
        """The memory id stored in SSM; a MemoryServiceError when the memory has not been created."""
        from . import memory

        return memory.memory_id(self.settings)

    @cached_property
    def memory(self) -> dict:
        """The memory's id, status and strategies (helpers.memory.memory_info's answer)."""
        from . import memory

        return memory.describe_memory(self.settings, self.memory_id)

    @cached_property
    def strategies(self) -> dict[str, dict]:
        """The memory's strategies by kind (facts, summaries, preferences): strategy id and namespace template."""
        return {s["kind"]: s for s in self.memory["strategies"]}

    @cached_property
    def stack_outputs(self) -> dict[str, str]:
        from . import stack

        return stack.stack_outputs(self.settings)

    @property
    def bucket(self) -> str | None:
        return self.stack_outputs.get("BucketName")

    @cached_property
    def runtime(self) -> dict:
        """The runtime (GetAgentRuntime's answer); an AgentRuntimeError when it has not been created."""
        from . import runtime

        return runtime.current_runtime(self.settings)

    @property
    def runtime_arn(self) -> str:
        return self.runtime["agentRuntimeArn"]

    @property
    def runtime_id(self) -> str:
        return self.runtime["agentRuntimeId"]

    @property
    def log_group(self) -> str:
        from .logs import runtime_log_group

        return runtime_log_group(self.runtime_id)

    def refresh(self) -> "Deployment":
        """Forget what was resolved, so the next use reads it from AWS again; returns self."""
        for name in ("memory_id", "memory", "strategies", "stack_outputs", "runtime"):
            self.__dict__.pop(name, None)
        return self

    def __repr__(self) -> str:
        known = {k: v for k, v in self.__dict__.items() if k in ("memory_id", "runtime")}
        shown = ", ".join(f"{k}={v['agentRuntimeArn'] if k == 'runtime' else v!r}" for k, v in known.items())
        return f"Deployment({self.settings.stack_name!r}{', ' + shown if shown else ''})"


def of(target: Settings | Deployment) -> Deployment:
    """`target` itself when it is a Deployment; otherwise a new one for these settings."""
    return target if isinstance(target, Deployment) else Deployment(target)
