"""AgentCore Memory: control plane (memories) and data plane (events, sessions, records)."""
