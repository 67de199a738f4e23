"""The runtime supervisor's own rules, checked in-process: what an agent inherits, when a process may be reaped."""
from __future__ import annotations

from pathlib import Path

import pytest

from emulator.core.settings import Settings
from emulator.runtime.processes import Launch
from emulator.runtime.supervisor import Supervisor
from tests.support.polling import eventually as _wait


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
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("LC_CTYPE", "de_DE.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    env = supervisor._environment(_launch(tmp_path), 12345, tmp_path / "session")
    assert "GITHUB_TOKEN" not in env and "OPENAI_API_KEY" not in env
    # The role's temporary credentials come from the emulator's credentials route; no static keys.
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:4599/_emulator/runtime/credentials"
    assert len(env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]) >= 32
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt"
    # The emulator's locale is not the container's: the image's base sets LANG=C.UTF-8 and no LC_*.
    assert "LC_ALL" not in env and "LC_CTYPE" not in env and "TZ" not in env and env["LANG"] == "C.UTF-8"
    assert env["PATH"] and env["HELLO"] == "runtime" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4599"
    assert env["HOME"] == str(tmp_path / "session" / "home")


FAKE_AGENT = Path(__file__).parent / "fixtures" / "fake_agent"


def _invoke(proc, prompt: str) -> dict:
    import json

    from emulator.runtime.proxy import forward

    done = []
    status, _, body = forward(proc, json.dumps({"input": {"prompt": prompt}}).encode(),
                              {"Content-Type": "application/json"}, done.append)
    return json.loads(b"".join(body))["output"]


def test_a_process_handed_to_a_new_call_while_the_reaper_pings_it_is_not_reaped(supervisor, tmp_path):
    import threading

    launch = _launch(tmp_path, context_dir=FAKE_AGENT, idle_timeout=0.3)
    proc = supervisor.acquire(launch)
    supervisor.release(proc)
    pinging, go = threading.Event(), threading.Event()
    real_ping = proc.ping

    def slow_failing_ping(timeout: float = 2.0):  # an agent too busy to answer /ping within its timeout
        pinging.set()
        go.wait(10)
        return None

    proc.ping = slow_failing_ping
    assert pinging.wait(5), "the reaper never checked the idle process"
    again = supervisor.acquire(launch)  # a new call arrives while the reaper waits for /ping
    proc.ping = real_ping
    go.set()
    try:
        assert again is proc
        _wait(lambda: False, 0.5)  # give the reaper time to act on its failed ping
        assert proc.alive(), "the reaper killed a process that had just been given to a new call"
        assert supervisor.sessions() == [proc]
        assert _invoke(proc, "hello")["result"]
    finally:
        supervisor.release(again)


def test_a_live_session_keeps_its_process_and_version_when_a_newer_version_is_asked_for(supervisor, tmp_path):
    old = supervisor.acquire(_launch(tmp_path, context_dir=FAKE_AGENT, version="1"))
    supervisor.release(old)
    again = supervisor.acquire(_launch(tmp_path, context_dir=FAKE_AGENT, version="2"))
    try:
        assert again is old and again.launch.version == "1"
        assert supervisor.sessions() == [old]
    finally:
        supervisor.release(again)
    other = supervisor.acquire(_launch(tmp_path, context_dir=FAKE_AGENT, version="2", session_id="t" * 40))
    try:
        assert other.launch.version == "2", "a new session did not get the new version"
    finally:
        supervisor.release(other)


def test_a_stopped_sessions_directory_is_removed_its_log_kept_and_its_start_lock_pruned(supervisor, tmp_path):
    launch = _launch(tmp_path, context_dir=FAKE_AGENT)
    proc = supervisor.acquire(launch)
    _invoke(proc, "log me")
    supervisor.release(proc)
    session_dir = proc.session_dir
    assert (session_dir / "app").is_dir()
    assert supervisor._start_locks == {}
    assert supervisor.stop_session(launch.runtime_id, launch.session_id)
    assert _wait(lambda: not session_dir.exists()), "the session directory outlived its process"
    assert not (supervisor.root / launch.runtime_id).exists()
    logs = list((supervisor.logs / launch.runtime_id).glob("*.log"))
    assert len(logs) == 1 and "prompt='log me'" in logs[0].read_text()
