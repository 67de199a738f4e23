"""The runtime supervisor's own rules, checked in-process: what an agent inherits, when a process may be reaped."""
from __future__ import annotations

from pathlib import Path

import pytest

from emulator.core.settings import Settings
from emulator.runtime.supervisor import Launch, Supervisor


def _launch(tmp_path: Path, **overrides) -> Launch:
    fields = dict(runtime_id="rt-aaaaaaaaaa", runtime_arn="arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/"
                  "rt-aaaaaaaaaa", version="1", endpoint_name="DEFAULT", session_id="s" * 40,
                  context_dir=tmp_path / "ctx", app="agent.app:app", environment={"HELLO": "runtime"},
                  region="us-east-1", idle_timeout=900.0, max_lifetime=28800.0)
    fields.update(overrides)
    return Launch(**fields)


@pytest.fixture
def supervisor(tmp_path):
    sup = Supervisor(Settings(state_dir=tmp_path / "state", port=4599))
    yield sup
    sup.close()


def test_only_allowlisted_parts_of_the_emulators_environment_reach_the_agent(supervisor, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "developer-secret")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    env = supervisor._environment(_launch(tmp_path), 12345, tmp_path / "session")
    assert "GITHUB_TOKEN" not in env and "OPENAI_API_KEY" not in env
    assert env["AWS_SECRET_ACCESS_KEY"] == "agentcore-local"
    assert env["LC_ALL"] == "C.UTF-8" and env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt"
    assert env["PATH"] and env["HELLO"] == "runtime" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4599"
    assert env["HOME"] == str(tmp_path / "session" / "home")
