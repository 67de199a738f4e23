"""The emulator's CloudFormation: it creates what AWS would (where moto alone skips), and fails as AWS fails."""
from __future__ import annotations

import itertools
import json

import pytest
import yaml
from botocore.exceptions import ClientError

_names = itertools.count()

# Every value that names another resource goes through Ref, Fn::GetAtt or Fn::Sub, so the emulator
# must resolve them; the names are not those of the workshop's template on purpose.
TEMPLATE = {
    "Parameters": {"Purpose": {"Type": "String", "Default": "first"}},
    "Resources": {
        "Store": {"Type": "AWS::S3::Bucket", "Properties": {
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": "true",
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}}},
        "StorePolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "Store"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "OwnAccountReads", "Effect": "Allow",
                 "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                 "Action": "s3:GetObject", "Resource": {"Fn::Sub": "${Store.Arn}/*"}},
                {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                 "Resource": [{"Fn::GetAtt": ["Store", "Arn"]}, {"Fn::Sub": "${Store.Arn}/*"}],
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}}},
        "BuilderRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"},
                 "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "reads", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Sid": "Source", "Effect": "Allow", "Action": "s3:GetObject",
                 "Resource": {"Fn::Sub": "${Store.Arn}/src/*"}}]}}]}},
        "Builder": {"Type": "AWS::CodeBuild::Project", "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}-builder"},
            "Description": {"Fn::Sub": "builds for ${Purpose}"},
            "ServiceRole": {"Fn::GetAtt": ["BuilderRole", "Arn"]},
            "Source": {"Type": "S3", "Location": {"Fn::Sub": "${Store}/src/source.zip"},
                       "BuildSpec": "version: 0.2\n"},
            "Artifacts": {"Type": "NO_ARTIFACTS"},
            "Environment": {"Type": "ARM_CONTAINER", "ComputeType": "BUILD_GENERAL1_SMALL",
                            "Image": "aws/codebuild/amazonlinux-aarch64-standard:3.0", "PrivilegedMode": "true",
                            "EnvironmentVariables": [{"Name": "BUCKET", "Value": {"Ref": "Store"}}]},
            "TimeoutInMinutes": "20"}},
    },
    "Outputs": {
        # moto alone crashes on a GetAtt to a type it lacks, and skips a Ref to one.
        "BuilderName": {"Value": {"Ref": "Builder"}},
        "BuilderArn": {"Value": {"Fn::GetAtt": ["Builder", "Arn"]}},
        "PolicyBucket": {"Value": {"Ref": "StorePolicy"}},
        "StoreName": {"Value": {"Ref": "Store"}},
        "RoleArn": {"Value": {"Fn::GetAtt": ["BuilderRole", "Arn"]}},
    },
}


@pytest.fixture
def cf(emulator):
    return emulator.client("cloudformation")


def _create(cf, template: dict, **kwargs) -> tuple[str, dict]:
    name = f"cfn-test-{next(_names)}"
    cf.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"], **kwargs)
    return name, cf.describe_stacks(StackName=name)["Stacks"][0]


def _outputs(description: dict) -> dict:
    return {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}


@pytest.fixture
def deployed(cf):
    name, description = _create(cf, TEMPLATE)
    yield name, description
    cf.delete_stack(StackName=name)


def test_a_codebuild_project_is_created_with_its_references_resolved(deployed, emulator):
    name, description = deployed
    assert description["StackStatus"] == "CREATE_COMPLETE"
    out = _outputs(description)
    assert out["BuilderName"] == f"{name}-builder"
    project = emulator.client("codebuild").batch_get_projects(names=[out["BuilderName"]])["projects"][0]
    assert out["BuilderArn"] == project["arn"]
    assert project["serviceRole"] == out["RoleArn"]
    assert project["description"] == "builds for first"
    assert project["source"] == {"type": "S3", "location": f"{out['StoreName']}/src/source.zip",
                                 "buildspec": "version: 0.2\n"}
    env = project["environment"]
    assert env["type"] == "ARM_CONTAINER" and env["privilegedMode"] is True
    assert env["environmentVariables"] == [{"name": "BUCKET", "value": out["StoreName"]}]
    assert project["timeoutInMinutes"] == 20


def test_a_bucket_policy_is_applied_without_its_conditional_deny(deployed, emulator):
    _, description = deployed
    out = _outputs(description)
    assert out["PolicyBucket"] == out["StoreName"]
    policy = json.loads(emulator.client("s3").get_bucket_policy(Bucket=out["StoreName"])["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["OwnAccountReads"]
    assert policy["Statement"][0]["Resource"] == f"arn:aws:s3:::{out['StoreName']}/*"
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}


def test_bucket_properties_moto_ignores_are_applied(deployed, emulator):
    _, description = deployed
    s3, bucket = emulator.client("s3"), _outputs(description)["StoreName"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == \
        [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_a_roles_inline_policy_reads_back_as_a_json_document(deployed, emulator):
    _, description = deployed
    role = _outputs(description)["RoleArn"].rsplit("/", 1)[-1]
    document = emulator.client("iam").get_role_policy(RoleName=role, PolicyName="reads")["PolicyDocument"]
    # botocore decodes the JSON AWS answers; moto alone answered a Python literal, left as a string.
    assert isinstance(document, dict)
    assert document["Statement"][0]["Resource"].endswith("/src/*")


def test_an_update_reaches_the_project_the_roles_policies_and_the_bucket(deployed, cf, emulator):
    name, description = deployed
    out = _outputs(description)
    changed = json.loads(json.dumps(TEMPLATE))
    resources = changed["Resources"]
    del resources["Store"]["Properties"]["PublicAccessBlockConfiguration"]
    resources["BuilderRole"]["Properties"]["Policies"] = [{"PolicyName": "writes", "PolicyDocument": {
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}}]
    cf.update_stack(StackName=name, TemplateBody=json.dumps(changed), Capabilities=["CAPABILITY_IAM"],
                    Parameters=[{"ParameterKey": "Purpose", "ParameterValue": "second"}])
    assert cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    project = emulator.client("codebuild").batch_get_projects(names=[out["BuilderName"]])["projects"][0]
    assert project["description"] == "builds for second"
    role = out["RoleArn"].rsplit("/", 1)[-1]
    assert emulator.client("iam").list_role_policies(RoleName=role)["PolicyNames"] == ["writes"]
    with pytest.raises(ClientError) as err:
        emulator.client("s3").get_public_access_block(Bucket=out["StoreName"])
    assert err.value.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"


def test_deleting_the_stack_removes_the_project_and_the_policy(cf, emulator):
    name, description = _create(cf, TEMPLATE)
    out = _outputs(description)
    s3 = emulator.client("s3")
    cf.delete_stack(StackName=name)
    assert cf.describe_stacks(StackName=description["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    assert emulator.client("codebuild").batch_get_projects(names=[out["BuilderName"]])["projects"] == []
    assert out["StoreName"] not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_failed_resource_rolls_the_stack_back_and_names_itself(cf, emulator):
    template = {"Resources": {
        "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": f"/cfn-test/{next(_names)}"}},
        "Store": {"Type": "AWS::S3::Bucket", "DependsOn": "Logs", "Properties": {
            "LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "ExpirationInDays": 1}]}}},
    }, "Outputs": {"StoreName": {"Value": {"Ref": "Store"}}}}
    group = template["Resources"]["Logs"]["Properties"]["LogGroupName"]
    name, description = _create(cf, template)
    assert description["StackStatus"] == "ROLLBACK_COMPLETE"
    assert "Outputs" not in description
    events = cf.describe_stack_events(StackName=name)["StackEvents"]  # newest first
    assert [e["ResourceStatus"] for e in events if e["ResourceType"] == "AWS::CloudFormation::Stack"] == \
        ["ROLLBACK_COMPLETE", "ROLLBACK_IN_PROGRESS", "CREATE_IN_PROGRESS"]
    failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert [(e["LogicalResourceId"], e["ResourceType"]) for e in failed] == [("Store", "AWS::S3::Bucket")]
    assert "LifecycleConfiguration" in failed[0]["ResourceStatusReason"]
    # What was made before the failure is gone again, and the stack lists nothing.
    assert emulator.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    assert cf.list_stack_resources(StackName=name)["StackResourceSummaries"] == []
    cf.delete_stack(StackName=name)


def test_a_resource_type_the_emulator_cannot_create_is_refused_by_name(cf):
    template = {"Resources": {"Agent": {"Type": "AWS::BedrockAgentCore::Runtime", "Properties": {}},
                              "Logs": {"Type": "AWS::Logs::LogGroup"}}}
    with pytest.raises(ClientError) as err:
        _create(cf, template)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "AWS::BedrockAgentCore::Runtime" in err.value.response["Error"]["Message"]


def test_validate_template_accepts_a_valid_template_and_names_a_broken_one(cf):
    answer = cf.validate_template(TemplateBody=yaml.safe_dump({"Description": "ok", **TEMPLATE}))
    assert answer["Description"] == "ok"
    for body, expected in [("Resources: [\n", "Template format error"),
                           ("Outputs: {}\n", "At least one Resources member must be defined"),
                           (json.dumps({"Resources": {"X": {"Properties": {}}}}), "must contain a Type member")]:
        with pytest.raises(ClientError) as err:
            cf.validate_template(TemplateBody=body)
        assert err.value.response["Error"]["Code"] == "ValidationError"
        assert expected in err.value.response["Error"]["Message"], body


def test_a_failed_delete_leaves_the_stack_in_delete_failed_naming_the_bucket(cf, emulator):
    name, description = _create(cf, {"Resources": {"Store": {"Type": "AWS::S3::Bucket"},
                                                   "Logs": {"Type": "AWS::Logs::LogGroup"}},
                                     "Outputs": {"StoreName": {"Value": {"Ref": "Store"}}}})
    s3, bucket = emulator.client("s3"), _outputs(description)["StoreName"]
    s3.put_object(Bucket=bucket, Key="left.txt", Body=b"x")
    cf.delete_stack(StackName=name)
    after = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert after["StackStatus"] == "DELETE_FAILED"
    failed = [e for e in cf.describe_stack_events(StackName=name)["StackEvents"]
              if e["ResourceStatus"] == "DELETE_FAILED" and e["ResourceType"] != "AWS::CloudFormation::Stack"]
    assert [e["LogicalResourceId"] for e in failed] == ["Store"]
    assert "not empty" in failed[0]["ResourceStatusReason"]
    assert [r["LogicalResourceId"] for r in cf.list_stack_resources(StackName=name)["StackResourceSummaries"]] \
        == ["Store"]
    # Emptied, the bucket goes, and so does the stack.
    s3.delete_object(Bucket=bucket, Key="left.txt")
    cf.delete_stack(StackName=name)
    assert cf.describe_stacks(StackName=after["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_failed_update_is_a_settled_state_naming_the_resource_not_a_server_error(cf):
    name, _ = _create(cf, {"Resources": {"Store": {"Type": "AWS::S3::Bucket"}}})
    broken = {"Resources": {"Store": {"Type": "AWS::S3::Bucket", "Properties": {
        "CorsConfiguration": {"CorsRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}}}}}
    cf.update_stack(StackName=name, TemplateBody=json.dumps(broken))
    assert cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"] == "UPDATE_ROLLBACK_FAILED"
    failed = [e for e in cf.describe_stack_events(StackName=name)["StackEvents"] if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert [e["LogicalResourceId"] for e in failed] == ["Store"]
    assert "CorsConfiguration" in failed[0]["ResourceStatusReason"]
    cf.delete_stack(StackName=name)
