"""IAM enforced offline: policy evaluation, the gate's answers per protocol, role credentials and their refresh."""
from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.iam.models import CredentialIssuer, RoleNotAssumable, evaluate, statements_of, wildcard_match

ACCOUNT = "123456789012"


def _policy(*statements) -> list:
    return statements_of("p", {"Version": "2012-10-17", "Statement": list(statements)})


# ---------------------------------------------------------------- evaluation (no emulator)
def test_an_allow_names_the_statement_that_allowed():
    st = _policy({"Sid": "Get", "Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "arn:aws:ssm:*:*:parameter/a"})
    decision = evaluate(st, "ssm:GetParameter", "arn:aws:ssm:us-east-1:1:parameter/a", {})
    assert decision.allowed and decision.statement.sid == "Get"
    assert not evaluate(st, "ssm:GetParameter", "arn:aws:ssm:us-east-1:1:parameter/b", {}).allowed


def test_an_explicit_deny_wins_over_an_allow():
    st = _policy({"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                 {"Sid": "NoPut", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"})
    decision = evaluate(st, "s3:PutObject", "arn:aws:s3:::b/k", {})
    assert not decision.allowed and decision.explicit_deny and decision.statement.sid == "NoPut"


def test_a_condition_on_a_key_the_request_lacks_makes_the_statement_not_apply():
    # The template's marketplace grant: only when Bedrock makes the call (aws:CalledViaLast).
    st = _policy({"Sid": "Market", "Effect": "Allow", "Action": "aws-marketplace:Subscribe", "Resource": "*",
                  "Condition": {"StringEquals": {"aws:CalledViaLast": "bedrock.amazonaws.com"}}})
    assert not evaluate(st, "aws-marketplace:Subscribe", "*", {}).allowed
    assert evaluate(st, "aws-marketplace:Subscribe", "*", {"aws:CalledViaLast": ["bedrock.amazonaws.com"]}).allowed
    assert not evaluate(st, "aws-marketplace:Subscribe", "*", {"aws:CalledViaLast": ["lambda.amazonaws.com"]}).allowed


def test_an_unmet_condition_on_a_deny_does_not_deny():
    st = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                 {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                  "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    assert evaluate(st, "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": ["true"]}).allowed
    assert not evaluate(st, "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SecureTransport": ["false"]}).allowed


def test_negated_and_if_exists_operators_hold_when_the_key_is_absent():
    st = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                  "Condition": {"StringNotEquals": {"aws:SourceVpc": "vpc-1"},
                                "StringEqualsIfExists": {"aws:RequestedRegion": "us-east-1"}}})
    assert evaluate(st, "s3:GetObject", "x", {}).allowed
    assert not evaluate(st, "s3:GetObject", "x", {"aws:RequestedRegion": ["eu-west-1"]}).allowed


def test_wildcards_are_iams_not_regular_expressions():
    assert wildcard_match("arn:aws:s3:::my.bucket/*", "arn:aws:s3:::my.bucket/a/b")
    assert not wildcard_match("arn:aws:s3:::my.bucket/*", "arn:aws:s3:::myxbucket/a")
    assert wildcard_match("bedrock-agentcore:List*", "BEDROCK-AGENTCORE:listevents", ignore_case=True)
    assert wildcard_match("log-group:a?c", "log-group:abc") and not wildcard_match("log-group:a?c", "log-group:ac")


# ---------------------------------------------------------------- the gate, through boto3 against the emulator
@pytest.fixture
def role(emulator):
    """A role with a small inline and a managed policy, and boto3 clients signed with its session's keys."""
    iam = emulator.client("iam")
    name = f"gate-{uuid.uuid4().hex[:8]}"
    bucket = name
    emulator.client("s3").create_bucket(Bucket=bucket)
    emulator.client("ssm").put_parameter(Name=f"/{name}/id", Value="v", Type="String")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "bedrock-agentcore.amazonaws.com"}}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "ReadId", "Effect": "Allow", "Action": "ssm:GetParameter",
             "Resource": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/{name}/id"},
            {"Sid": "Outputs", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/outputs/*"}]}))
    managed = iam.create_policy(PolicyName=f"{name}-m", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Sid": "Memory", "Effect": "Allow", "Action": "bedrock-agentcore:ListEvents",
                                                "Resource": f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:memory/Allowed-*"}]}))
    iam.attach_role_policy(RoleName=name, PolicyArn=managed["Policy"]["Arn"])
    creds = emulator.client("sts").assume_role(RoleArn=arn, RoleSessionName="gate-test")["Credentials"]

    def client(service):
        from botocore.config import Config

        return boto3.client(service, region_name="us-east-1", endpoint_url=emulator.endpoint,
                            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], config=Config(retries={"max_attempts": 1}))

    return {"name": name, "arn": arn, "bucket": bucket, "client": client}


def _decisions(emulator, role_arn):
    with urllib.request.urlopen(f"{emulator.endpoint}/_emulator/iam/decisions?role_arn={role_arn}") as resp:
        return json.load(resp)["decisions"]


def test_a_role_session_gets_what_its_inline_and_managed_policies_allow(emulator, role):
    assert role["client"]("ssm").get_parameter(Name=f"/{role['name']}/id")["Parameter"]["Value"] == "v"
    role["client"]("s3").put_object(Bucket=role["bucket"], Key="outputs/a.txt", Body=b"x")
    with pytest.raises(ClientError) as err:
        role["client"]("bedrock-agentcore").list_events(memoryId="Allowed-abcdefghij", actorId="a", sessionId="s")
    # Allowed by IAM, so the call reached the memory service, which has no such memory.
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    allowed = {(d["action"], d["sid"]) for d in _decisions(emulator, role["arn"]) if d["decision"] == "allowed"}
    assert allowed >= {("ssm:GetParameter", "ReadId"), ("s3:PutObject", "Outputs"),
                       ("bedrock-agentcore:ListEvents", "Memory")}


def test_a_json_service_denies_with_access_denied_exception_naming_role_action_and_resource(emulator, role):
    with pytest.raises(ClientError) as err:
        role["client"]("ssm").get_parameter(Name="/another/parameter")
    error = err.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role['name']}/gate-test is not authorized to perform: "
        f"ssm:GetParameter on resource: arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/another/parameter "
        "because no identity-based policy allows the ssm:GetParameter action")


def test_s3_denies_with_access_denied_xml_and_a_403(emulator, role):
    with pytest.raises(ClientError) as err:
        role["client"]("s3").put_object(Bucket=role["bucket"], Key="sessions/a.txt", Body=b"x")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert f"s3:PutObject on resource: arn:aws:s3:::{role['bucket']}/sessions/a.txt" in err.value.response["Error"]["Message"]
    # Nothing was written: the deny came before moto.
    assert "Contents" not in emulator.client("s3").list_objects_v2(Bucket=role["bucket"], Prefix="sessions/")


def test_agentcore_and_bedrock_deny_with_a_modelled_403(emulator, role):
    with pytest.raises(ClientError) as err:
        role["client"]("bedrock-agentcore").list_events(memoryId="Other-abcdefghijk", actorId="a", sessionId="s")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as err:
        role["client"]("bedrock-runtime").invoke_model(modelId="local-stand-in", body=b"{}")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert ("bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1::foundation-model/local-stand-in"
            in err.value.response["Error"]["Message"])
    denied = {d["action"] for d in _decisions(emulator, role["arn"]) if d["decision"] == "denied"}
    assert {"bedrock-agentcore:ListEvents", "bedrock:InvokeModel"} <= denied


def test_the_workshop_users_own_keys_are_not_judged(emulator, role):
    # Same call the role is refused: the user (an administrator) may make it.
    emulator.client("ssm").put_parameter(Name="/another/parameter", Value="x", Type="String", Overwrite=True)
    assert emulator.client("ssm").get_parameter(Name="/another/parameter")["Parameter"]["Value"] == "x"


def test_a_session_token_that_is_not_the_sessions_own_is_refused(emulator, role):
    creds = emulator.client("sts").assume_role(RoleArn=role["arn"], RoleSessionName="other")["Credentials"]
    forged = boto3.client("ssm", region_name="us-east-1", endpoint_url=emulator.endpoint,
                          aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token="not-the-token")
    with pytest.raises(ClientError) as err:
        forged.get_parameter(Name=f"/{role['name']}/id")
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_enforcement_off_is_one_setting_and_the_emulator_says_so(tmp_path):
    from tests.support.emulator import EmulatorProcess

    emu = EmulatorProcess(tmp_path / "emu", env={"EMULATOR_IAM_ENFORCEMENT": "off"}).start()
    try:
        iam = emu.client("iam")
        arn = iam.create_role(RoleName="no-grants", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        creds = emu.client("sts").assume_role(RoleArn=arn, RoleSessionName="off-test")["Credentials"]
        emu.client("ssm").put_parameter(Name="/off/id", Value="v", Type="String")
        ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=emu.endpoint,
                           aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
        assert ssm.get_parameter(Name="/off/id")["Parameter"]["Value"] == "v"
    finally:
        emu.stop()
    assert "IAM enforcement is OFF (EMULATOR_IAM_ENFORCEMENT=off)" in emu.log_path.read_text()


# ---------------------------------------------------------------- credentials for agent processes
class _Clock:
    def __init__(self):
        self.now = dt.datetime.now(dt.timezone.utc).timestamp()

    def __call__(self):
        return self.now


TRUST_AGENTCORE = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "bedrock-agentcore.amazonaws.com"}, "Action": "sts:AssumeRole",
    "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                  "ArnLike": {"aws:SourceArn": f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:*"}}}]}
RUNTIME_ARN = f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:runtime/agent-abc1234567"


def _moto_role(name: str, trust: dict = TRUST_AGENTCORE) -> str:
    from moto.iam.models import iam_backends

    role = iam_backends[ACCOUNT]["aws"].create_role(
        role_name=name, assume_role_policy_document=json.dumps(trust), path="/", permissions_boundary=None,
        description="", tags=[], max_session_duration=3600)
    return role.arn


def test_role_credentials_are_reused_then_refreshed_before_they_expire():
    clock = _Clock()
    issuer = CredentialIssuer(ACCOUNT, duration=3600, clock=clock)
    token = issuer.register(_moto_role(f"cred-{uuid.uuid4().hex[:8]}"), "agentcore-session", "us-east-1", RUNTIME_ARN)
    first = issuer.credentials(token)
    assert first.access_key_id.startswith("ASIA") and first.arn.endswith("/agentcore-session")
    clock.now += 30 * 60  # 30 minutes left: still fresh
    assert issuer.credentials(token).access_key_id == first.access_key_id
    clock.now += 15 * 60  # 15 minutes left: inside the SDKs' refresh window, so a new set
    second = issuer.credentials(token)
    assert second.access_key_id != first.access_key_id
    assert second.expiration > first.expiration


def test_a_stopped_agents_token_gets_no_credentials_and_a_missing_role_none_either():
    issuer = CredentialIssuer(ACCOUNT, duration=3600)
    token = issuer.register(_moto_role(f"cred-{uuid.uuid4().hex[:8]}"), "s-1", "us-east-1", RUNTIME_ARN)
    issuer.forget(token)
    with pytest.raises(PermissionError):
        issuer.credentials(token)
    ghost = issuer.register(f"arn:aws:iam::{ACCOUNT}:role/does-not-exist", "s-2", "us-east-1")
    with pytest.raises(RoleNotAssumable, match="does not exist in IAM"):
        issuer.credentials(ghost)


def test_a_role_whose_trust_policy_does_not_name_agentcore_for_this_account_gets_no_credentials():
    issuer = CredentialIssuer(ACCOUNT, duration=3600)
    lambda_only = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                  "Action": "sts:AssumeRole"}]}
    token = issuer.register(_moto_role(f"trust-{uuid.uuid4().hex[:8]}", lambda_only), "s-3", "us-east-1", RUNTIME_ARN)
    with pytest.raises(RoleNotAssumable, match="does not let bedrock-agentcore.amazonaws.com assume it"):
        issuer.credentials(token)
    other_region = f"arn:aws:bedrock-agentcore:eu-west-1:{ACCOUNT}:runtime/agent-abc1234567"
    token = issuer.register(_moto_role(f"trust-{uuid.uuid4().hex[:8]}"), "s-4", "eu-west-1", other_region)
    with pytest.raises(RoleNotAssumable):  # the template's aws:SourceArn condition names its own region
        issuer.credentials(token)
    token = issuer.register(_moto_role(f"trust-{uuid.uuid4().hex[:8]}"), "s-5", "us-east-1", RUNTIME_ARN)
    assert issuer.credentials(token).role_name.startswith("trust-")


def test_the_credentials_route_answers_only_a_registered_token(emulator):
    req = urllib.request.Request(f"{emulator.endpoint}/_emulator/runtime/credentials",
                                 headers={"Authorization": "not-a-token"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 403
    assert "does not belong to a running agent" in json.load(err.value)["message"]
