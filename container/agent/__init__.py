"""Claude Code as an AgentCore Runtime agent: HTTP contract, Claude runner, memory, S3 workspace."""
