"""The agent on AgentCore's session storage: workspace and Claude Code's state on the mount when it is there."""
from __future__ import annotations

from agent.settings import AgentSettings


def test_with_session_storage_mounted_the_workspace_and_claude_state_live_on_it(tmp_path):
    mount = tmp_path / "mnt-workspace"
    mount.mkdir()
    settings, problem = AgentSettings.from_env({"SESSION_STORAGE_PATH": str(mount)}).with_session_storage()
    assert problem is None
    assert settings.workspace_root == mount / "workspaces"
    assert settings.claude_env()["CLAUDE_CONFIG_DIR"] == str(mount / "claude")


def test_session_storage_asked_for_but_not_mounted_falls_back_to_s3_and_says_why(tmp_path):
    settings, problem = AgentSettings.from_env({"SESSION_STORAGE_PATH": str(tmp_path / "absent"),
                                                "WORKSPACE_ROOT": str(tmp_path / "ws")}).with_session_storage()
    assert settings.workspace_root == tmp_path / "ws" and "CLAUDE_CONFIG_DIR" not in settings.claude_env()
    assert "is not a writable mount" in problem and "S3" in problem


def test_without_session_storage_nothing_changes(tmp_path):
    base = AgentSettings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws")})
    settings, problem = base.with_session_storage()
    assert settings == base and problem is None
