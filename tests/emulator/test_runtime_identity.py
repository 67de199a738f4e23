"""Who may invoke a runtime, and what the agent learns of the caller: SigV4 or a bearer JWT, never both."""
from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import quote, urlsplit

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from helpers.config import Settings
from helpers.errors import AgentRuntimeError
from helpers.invoke import invoke
from helpers.runtime import get_or_create_runtime, jwt_authorizer
from tests.emulator.fixtures.runtime import ROLE_ARN, push_fake_image, wait_ready
from tests.support.oidc import IdentityProvider

AUDIENCE = "workshop-agent"
CLIENT = "workshop-app"


def _runtime(emu, name: str, **extra) -> dict:
    """A READY fake-agent runtime with these settings, requiring MMDSv2 (which only an update can set)."""
    control = emu.client("bedrock-agentcore-control")
    spec = {"agentRuntimeArtifact": {"containerConfiguration": {"containerUri": push_fake_image(emu)}},
            "roleArn": ROLE_ARN, "networkConfiguration": {"networkMode": "PUBLIC"}, **extra}
    created = control.create_agent_runtime(agentRuntimeName=f"{name}_{uuid.uuid4().hex[:8]}", **spec)
    wait_ready(control, created["agentRuntimeId"])
    control.update_agent_runtime(agentRuntimeId=created["agentRuntimeId"],
                                 metadataConfiguration={"requireMMDSV2": True}, **spec)
    wait_ready(control, created["agentRuntimeId"])
    return created


def _post(emu, arn: str, headers: dict, prompt: str = "identity") -> tuple[int, dict]:
    """InvokeAgentRuntime as a bearer caller sends it: plain HTTP, no SigV4."""
    url = urlsplit(emu.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    body = json.dumps({"input": {"prompt": prompt}})
    conn.request("POST", f"/runtimes/{quote(arn, safe='')}/invocations?qualifier=DEFAULT", body=body,
                 headers={"Content-Type": "application/json", "Accept": "application/json",
                          "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": f"identity-test-{uuid.uuid4().hex}",
                          **headers})
    resp = conn.getresponse()
    status, doc = resp.status, json.loads(resp.read() or b"{}")
    conn.close()
    return status, {**doc, "error_type": resp.getheader("x-amzn-ErrorType")}


@pytest.fixture(scope="module")
def idp():
    with IdentityProvider() as provider:
        yield provider


def test_a_jwt_runtime_admits_only_valid_bearer_tokens_and_forwards_the_token_to_the_agent(emulator, idp, tmp_path):
    control = emulator.client("bedrock-agentcore-control")
    settings = Settings(target="local", region="us-east-1", endpoint_url=emulator.endpoint, state_dir=tmp_path,
                        runtime_name=f"jwt_{uuid.uuid4().hex[:8]}")
    bad = {"discovery_url": "https://idp.example/keys", "allowed_clients": [CLIENT]}, {"discovery_url": idp.discovery_url}
    for kwargs in bad:  # not a discovery URL; a token for any audience or client would pass
        with pytest.raises(AgentRuntimeError):
            jwt_authorizer(settings, **kwargs)
    authorizer = jwt_authorizer(settings, idp.discovery_url, allowed_audience=[AUDIENCE], allowed_clients=[CLIENT])
    authorizer["customJWTAuthorizer"]["customClaims"] = [{
        "inboundTokenClaimName": "groups", "inboundTokenClaimValueType": "STRING_ARRAY",
        "authorizingClaimMatchValue": {"claimMatchOperator": "CONTAINS_ANY",
                                       "claimMatchValue": {"matchValueStringList": ["workshop", "admins"]}}}]
    deployment = get_or_create_runtime(settings, push_fake_image(emulator), role_arn=ROLE_ARN, bucket="unused",
                                       authorizer=authorizer, progress=False)
    runtime = control.get_agent_runtime(agentRuntimeId=deployment.agent_runtime_id)
    assert runtime["requestHeaderConfiguration"] == {"requestHeaderAllowlist": ["Authorization"]}
    assert runtime["environmentVariables"]["AGENT_REQUIRE_IDENTITY"] == "1"
    arn = runtime["agentRuntimeArn"]
    try:
        good = idp.token("alice", audience=AUDIENCE, client_id=CLIENT, groups=["workshop"])
        refused = {
            "no token": ({}, 401, "requires a bearer token"),
            "not in a group": ({"Authorization": "Bearer " + idp.token("alice", audience=AUDIENCE, client_id=CLIENT,
                                                                       groups=["guests"])}, 403, "'groups'"),
            "not a JWT": ({"Authorization": "Bearer not-a-jwt"}, 403, "not a JWT"),
            "expired": ({"Authorization": "Bearer " + idp.token("alice", audience=AUDIENCE, client_id=CLIENT,
                                                                expires_in=-60)}, 403, "expired"),
            "wrong audience": ({"Authorization": "Bearer " + idp.token("alice", audience="other-api",
                                                                       client_id=CLIENT)}, 403, "audience"),
            "wrong client": ({"Authorization": "Bearer " + idp.token("alice", audience=AUDIENCE,
                                                                     client_id="intruder")}, 403, "client"),
            "wrong issuer": ({"Authorization": "Bearer " + idp.token("alice", audience=AUDIENCE, client_id=CLIENT,
                                                                     issuer="http://evil.example")}, 403, "issuer"),
            "forged signature": ({"Authorization": "Bearer " + idp.token(
                "alice", audience=AUDIENCE, client_id=CLIENT,
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048))}, 403, "Signature"),
        }
        seen = {case: _post(emulator, arn, headers) for case, (headers, _, _) in refused.items()}
        wrong = {case: got for case, got in seen.items()
                 if got[0] != refused[case][1] or refused[case][2] not in got[1].get("message", "")}
        assert wrong == {}
        assert all(got[1]["error_type"] in ("AccessDeniedException", "UnauthorizedException") for got in seen.values())

        # SigV4 to a JWT runtime: AWS's "Authorization method mismatch".
        with pytest.raises(ClientError) as err:
            emulator.client("bedrock-agentcore").invoke_agent_runtime(
                agentRuntimeArn=arn, runtimeSessionId=f"identity-test-{uuid.uuid4().hex}", payload=b"{}")
        assert err.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "Authorization method mismatch" in err.value.response["Error"]["Message"]

        status, doc = _post(emulator, arn, {"Authorization": f"Bearer {good}"})
        assert status == 200, doc
        assert json.loads(doc["output"]["result"])["authorization"] == f"Bearer {good}"

        # The helpers' bearer path: the same call through helpers.invoke.
        out = invoke(settings, "identity", "alice", "jwt-helper", runtime_arn=arn, stream=False, progress=False,
                     bearer_token=good)
        assert json.loads(out["result"])["authorization"] == f"Bearer {good}"
    finally:
        control.delete_agent_runtime(agentRuntimeId=runtime["agentRuntimeId"])


def test_a_sigv4_runtime_refuses_bearer_calls_and_forwards_the_runtime_user_id(emulator, idp):
    control = emulator.client("bedrock-agentcore-control")
    with pytest.raises(ClientError) as err:  # devguide runtime-header-allowlist: Authorization needs a JWT authorizer
        control.create_agent_runtime(
            agentRuntimeName=f"noauth_{uuid.uuid4().hex[:8]}", roleArn=ROLE_ARN,
            agentRuntimeArtifact={"containerConfiguration": {"containerUri": push_fake_image(emulator)}},
            networkConfiguration={"networkMode": "PUBLIC"},
            requestHeaderConfiguration={"requestHeaderAllowlist": ["Authorization"]})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "customJWTAuthorizer" in err.value.response["Error"]["Message"]

    runtime = _runtime(emulator, "sigv4")
    arn = runtime["agentRuntimeArn"]
    try:
        status, doc = _post(emulator, arn, {"Authorization": "Bearer " + idp.token("alice", audience=AUDIENCE)})
        assert (status, doc["error_type"]) == (403, "AccessDeniedException")
        assert "Authorization method mismatch" in doc["message"]
        status, doc = _post(emulator, arn, {})
        assert (status, doc["error_type"]) == (403, "AccessDeniedException") and "Missing Authentication" in doc["message"]

        settings = Settings(target="local", region="us-east-1", endpoint_url=emulator.endpoint)
        out = invoke(settings, "identity", "alice", "user-id", runtime_arn=arn, stream=False, progress=False,
                     user_id="alice")
        assert json.loads(out["result"]) == {"authorization": None, "x-amzn-bedrock-agentcore-runtime-user-id": "alice"}
    finally:
        control.delete_agent_runtime(agentRuntimeId=runtime["agentRuntimeId"])
