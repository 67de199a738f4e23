"""AgentCore Runtime: runtimes, versions and endpoints, and InvokeAgentRuntime that runs the agent."""
