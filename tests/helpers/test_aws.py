"""helpers.aws: clients for the target; on local, the emulator is reused or started in the background."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from helpers import aws, config
from helpers.errors import ConfigError, EmulatorError
from tests.support.emulator import free_port


@pytest.fixture
def own_endpoint(monkeypatch, tmp_path):
    """Settings for a local target on a free port where nothing runs yet, with state in tmp."""
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "workshop"))
    monkeypatch.delenv("WORKSHOP_TARGET", raising=False)
    return config.load(target="local"), port


def test_a_running_emulator_is_reused(local_env):
    settings = config.load()
    health = aws.ensure_emulator(settings)
    assert health["pid"] == local_env.proc.pid
    # Nothing was started, so this checkout's state dir holds no emulator of its own.
    assert not (settings.state_dir / "emulator" / "emulator.pid").exists()
    assert aws.client("sts", settings).get_caller_identity()["Account"] == "123456789012"


@pytest.mark.slow
def test_an_emulator_is_started_in_the_background_when_none_answers_and_stops(own_endpoint):
    settings, port = own_endpoint
    assert aws.emulator_health(settings.endpoint_url) is None
    try:
        identity = aws.client("sts", settings).get_caller_identity()
        assert identity["Account"] == "123456789012"
        health = aws.emulator_health(settings.endpoint_url)
        assert health and health["state_dir"] == str(settings.state_dir / "emulator")
        pid_file = settings.state_dir / "emulator" / "emulator.pid"
        assert pid_file.read_text().split() == [str(health["pid"]), str(port)]
        # A second client finds the same process.
        assert aws.ensure_emulator(settings)["pid"] == health["pid"]
    finally:
        stopped = aws.stop_emulator(settings)
    assert stopped
    assert aws.emulator_health(settings.endpoint_url) is None


def test_an_emulator_that_cannot_start_is_a_one_line_error(own_endpoint):
    settings, port = own_endpoint
    # Something that holds the port without speaking HTTP: the emulator cannot bind it.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen(1)
        with pytest.raises(EmulatorError) as err:
            aws.ensure_emulator(settings, timeout=30)
    text = str(err.value)
    assert "\n" not in text
    assert "exited with code 2" in text and str(port) in text
    assert "emulator.log" in text


def test_a_remote_endpoint_that_does_not_answer_is_not_started_here(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.2:{free_port()}")
    monkeypatch.setenv("WORKSHOP_STATE_DIR", str(tmp_path))
    with pytest.raises(EmulatorError, match="No emulator answers at http://127.0.0.2"):
        aws.ensure_emulator(config.load(target="local"))


def test_aws_clients_use_the_normal_endpoints_and_never_the_emulator(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = config.load(target="aws", region="eu-west-1")
    client = aws.client("cloudformation", settings)
    assert client.meta.endpoint_url == "https://cloudformation.eu-west-1.amazonaws.com"
    assert client.meta.region_name == "eu-west-1"
    with pytest.raises(ConfigError):
        aws.ensure_emulator(settings)


def test_the_emulator_is_checked_once_per_endpoint_not_on_every_client_call(local_env, monkeypatch):
    settings = config.load()
    aws.client("sts", settings)  # reached once: from here on it is known to answer
    checks = []
    monkeypatch.setattr(aws, "emulator_health", lambda *a, **k: checks.append(a) or {"status": "running"})
    for service in ("sts", "ssm", "s3", "sts"):
        aws.client(service, settings)
    assert checks == []


@pytest.mark.slow
def test_a_call_that_cannot_reach_a_stopped_emulator_starts_it_again_and_succeeds(own_endpoint):
    settings, port = own_endpoint
    sts = aws.client("sts", settings)
    try:
        first = aws.emulator_health(settings.endpoint_url)["pid"]
        # Stopped behind the library's back (a crash, a kill): the next call fails to connect.
        os.kill(first, signal.SIGTERM)
        while aws.emulator_health(settings.endpoint_url, timeout=0.5) is not None:
            time.sleep(0.1)
        assert sts.get_caller_identity()["Account"] == "123456789012"
        assert aws.emulator_health(settings.endpoint_url)["pid"] != first
    finally:
        aws.stop_emulator(settings)
