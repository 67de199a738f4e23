"""The real Claude Code CLI (bundled with claude-agent-sdk), run headless in Bedrock mode against an emulator."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

CLAUDE_CLI = Path(__import__("claude_agent_sdk").__file__).parent / "_bundled" / "claude"


def write_hello_py(endpoint: str, model: str, home: Path) -> Path:
    """Ask the CLI to create hello.py in a fresh workspace under `home`; check the run and the file; the workspace.

    Bedrock calls go unsigned (CLAUDE_CODE_SKIP_BEDROCK_AUTH), as outside a runtime there is no role to sign with.
    """
    workdir = home / "ws"
    workdir.mkdir()
    env = {**os.environ, "HOME": str(home), "CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": "us-east-1",
           "ANTHROPIC_BEDROCK_BASE_URL": endpoint, "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
           "ANTHROPIC_MODEL": model, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    env.pop("ANTHROPIC_API_KEY", None)
    done = subprocess.run([str(CLAUDE_CLI), "-p", "create hello.py that prints hello", "--output-format", "json",
                           "--permission-mode", "acceptEdits", "--allowedTools", "Write,Read,Bash"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["is_error"] is False and result["num_turns"] == 2
    assert subprocess.run(["python3", "hello.py"], cwd=workdir, capture_output=True, text=True).stdout == "hello\n"
    return workdir
