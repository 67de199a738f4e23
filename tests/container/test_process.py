"""The agent as the emulator's runtime starts it: `python -m uvicorn agent.app:app` in an unpacked container/."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.emulator import free_port
from tests.support.sse import sse_events

from .conftest import CONTAINER, agent_environment

pytestmark = pytest.mark.slow


@pytest.fixture
def agent_process(emulator, agent_resources, tmp_path):
    context = tmp_path / "context"
    shutil.copytree(CONTAINER, context, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {**os.environ, **agent_environment(emulator, agent_resources, tmp_path)}
    env.pop("ANTHROPIC_API_KEY", None)
    log = open(tmp_path / "agent.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "agent.app:app", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=context, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (tmp_path / "agent.log").read_text()
        try:
            httpx.get(f"{base}/ping", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "agent never answered /ping"
            time.sleep(0.1)
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_a_real_agent_process_streams_progress_is_busy_meanwhile_and_ends_with_the_output(
        agent_process, emulator, agent_resources):
    base = agent_process
    assert httpx.get(f"{base}/ping").json()["status"] == "Healthy"
    lines, busy_seen = [], None
    with httpx.stream("POST", f"{base}/invocations", timeout=120, headers={"Accept": "text/event-stream"},
                      json={"input": {"prompt": "create hello.py that prints hello", "actor_id": "ivy",
                                      "session_id": "process-1"}}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            lines.append(line)
            if busy_seen is None and line.startswith("data: "):
                busy_seen = httpx.get(f"{base}/ping").json()["status"]
    events = sse_events(lines)
    assert busy_seen == "HealthyBusy"
    assert events[-1][0] == "output"
    output = events[-1][1]["output"]
    assert output["success"] is True
    assert [f["file_name"] for f in output["metadata"]["uploaded_files"]] == ["hello.py"]
    assert httpx.get(f"{base}/ping").json()["status"] == "Healthy"
    emulator.client("s3").head_object(Bucket=agent_resources["bucket"], Key="sessions/ivy/process-1/hello.py")

    plain = httpx.post(f"{base}/invocations", timeout=120, json={"input": {
        "prompt": "hi", "actor_id": "ivy", "session_id": "process-1"}})
    assert "create hello.py that prints hello" in plain.json()["output"]["result"]
    bad = httpx.post(f"{base}/invocations", content=b"nope", timeout=10)
    assert bad.status_code == 400 and json.loads(bad.text)["field"] == "body"


def test_a_streaming_client_that_disconnects_mid_run_leaves_the_run_to_finish_and_ping_returns_to_healthy(
        agent_process, emulator, agent_resources):
    base = agent_process
    with httpx.stream("POST", f"{base}/invocations", timeout=120, headers={"Accept": "text/event-stream"},
                      json={"input": {"prompt": "create hello.py that prints hello", "actor_id": "ivy",
                                      "session_id": "disconnect-1"}}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break  # one event read, then the socket is closed mid-run (like a notebook interrupt)
    deadline = time.monotonic() + 90
    while httpx.get(f"{base}/ping").json()["status"] != "Healthy":
        assert time.monotonic() < deadline, "/ping stayed HealthyBusy after the client went away"
        time.sleep(0.2)
    # The run was finished, not stopped: its file is in S3 and its turn is in memory.
    emulator.client("s3").head_object(Bucket=agent_resources["bucket"], Key="sessions/ivy/disconnect-1/hello.py")
    events = emulator.client("bedrock-agentcore").list_events(
        memoryId=agent_resources["memory_id"], actorId="ivy", sessionId="disconnect-1", includePayloads=True)["events"]
    assert len(events) == 1
