"""The caller's identity, where AgentCore Runtime forwards one, decides the actor; a payload cannot name another."""
from __future__ import annotations

import base64
import json

import pytest


def _jwt(claims: dict) -> str:
    """A token as the runtime forwards it after validating it (the agent reads, never checks, the signature)."""
    def part(doc):
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def agent(tmp_path):
    """An agent whose Claude Code cannot start: everything up to the run (the workspace included) still happens."""
    from fastapi.testclient import TestClient

    from agent.app import create_app
    from agent.settings import AgentSettings

    opened = []

    def make(**env):
        settings = AgentSettings.from_env({"WORKSPACE_ROOT": str(tmp_path / "ws"),
                                           "CLAUDE_CLI_PATH": str(tmp_path / "no-claude"), **env})
        client = TestClient(create_app(settings, clients=(None, None, None)))
        client.__enter__()  # runs the lifespan, which loads (here: disables) memory
        opened.append(client)
        return client, tmp_path / "ws"
    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_the_callers_identity_decides_the_actor_and_a_differing_actor_id_is_refused_naming_both(agent):
    client, root = agent()
    user = {"X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "alice"}
    bearer = {"Authorization": "Bearer " + _jwt({"sub": "alice@example.com", "aud": "x"})}
    cases = [
        # (headers, payload actor_id, expected status, workspace actor that must exist or refusal words)
        (user, None, 500, "alice"),  # 500: the missing CLI, after the workspace of the identity's actor was made
        (user, "alice", 500, "alice"),
        (user, "mallory", 403, ("'mallory'", "'alice'", "X-Amzn-Bedrock-AgentCore-Runtime-User-Id")),
        (bearer, None, 500, "alice-example-com-"),
        (bearer, "alice@example.com", 400, "input.actor_id"),  # not a valid actor id in itself
        (bearer, "bob", 403, ("'bob'", "'alice@example.com'", "'sub' claim")),
        # the JWT wins over a user id header: it is signed, the header is the caller's word
        ({**bearer, "X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "mallory"}, "mallory", 403, ("'mallory'",)),
        ({"Authorization": "Bearer x.y"}, None, 401, ("not a JWT",)),
        ({"Authorization": "Basic YWxpY2U6cHc="}, None, 401, ("Bearer",)),
        ({"Authorization": "Bearer " + _jwt({"client_id": "machine"})}, None, 403, ("'sub'",)),
        ({}, "anyone", 500, "anyone"),  # no identity configured: the payload names the actor (README says so)
    ]
    wrong = []
    for i, (headers, actor, status, expect) in enumerate(cases):
        payload = {"prompt": "hi", "session_id": f"s{i}", **({"actor_id": actor} if actor else {})}
        resp = client.post("/invocations", json={"input": payload}, headers=headers)
        doc = resp.json()
        ok = resp.status_code == status and {"error", "details"} <= set(doc)
        if status == 500:
            ok = ok and any(p.name.startswith(expect) and (p / f"s{i}").is_dir() for p in root.iterdir())
        elif status in (401, 403):
            ok = ok and all(word in doc["details"] for word in expect)
        else:
            ok = ok and doc.get("field") == expect
        if not ok:
            wrong.append((i, resp.status_code, doc))
    assert wrong == []
    assert not (root / "mallory").exists() and not (root / "bob").exists()


def test_a_runtime_session_started_by_an_identity_is_refused_to_any_other_caller(agent):
    client, _ = agent()
    session = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "first-callers-runtime-session-0123456789abcdef"}
    alice = {**session, "X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "alice"}
    first = client.post("/invocations", json={"input": {"prompt": "hi"}}, headers=alice)
    assert first.status_code == 500  # the missing CLI: the call itself was let in
    # mallory as herself, and a caller with no identity naming alice: neither gets into alice's microVM
    for intruder, named in (({**session, "X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "mallory"}, {}),
                            (session, {"actor_id": "alice"})):
        resp = client.post("/invocations", json={"input": {"prompt": "hi", **named}}, headers=intruder)
        assert resp.status_code == 403 and resp.json()["field"] == "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
        assert "alice" not in resp.json()["details"]  # whose session it is stays unsaid
    assert client.post("/invocations", json={"input": {"prompt": "hi"}}, headers=alice).status_code == 500


def test_with_identity_required_a_call_without_one_is_a_401_saying_what_to_send(agent):
    client, _ = agent(AGENT_REQUIRE_IDENTITY="1")
    resp = client.post("/invocations", json={"input": {"prompt": "hi", "actor_id": "alice"}})
    assert resp.status_code == 401
    assert "bearer token" in resp.json()["details"] and "runtimeUserId" in resp.json()["details"]
