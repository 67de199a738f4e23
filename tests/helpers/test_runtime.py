"""helpers.runtime against the emulator: created once, updated to a new image, described, deleted safely."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

from helpers import config, image, runtime
from helpers.changes import Change
from helpers.errors import AgentRuntimeError
from tests.emulator.fixtures.runtime import FAKE_AGENT_DIR, ROLE_ARN


@pytest.fixture
def target(local_env):
    """Settings with a runtime name of its own, and a bucket and repository to build into."""
    tag = uuid.uuid4().hex[:8]
    settings = config.load(runtime_name=f"helper_rt_{tag}")
    local_env.client("s3").create_bucket(Bucket=f"rt-{tag}")
    repo_uri = local_env.client("ecr").create_repository(repositoryName=f"rt-{tag}")["repository"]["repositoryUri"]
    yield settings, f"rt-{tag}", repo_uri
    runtime.delete_runtime(settings, progress=False)


def _build(settings, bucket, repo_uri, context_dir=FAKE_AGENT_DIR):
    return image.build_and_push(settings, "local", context_dir=context_dir, repository_uri=repo_uri, bucket=bucket)


def test_runtime_is_created_once_and_repeating_changes_nothing(target):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    first = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    again = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    assert (first.action, again.action) == (Change.CREATED, Change.UNCHANGED)
    assert first.agent_runtime_arn == again.agent_runtime_arn and again.status == "READY"
    assert again.agent_runtime_version == "2"  # version 1 as created, version 2 with MMDSv2 required
    saved = json.loads((settings.state_dir / "deployment.json").read_text())
    assert saved["agent_runtime_arn"] == first.agent_runtime_arn and saved["image_uri"] == uri
    assert saved["environment"]["OUTPUT_BUCKET_NAME"] == bucket
    assert saved["environment"]["MEMORY_ID_PARAMETER"] == settings.memory_id_parameter


def test_a_new_image_or_environment_updates_the_runtime(target, tmp_path):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    changed = tmp_path / "agent-v2"
    shutil.copytree(FAKE_AGENT_DIR, changed)
    (changed / "agent" / "version.py").write_text("VERSION = 2\n")
    new_uri = _build(settings, bucket, repo_uri, changed).image_uri
    assert new_uri != uri
    updated = runtime.get_or_create_runtime(settings, new_uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    assert (updated.action, updated.agent_runtime_version, updated.status) == ("updated", "3", "READY")
    assert "keep running version 2" in updated.note and "version 2" in updated._repr_markdown_()
    env_changed = runtime.get_or_create_runtime(settings, new_uri, role_arn=ROLE_ARN, bucket=bucket,
                                                environment={"MEMORY_MAX_TURNS": "5"}, progress=False)
    assert (env_changed.action, env_changed.agent_runtime_version) == ("updated", "4")


def test_runtime_info_df_reads_the_runtime_back_from_the_service(target):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    made = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    df = runtime.runtime_info_df(settings)
    values = dict(zip(df["field"], df["value"]))
    assert values["arn"] == made.agent_runtime_arn and values["image"] == uri and values["status"] == "READY"
    assert values["DEFAULT endpoint serves version"] == "2" and values["requires MMDSv2"] is True
    assert values["log group"] == f"/aws/bedrock-agentcore/runtimes/{made.agent_runtime_id}-DEFAULT"


def test_delete_runtime_is_safe_to_repeat(target):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    assert runtime.delete_runtime(settings, progress=False) is Change.DELETED
    assert runtime.delete_runtime(settings, progress=False) is Change.ALREADY_GONE
    with pytest.raises(AgentRuntimeError, match="notebook 04"):
        runtime.runtime_info_df(settings)


def test_a_missing_image_is_an_agent_runtime_error_naming_it(target):
    settings, bucket, repo_uri = target
    with pytest.raises(AgentRuntimeError, match="src-missing"):
        runtime.get_or_create_runtime(settings, f"{repo_uri}:src-missing", role_arn=ROLE_ARN, bucket=bucket,
                                      progress=False)


def test_every_runtime_it_creates_or_updates_requires_mmdsv2(target, local_env):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    created = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    control = local_env.client("bedrock-agentcore-control")
    got = control.get_agent_runtime(agentRuntimeId=created.agent_runtime_id)
    assert got["metadataConfiguration"] == {"requireMMDSV2": True}
    # Someone updates it without the flag: the same image and environment is no longer "unchanged".
    keep = {k: got[k] for k in ("agentRuntimeArtifact", "roleArn", "networkConfiguration", "protocolConfiguration",
                                "environmentVariables", "lifecycleConfiguration")}
    control.update_agent_runtime(agentRuntimeId=created.agent_runtime_id, **keep)
    runtime.wait_for_runtime_ready(settings, created.agent_runtime_id, progress=False)
    repaired = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    assert repaired.action == "updated"
    assert control.get_agent_runtime(agentRuntimeId=created.agent_runtime_id)["metadataConfiguration"] == {
        "requireMMDSV2": True}


def test_the_session_lifecycle_is_explicit_and_a_change_is_an_update(target, local_env):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    created = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    control = local_env.client("bedrock-agentcore-control")
    assert control.get_agent_runtime(agentRuntimeId=created.agent_runtime_id)["lifecycleConfiguration"] == {
        "idleRuntimeSessionTimeout": runtime.IDLE_SESSION_TIMEOUT, "maxLifetime": runtime.MAX_SESSION_LIFETIME}
    shorter = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, idle_timeout=300,
                                            max_lifetime=3600, progress=False)
    assert shorter.action == "updated"
    assert control.get_agent_runtime(agentRuntimeId=created.agent_runtime_id)["lifecycleConfiguration"] == {
        "idleRuntimeSessionTimeout": 300, "maxLifetime": 3600}
    assert runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, idle_timeout=300,
                                         max_lifetime=3600, progress=False).action == "unchanged"


@pytest.mark.parametrize("idle, life, words", [(30, 3600, "idle_timeout=30"), (900, 28801, "max_lifetime=28801"),
                                               (3600, 1800, "longer than max_lifetime")])
def test_a_lifecycle_outside_awss_limits_is_refused_before_any_call(idle, life, words):
    with pytest.raises(AgentRuntimeError) as err:
        runtime.lifecycle_configuration(idle, life)
    assert words in str(err.value)


def test_session_storage_is_opt_in_and_sets_the_mount_and_tells_the_agent(target):
    settings, bucket, repo_uri = target
    uri = _build(settings, bucket, repo_uri).image_uri
    plain = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False)
    assert "filesystemConfigurations" not in runtime.find_runtime(settings)
    assert "SESSION_STORAGE_PATH" not in plain.environment
    on = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False,
                                       session_storage="/mnt/workspace")
    assert on.action == "updated" and on.environment["SESSION_STORAGE_PATH"] == "/mnt/workspace"
    assert runtime.find_runtime(settings)["filesystemConfigurations"] == [
        {"sessionStorage": {"mountPath": "/mnt/workspace"}}]
    again = runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=bucket, progress=False,
                                          session_storage="/mnt/workspace")
    assert again.action == "unchanged"


@pytest.mark.parametrize("path", ["/tmp/workspace", "/mnt/a/b", "workspace"])
def test_a_session_storage_path_aws_would_refuse_is_an_error_before_any_call(local_env, path):
    with pytest.raises(AgentRuntimeError, match="mount path") as err:
        runtime.get_or_create_runtime(config.load(runtime_name="never_made"), "uri", role_arn=ROLE_ARN, bucket="b",
                                      session_storage=path, progress=False)
    assert "/mnt/workspace" in err.value.hint
