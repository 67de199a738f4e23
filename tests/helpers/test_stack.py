"""helpers.stack against the emulator: idempotent deploys, clear failures, outputs, deletion."""
from __future__ import annotations

import itertools

import pytest

from helpers import config, stack
from helpers.changes import Change
from helpers.errors import StackError
from tests.support.calls import counting_calls

_names = itertools.count()


@pytest.fixture
def settings(local_env):
    """Settings with a stack name of its own, so tests sharing the session's emulator never collide."""
    return config.load(stack_name=f"stack-test-{next(_names)}")


@pytest.fixture
def deployed(settings):
    """A stack of this test's own, for tests that change or break it."""
    result = stack.deploy_stack(settings, progress=False)
    yield settings, result
    stack.delete_stack(settings, progress=False)


@pytest.fixture(scope="module")
def shared(emulator, tmp_path_factory):
    """One stack for the tests that only read it (a deploy costs seconds on the emulator)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WORKSHOP_TARGET", "local")
        env.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
        env.setenv("WORKSHOP_STATE_DIR", str(tmp_path_factory.mktemp("workshop")))
        env.delenv("AWS_REGION", raising=False)
        env.delenv("AWS_DEFAULT_REGION", raising=False)
        settings = config.load(stack_name="stack-test-shared")
        result = stack.deploy_stack(settings, progress=False)
        yield settings, result
        stack.delete_stack(settings, progress=False)


def test_first_deploy_creates_the_stack_and_returns_its_outputs(shared):
    settings, result = shared
    assert result.action == "created" and result.changed
    assert result.status == "CREATE_COMPLETE"
    for key in ("BucketName", "RepositoryUri", "RepositoryName", "ExecutionRoleArn", "CodeBuildProjectName",
                "LogGroupName", "Region", "AccountId"):
        assert result.outputs.get(key), key
    assert result.outputs["Region"] == "us-east-1"
    assert result.outputs["RepositoryName"] == f"{settings.stack_name}-agent"
    assert stack.stack_outputs(settings) == result.outputs


def test_redeploying_an_unchanged_stack_reports_it_unchanged(shared):
    settings, first = shared
    again = stack.deploy_stack(settings, progress=False)
    assert again.action is Change.UNCHANGED and not again.changed
    assert again.outputs == first.outputs
    assert "unchanged" in repr(again)


def test_a_changed_parameter_updates_the_stack(deployed):
    settings, _ = deployed
    result = stack.deploy_stack(settings.with_(memory_name="OtherMemory"), progress=False)
    assert result.action == "updated"
    assert result.status == "UPDATE_COMPLETE"


def test_the_deployed_stack_has_every_resource_of_the_template(shared, emulator):
    settings, result = shared
    _, template = stack.load_template()
    listed = emulator.client("cloudformation").list_stack_resources(StackName=settings.stack_name)
    assert {r["LogicalResourceId"]: r["ResourceType"] for r in listed["StackResourceSummaries"]} == \
        {name: r["Type"] for name, r in template["Resources"].items()}
    project = emulator.client("codebuild").batch_get_projects(names=[result.outputs["CodeBuildProjectName"]])
    assert project["projects"][0]["serviceRole"] == result.outputs["ImageBuildRoleArn"]


def test_the_stacks_bucket_is_usable_on_the_emulator(shared, emulator):
    settings, result = shared
    s3 = emulator.client("s3")
    bucket = result.outputs["BucketName"]
    s3.put_object(Bucket=bucket, Key="agent-image/check.txt", Body=b"ok")
    assert s3.head_object(Bucket=bucket, Key="agent-image/check.txt")["ContentLength"] == 2
    assert s3.get_object(Bucket=bucket, Key="agent-image/check.txt")["Body"].read() == b"ok"
    # Versioning is on, so deleting leaves a delete marker and the old version.
    s3.delete_object(Bucket=bucket, Key="agent-image/check.txt")
    versions = s3.list_object_versions(Bucket=bucket, Prefix="agent-image/")
    for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def test_outputs_df_has_one_row_per_output_from_one_describe_stacks_call(shared):
    settings, result = shared
    with counting_calls(settings, "cloudformation") as calls:
        df = stack.outputs_df(settings)
    assert calls["DescribeStacks"] == 1
    assert list(df.columns) == ["output", "value", "description"]
    assert dict(zip(df["output"], df["value"])) == result.outputs


def test_role_permissions_df_shows_the_memory_actions_on_the_memory_only(shared):
    settings, result = shared
    df = stack.role_permissions_df(settings)
    memory = df[df["sid"] == "AgentCoreMemoryDataPlane"].iloc[0]
    assert "bedrock-agentcore:RetrieveMemoryRecords" in memory["actions"]
    assert memory["resources"].endswith(f":memory/{settings.memory_name}-*")


def test_a_malformed_template_is_a_one_line_error_naming_the_line(settings, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n   Properties: [\n")
    with pytest.raises(StackError) as err:
        stack.deploy_stack(settings, template=bad, progress=False)
    text = str(err.value)
    assert "\n" not in text
    assert "not valid YAML at line" in text
    assert stack.describe_stack(settings) is None


def test_a_template_without_resources_is_refused_before_anything_is_created(settings, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("AWSTemplateFormatVersion: '2010-09-09'\nOutputs: {}\n")
    with pytest.raises(StackError, match="has no Resources section"):
        stack.deploy_stack(settings, template=empty, progress=False)


def test_a_reference_to_an_unknown_name_is_refused_before_anything_is_created(settings, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n"
                    "Outputs:\n  Name:\n    Value: !Ref Buckett\n")
    with pytest.raises(StackError) as err:
        stack.deploy_stack(settings, template=typo, progress=False)
    assert "output Name refers to Buckett" in str(err.value)
    assert stack.describe_stack(settings) is None


def test_a_failed_create_names_the_resource_and_reason_and_replace_failed_recovers(settings, local_env):
    ecr = local_env.client("ecr")
    taken = stack.template_parameters(settings)["RepositoryName"]
    ecr.create_repository(repositoryName=taken)
    try:
        with pytest.raises(StackError) as err:
            stack.deploy_stack(settings, progress=False)
        text = str(err.value)
        assert "\n" not in text and "ROLLBACK_COMPLETE" in text
        assert "AgentRepository (AWS::ECR::Repository)" in text and taken in text and "already exists" in text
        assert "replace_failed=True" in text
        assert stack.describe_stack(settings)["StackStatus"] == "ROLLBACK_COMPLETE"
    finally:
        ecr.delete_repository(repositoryName=taken, force=True)
    assert stack.deploy_stack(settings, replace_failed=True, progress=False).action == "replaced"
    stack.delete_stack(settings, progress=False)


class _RolledBack:
    """The emulator's CloudFormation, except that the stack looks as AWS leaves a failed first creation.

    moto never reaches ROLLBACK_COMPLETE (it creates resources inside CreateStack), so the state is
    put on top of a real stack; delete_stack and create_stack go to the emulator for real.
    """

    def __init__(self, real):
        self.real = real
        self.deleted = False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def describe_stacks(self, **kwargs):
        answer = self.real.describe_stacks(**kwargs)
        if not self.deleted:
            for s in answer["Stacks"]:
                s["StackStatus"] = "ROLLBACK_COMPLETE"
        return answer

    def describe_stack_events(self, **kwargs):
        if self.deleted:
            return self.real.describe_stack_events(**kwargs)
        event = {"StackName": kwargs["StackName"], "ResourceType": "AWS::ECR::Repository"}
        return {"StackEvents": [
            {**event, "LogicalResourceId": kwargs["StackName"], "ResourceType": "AWS::CloudFormation::Stack",
             "ResourceStatus": "ROLLBACK_COMPLETE"},
            {**event, "LogicalResourceId": "AgentRepository", "ResourceStatus": "CREATE_FAILED",
             "ResourceStatusReason": "Resource creation cancelled"},
            {**event, "LogicalResourceId": "AgentExecutionRole", "ResourceType": "AWS::IAM::Role",
             "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": "Role name is too long"},
            {**event, "LogicalResourceId": kwargs["StackName"], "ResourceType": "AWS::CloudFormation::Stack",
             "ResourceStatus": "CREATE_IN_PROGRESS", "ResourceStatusReason": "User Initiated"},
        ]}

    def get_paginator(self, name):
        if name == "describe_stack_events" and not self.deleted:
            outer = self

            class Pages:
                def paginate(self, **kwargs):
                    return [outer.describe_stack_events(**kwargs)]

            return Pages()
        return self.real.get_paginator(name)

    def delete_stack(self, **kwargs):
        self.deleted = True
        return self.real.delete_stack(**kwargs)


@pytest.fixture
def rolled_back(deployed, monkeypatch):
    settings, _ = deployed
    fake = _RolledBack(stack._cloudformation(settings))
    monkeypatch.setattr(stack, "_cloudformation", lambda s: fake)
    return settings, fake


def test_rollback_complete_is_one_line_naming_the_failed_resource_and_the_way_out(rolled_back):
    settings, fake = rolled_back
    with pytest.raises(StackError) as err:
        stack.deploy_stack(settings, progress=False)
    text = str(err.value)
    assert "\n" not in text
    assert "ROLLBACK_COMPLETE" in text
    assert "AgentExecutionRole (AWS::IAM::Role): Role name is too long" in text
    assert "Delete it and deploy again" in text and "replace_failed=True" in text
    assert not fake.deleted


def test_replace_failed_deletes_a_rolled_back_stack_and_creates_it_again(rolled_back):
    settings, fake = rolled_back
    result = stack.deploy_stack(settings, replace_failed=True, progress=False)
    assert fake.deleted
    assert result.action == "replaced" and result.status == "CREATE_COMPLETE"


def test_a_failed_update_names_the_first_resource_that_failed():
    events = [
        {"LogicalResourceId": "s", "ResourceType": "AWS::CloudFormation::Stack", "ResourceStatus": "UPDATE_ROLLBACK_COMPLETE"},
        {"LogicalResourceId": "OutputBucket", "ResourceType": "AWS::S3::Bucket", "ResourceStatus": "UPDATE_FAILED",
         "ResourceStatusReason": "Resource update cancelled"},
        {"LogicalResourceId": "s", "ResourceType": "AWS::CloudFormation::Stack", "ResourceStatus": "UPDATE_ROLLBACK_IN_PROGRESS"},
        {"LogicalResourceId": "AgentRepository", "ResourceType": "AWS::ECR::Repository", "ResourceStatus": "UPDATE_FAILED",
         "ResourceStatusReason": "Repository name is taken"},
        {"LogicalResourceId": "s", "ResourceType": "AWS::CloudFormation::Stack", "ResourceStatus": "UPDATE_IN_PROGRESS"},
        # An older operation's failure must not be blamed.
        {"LogicalResourceId": "Old", "ResourceType": "AWS::IAM::Role", "ResourceStatus": "CREATE_FAILED",
         "ResourceStatusReason": "old"},
    ]

    class Events:
        def get_paginator(self, name):
            class Pages:
                def paginate(self, **kwargs):
                    return [{"StackEvents": events}]
            return Pages()

    assert stack._failure_reason(Events(), "s") == "AgentRepository (AWS::ECR::Repository): Repository name is taken"


def test_delete_is_safe_to_repeat_and_removes_the_codebuild_project(settings, local_env):
    result = stack.deploy_stack(settings, progress=False)
    assert stack.delete_stack(settings, progress=False) is Change.DELETED
    assert stack.delete_stack(settings, progress=False) is Change.ALREADY_GONE
    assert stack.describe_stack(settings) is None
    projects = local_env.client("codebuild").batch_get_projects(names=[result.outputs["CodeBuildProjectName"]])
    assert projects["projects"] == []


def test_a_delete_blocked_by_a_non_empty_bucket_names_it_and_says_what_to_do(deployed, local_env):
    settings, result = deployed
    s3, bucket = local_env.client("s3"), result.outputs["BucketName"]
    s3.put_object(Bucket=bucket, Key="left.txt", Body=b"x")
    with pytest.raises(StackError) as err:
        stack.delete_stack(settings, progress=False)
    text = str(err.value)
    assert "\n" not in text and "could not be deleted" in text
    assert "OutputBucket (AWS::S3::Bucket)" in text and "empty the bucket" in text
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def test_outputs_of_a_missing_stack_say_to_deploy_first(settings):
    with pytest.raises(StackError) as err:
        stack.stack_outputs(settings)
    assert "does not exist" in str(err.value) and "01_deploy_stack" in str(err.value)


def test_without_credentials_on_aws_the_error_is_one_line(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = config.load(target="aws", region="eu-west-1", stack_name="no-credentials")
    with pytest.raises(StackError) as err:
        stack.stack_outputs(settings)
    assert "\n" not in str(err.value) and "credentials" in str(err.value)
