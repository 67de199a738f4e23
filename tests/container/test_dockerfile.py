"""The agent's image definition: lint-clean, ARM64, Node 22 with Claude Code, non-root, port 8080."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from .conftest import CONTAINER

DOCKERFILE = CONTAINER / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_reports_nothing_above_info():
    done = subprocess.run([str(HADOLINT), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True)
    findings = json.loads(done.stdout or "[]")
    serious = [f for f in findings if f["level"] not in ("info", "style")]
    assert serious == [], serious


def test_the_image_is_arm64_with_node_22_and_the_claude_code_cli():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    # Official images from ECR Public (no Docker Hub rate limit on CodeBuild); arm64 comes from the
    # builds' --platform linux/arm64 (tests/helpers/test_image.py) and CodeBuild's ARM64 hosts.
    assert froms and all(image.startswith("public.ecr.aws/docker/library/") for image in froms)
    buildspec = (DOCKERFILE.parent.parent / "cloudformation" / "workshop.yaml").read_text()
    assert "docker build --platform linux/arm64" in buildspec and "ARM_CONTAINER" in buildspec
    assert any(re.search(r"node:22\b", image) for image in froms)
    assert re.search(r"npm install .*@anthropic-ai/claude-code@\d+\.\d+\.\d+", text)


def test_the_agent_runs_as_a_non_root_user_on_port_8080():
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^EXPOSE\s+8080\b", text, flags=re.MULTILINE)
    assert "PORT=8080" in text and 'CMD ["python", "-m", "agent"]' in text


def test_requirements_are_installed_from_the_pinned_file():
    assert "pip install --no-cache-dir -r requirements.txt" in DOCKERFILE.read_text()
    lines = [l.strip() for l in (CONTAINER / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", l) for l in lines), lines
