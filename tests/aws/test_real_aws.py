"""The workshop against a real AWS account, in order (opt in: `pytest tests/aws --run-aws`).

Needs credentials, AWS_REGION, Bedrock model access and a region with AgentCore. It creates real,
billable resources under the names in WORKSHOP_* (defaults: the workshop's own) and deletes them at
the end, also when a step fails.
"""
from __future__ import annotations

import os
import uuid

import boto3
import pytest

from helpers import cleanup, config, image, invoke, memory, runtime, stack

pytestmark = pytest.mark.aws


@pytest.fixture(scope="module")
def settings():
    if not os.environ.get("AWS_REGION"):
        pytest.skip("set AWS_REGION to run the real-AWS tests")
    if boto3.session.Session().get_credentials() is None:
        pytest.skip("no AWS credentials found")
    s = config.load(target="aws")
    yield s
    report = cleanup.cleanup(s, progress=False)
    assert not [o for o in report if o.status == cleanup.ERROR], report


def test_stack_deploys_and_a_second_deploy_changes_nothing(settings):
    first = stack.deploy_stack(settings, progress=False)
    assert first.status.endswith("_COMPLETE")
    assert stack.deploy_stack(settings, progress=False).action == "unchanged"
    assert {"BucketName", "RepositoryUri", "ExecutionRoleArn"} <= set(stack.stack_outputs(settings))


def test_memory_is_created_once_and_its_id_kept_in_ssm(settings):
    created = memory.get_or_create_memory(settings, progress=False)
    assert memory.get_or_create_memory(settings, progress=False)["id"] == created["id"] == memory.memory_id(settings)


def test_the_image_builds_on_codebuild_and_the_runtime_becomes_ready(settings):
    build = image.build_and_push(settings, method="auto", progress=False)
    assert build.image_uri
    deployment = runtime.get_or_create_runtime(settings, image.latest_image_uri(settings), progress=False)
    assert deployment.status == "READY"


def test_the_agent_writes_a_file_and_the_session_remembers_it(settings):
    session = f"aws-test-{uuid.uuid4().hex[:8]}"
    first = invoke.invoke(settings, "Create hello.py that prints hello", "aws-test-user", session, progress=False)
    assert first["success"] and any(f["file_name"] == "hello.py" for f in first["metadata"]["uploaded_files"])
    second = invoke.invoke(settings, "What files are in the workspace?", "aws-test-user", session, progress=False)
    assert "hello.py" in second.result
