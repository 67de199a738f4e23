"""cloudformation/workshop.yaml: lint-clean, least privilege with real action names, a private bucket."""
from __future__ import annotations

import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import botocore.session
import pytest

from helpers import stack
from tests.support.emulator import ROOT

TEMPLATE = ROOT / "cloudformation" / "workshop.yaml"

# IAM action names that are not API operation names (the service authorization reference lists them).
# aws-marketplace:Subscribe/Unsubscribe/ViewSubscriptions are permissions Bedrock checks when it subscribes
# the caller to a model on first invocation (Bedrock user guide, model-access); no public API has them.
PERMISSION_ONLY = {"s3:ListBucket", "s3:GetObjectVersion", "aws-marketplace:Subscribe",
                   "aws-marketplace:Unsubscribe", "aws-marketplace:ViewSubscriptions"}
# Which botocore service models hold the operations an IAM prefix authorises.
PREFIX_SERVICES = {
    "bedrock": ("bedrock-runtime", "bedrock"),
    "bedrock-agentcore": ("bedrock-agentcore", "bedrock-agentcore-control"),
    "s3": ("s3",), "ssm": ("ssm",), "ecr": ("ecr",), "logs": ("logs",), "xray": ("xray",),
    "cloudwatch": ("cloudwatch",), "sts": ("sts",),
    # Every AWS Marketplace API model signs as "aws-marketplace", the IAM prefix (checked below).
    "aws-marketplace": ("marketplace-catalog", "marketplace-agreement", "marketplace-entitlement"),
}
# Actions AWS grants only on "*" (no resource-level permissions).
STAR_ONLY = {"ecr:GetAuthorizationToken", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
             "xray:GetSamplingRules", "xray:GetSamplingTargets", "cloudwatch:PutMetricData",
             "bedrock:ListInferenceProfiles", "aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe",
             "aws-marketplace:ViewSubscriptions"}
AGENT_MEMORY_SOURCE = ROOT / "container" / "agent" / "memory.py"


@pytest.fixture(scope="module")
def template() -> dict:
    return stack.load_template(TEMPLATE)[1]


def _statements(template: dict, logical_id: str) -> list[dict]:
    props = template["Resources"][logical_id]["Properties"]
    return [s for policy in props.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@lru_cache
def _operations(service: str) -> set[str]:
    return set(botocore.session.get_session().get_service_model(service).operation_names)


def test_cfn_lint_reports_no_errors():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")  # the console script installed beside this Python
    proc = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    # cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
    assert proc.returncode & 2 == 0, proc.stdout + proc.stderr
    assert proc.returncode == 0, f"cfn-lint warnings:\n{proc.stdout}"


def test_every_action_in_every_policy_is_a_real_iam_action(template):
    unknown = []
    for logical_id in ("AgentExecutionRole", "ImageBuildRole"):
        for statement in _statements(template, logical_id):
            for action in _as_list(statement["Action"]):
                assert "*" not in action, f"{logical_id} grants a wildcard action {action}"
                prefix, name = action.split(":", 1)
                if action in PERMISSION_ONLY:
                    continue
                services = PREFIX_SERVICES.get(prefix)
                assert services, f"add the botocore service(s) for the prefix {prefix}"
                if not any(name in _operations(svc) for svc in services):
                    unknown.append(f"{logical_id}: {action}")
    assert not unknown, f"actions that no AWS API has: {unknown}"


def _agent_memory_calls() -> set[str]:
    """The AgentCore operations container/agent/memory.py calls (self.client.x(...), self.control.x(...))."""
    import re

    names = re.findall(r"self\.(?:client|control)\.([a-z_]+)\(", AGENT_MEMORY_SOURCE.read_text())
    return {"".join(part.title() for part in name.split("_")) for name in names}


def test_execution_role_allows_exactly_the_memory_calls_the_agent_makes_on_its_memory_only(template):
    memory = [s for s in _statements(template, "AgentExecutionRole")
              if any(a.startswith("bedrock-agentcore:") for a in _as_list(s["Action"]))]
    granted = {a.split(":", 1)[1] for s in memory for a in _as_list(s["Action"])}
    calls = _agent_memory_calls()
    assert calls >= {"CreateEvent", "ListEvents", "RetrieveMemoryRecords", "GetMemory"}, calls
    assert granted == calls, f"granted but never called: {granted - calls}; called but not granted: {calls - granted}"
    for statement in memory:
        for resource in _as_list(statement["Resource"]):
            assert resource == {"Fn::Sub": "arn:${AWS::Partition}:bedrock-agentcore:${AWS::Region}:"
                                           "${AWS::AccountId}:memory/${MemoryName}-*"}


def test_execution_role_invokes_models_and_inference_profiles(template):
    invoke = next(s for s in _statements(template, "AgentExecutionRole") if s.get("Sid") == "BedrockModelInvocation")
    assert set(invoke["Action"]) == {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"}
    resources = " ".join(r["Fn::Sub"] for r in invoke["Resource"])
    assert "foundation-model/*" in resources and ":inference-profile/*" in resources


def test_marketplace_actions_use_the_prefix_the_marketplace_apis_sign_with():
    session = botocore.session.get_session()
    for service in PREFIX_SERVICES["aws-marketplace"]:
        assert session.get_service_model(service).signing_name == "aws-marketplace"


def test_execution_role_may_subscribe_to_models_only_through_bedrock(template):
    market = next(s for s in _statements(template, "AgentExecutionRole")
                  if any(a.startswith("aws-marketplace:") for a in _as_list(s["Action"])))
    assert set(market["Action"]) == {"aws-marketplace:Subscribe", "aws-marketplace:Unsubscribe",
                                     "aws-marketplace:ViewSubscriptions"}
    assert market["Condition"] == {"StringEquals": {"aws:CalledViaLast": "bedrock.amazonaws.com"}}


def test_execution_role_reads_inference_profiles_as_claude_code_does(template):
    actions = {a for s in _statements(template, "AgentExecutionRole") for a in _as_list(s["Action"])}
    assert {"bedrock:GetInferenceProfile", "bedrock:ListInferenceProfiles"} <= actions


def test_only_actions_without_resource_level_permissions_use_a_star_resource(template):
    for logical_id in ("AgentExecutionRole", "ImageBuildRole"):
        for statement in _statements(template, logical_id):
            if "*" in _as_list(statement["Resource"]):
                assert set(_as_list(statement["Action"])) <= STAR_ONLY, statement


def test_execution_role_reads_only_the_memory_id_parameter_and_its_own_bucket(template):
    statements = _statements(template, "AgentExecutionRole")
    ssm = [s for s in statements if any(a.startswith("ssm:") for a in _as_list(s["Action"]))]
    assert [a for s in ssm for a in _as_list(s["Action"])] == ["ssm:GetParameter"]
    assert ssm[0]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                                              "parameter${MemoryIdParameterName}"}]
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    for statement in s3:
        for resource in _as_list(statement["Resource"]):
            assert "OutputBucket" in str(resource), statement


def test_execution_role_trusts_only_agentcore_for_this_account(template):
    trust = template["Resources"]["AgentExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1
    assert trust[0]["Principal"] == {"Service": "bedrock-agentcore.amazonaws.com"}
    assert trust[0]["Action"] == "sts:AssumeRole"
    assert trust[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "bedrock-agentcore" in trust[0]["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]


def test_bucket_is_encrypted_private_versioned_and_tls_only(template):
    bucket = template["Resources"]["OutputBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    policy = template["Resources"]["OutputBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "OutputBucket"}
    deny = policy["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(deny["Resource"]) == 2  # the bucket and its objects


def test_codebuild_builds_arm64_images_with_docker(template):
    project = template["Resources"]["ImageBuildProject"]["Properties"]
    env = project["Environment"]
    assert env["Type"] == "ARM_CONTAINER"
    assert env["Image"] == "aws/codebuild/amazonlinux-aarch64-standard:3.0"
    assert env["PrivilegedMode"] is True
    assert project["Source"]["Type"] == "S3"
    assert project["ServiceRole"] == {"Fn::GetAtt": ["ImageBuildRole", "Arn"]}
    trust = template["Resources"]["ImageBuildRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}


def test_outputs_name_everything_later_notebooks_need(template):
    assert {"BucketName", "RepositoryUri", "RepositoryName", "ExecutionRoleArn", "CodeBuildProjectName",
            "LogGroupName", "Region", "AccountId"} <= set(template["Outputs"])


def test_the_template_references_only_names_it_defines(template):
    stack.check_references(template, TEMPLATE)
