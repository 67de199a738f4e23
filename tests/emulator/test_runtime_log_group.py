"""The emulator ships a runtime's logs to the log group helpers.logs reads: one path, AgentCore's."""
from __future__ import annotations

from emulator.runtime.logs import log_group_name

from helpers.logs import runtime_log_group


def test_the_emulator_writes_runtime_logs_where_the_helpers_read_them():
    # The emulator is the AWS stand-in and does not import the client library, so each names the path.
    for runtime_id, endpoint in (("claude_code_agent_runtime-Ab12Cd34Ef", "DEFAULT"), ("rt-X", "beta")):
        assert log_group_name(runtime_id, endpoint) == runtime_log_group(runtime_id, endpoint)
