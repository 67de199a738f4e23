"""Fixtures for the agent: its AWS resources in the emulator and its environment."""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

CONTAINER = Path(__file__).resolve().parents[2] / "container"
# The agent is a container's source tree, not an installed package: import it as the image does,
# from container/ (its WORKDIR).
if str(CONTAINER) not in sys.path:
    sys.path.insert(0, str(CONTAINER))


@pytest.fixture(scope="session")
def agent_resources(emulator):
    """A bucket and a memory whose id is in SSM, unique to this test run (the emulator is shared)."""
    tag = uuid.uuid4().hex[:8]
    bucket = f"agent-test-{tag}"
    emulator.client("s3").create_bucket(Bucket=bucket)
    control = emulator.client("bedrock-agentcore-control")
    memory = control.create_memory(
        name=f"AgentTest_{tag}", eventExpiryDuration=30,
        memoryStrategies=[
            {"semanticMemoryStrategy": {"name": "facts", "namespaces": ["coding/user/{actorId}/facts"]}},
            {"summaryMemoryStrategy": {"name": "summary", "namespaces": ["coding/user/{actorId}/{sessionId}"]}},
            {"userPreferenceMemoryStrategy": {"name": "prefs", "namespaces": ["coding/user/{actorId}/preferences"]}},
        ])["memory"]
    deadline = time.monotonic() + 30
    while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE":
        assert time.monotonic() < deadline, "memory never became ACTIVE"
        time.sleep(0.2)
    parameter = f"/agent-test-{tag}/memory-id"
    emulator.client("ssm").put_parameter(Name=parameter, Value=memory["id"], Type="String")
    return {"bucket": bucket, "memory_id": memory["id"], "parameter": parameter}


def agent_environment(emulator, resources, tmp_path: Path) -> dict[str, str]:
    """What the emulator's runtime gives the agent's process (and what a test's app needs)."""
    return {
        "AWS_ENDPOINT_URL": emulator.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "ANTHROPIC_BEDROCK_BASE_URL": emulator.endpoint,
        "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
        "ANTHROPIC_MODEL": "local-stand-in",
        "OUTPUT_BUCKET_NAME": resources["bucket"],
        "MEMORY_ID_PARAMETER": resources["parameter"],
        "WORKSPACE_ROOT": str(tmp_path / "workspaces"),
        "HOME": str(tmp_path / "home"),
    }


@pytest.fixture
def make_agent(emulator, agent_resources, tmp_path, monkeypatch):
    """make_agent(**env_overrides) -> a TestClient on a fresh app (lifespan run, memory id loaded)."""
    from fastapi.testclient import TestClient

    clients = []

    def make(**overrides):
        from agent.app import create_app

        env = {**agent_environment(emulator, agent_resources, tmp_path), **overrides}
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        for key, value in env.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        client = TestClient(create_app())
        client.__enter__()
        clients.append(client)
        client.app.state.memory.wait_loaded(30)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def invoke(client, **input_fields) -> dict:
    resp = client.post("/invocations", json={"input": input_fields})
    assert resp.status_code == 200, resp.text
    return resp.json()["output"]
