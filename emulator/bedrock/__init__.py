"""Bedrock for Claude Code offline: InvokeModel(WithResponseStream) answered by a stand-in model."""
