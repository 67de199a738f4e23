"""AgentCore Runtime control plane in the emulator: lifecycle, versions, endpoints, errors, persistence."""
from __future__ import annotations

import re
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.support.emulator import EmulatorProcess
from tests.emulator.fixtures.runtime import ROLE_ARN, create_runtime, push_fake_image, require_mmdsv2, wait_ready
from tests.support.shapes import output_problems


def _name(prefix: str = "rt") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def image_uri(emulator):
    return push_fake_image(emulator)


@pytest.fixture
def control(emulator):
    return emulator.client("bedrock-agentcore-control")


def _until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _code(err) -> tuple[str, int]:
    return err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_runtime_is_creating_then_ready_with_aws_shaped_ids(control, image_uri):
    name = _name()
    created = create_runtime(control, name, image_uri)
    assert created["status"] == "CREATING"
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202  # accepted, as AWS answers
    assert re.fullmatch(rf"{name}-[a-zA-Z0-9]{{10}}", created["agentRuntimeId"])
    arn_prefix = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/"
    assert created["agentRuntimeArn"] == arn_prefix + created["agentRuntimeId"]
    assert created["agentRuntimeVersion"] == "1"
    got = wait_ready(control, created["agentRuntimeId"])
    assert got["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"] == image_uri
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800}


def test_every_control_plane_answer_matches_botocore_output_model(control, image_uri):
    answers = {}
    created = create_runtime(control, _name(), image_uri, env={"A": "1"}, description="checked")
    rid = created["agentRuntimeId"]
    answers["CreateAgentRuntime"] = created
    answers["GetAgentRuntime"] = wait_ready(control, rid)
    answers["ListAgentRuntimes"] = control.list_agent_runtimes()
    answers["UpdateAgentRuntime"] = control.update_agent_runtime(
        agentRuntimeId=rid, roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": image_uri}})
    wait_ready(control, rid)
    answers["ListAgentRuntimeVersions"] = control.list_agent_runtime_versions(agentRuntimeId=rid)
    answers["CreateAgentRuntimeEndpoint"] = control.create_agent_runtime_endpoint(
        agentRuntimeId=rid, name="stable", agentRuntimeVersion="1", description="pinned")
    answers["GetAgentRuntimeEndpoint"] = control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    answers["ListAgentRuntimeEndpoints"] = control.list_agent_runtime_endpoints(agentRuntimeId=rid)
    _until(lambda: control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="stable")["status"] == "READY")
    answers["UpdateAgentRuntimeEndpoint"] = control.update_agent_runtime_endpoint(
        agentRuntimeId=rid, endpointName="stable", agentRuntimeVersion="2")
    answers["DeleteAgentRuntimeEndpoint"] = control.delete_agent_runtime_endpoint(agentRuntimeId=rid,
                                                                                  endpointName="stable")
    answers["DeleteAgentRuntime"] = control.delete_agent_runtime(agentRuntimeId=rid)
    for operation, answer in answers.items():
        assert output_problems(control, operation, answer) == [], operation


def test_a_second_runtime_with_the_same_name_is_a_conflict(control, image_uri):
    name = _name()
    create_runtime(control, name, image_uri)
    with pytest.raises(ClientError) as err:
        create_runtime(control, name, image_uri)
    assert _code(err) == ("ConflictException", 409)


def test_a_retried_create_with_the_same_client_token_returns_the_same_runtime(control, image_uri):
    token = uuid.uuid4().hex + "-retry"
    name = _name()
    first = create_runtime(control, name, image_uri, clientToken=token)
    second = create_runtime(control, name, image_uri, clientToken=token)
    assert first["agentRuntimeId"] == second["agentRuntimeId"]


def test_unknown_runtime_is_resource_not_found(control):
    for call in (lambda: control.get_agent_runtime(agentRuntimeId="nope-abcdefghij"),
                 lambda: control.delete_agent_runtime(agentRuntimeId="nope-abcdefghij"),
                 lambda: control.list_agent_runtime_versions(agentRuntimeId="nope-abcdefghij")):
        with pytest.raises(ClientError) as err:
            call()
        assert _code(err) == ("ResourceNotFoundException", 404)


def test_an_image_missing_from_ecr_is_a_validation_error_naming_it(control, image_uri):
    missing = image_uri.rsplit(":", 1)[0] + ":no-such-tag"
    with pytest.raises(ClientError) as err:
        create_runtime(control, _name(), missing)
    assert _code(err) == ("ValidationException", 400)
    assert "no-such-tag" in err.value.response["Error"]["Message"]


def test_a_bad_runtime_name_is_rejected_naming_the_field(control, image_uri):
    with pytest.raises(ClientError) as err:
        create_runtime(control, "bad-name-with-dashes", image_uri)
    assert _code(err) == ("ValidationException", 400)
    assert "agentRuntimeName" in err.value.response["Error"]["Message"]


def test_update_adds_a_version_and_default_endpoint_follows_it(control, image_uri):
    rid = create_runtime(control, _name(), image_uri, env={"V": "1"})["agentRuntimeId"]
    wait_ready(control, rid)
    updated = control.update_agent_runtime(
        agentRuntimeId=rid, roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": image_uri}}, environmentVariables={"V": "2"})
    assert (updated["status"], updated["agentRuntimeVersion"]) == ("UPDATING", "2")
    with pytest.raises(ClientError) as err:  # one change at a time, as on AWS
        control.update_agent_runtime(agentRuntimeId=rid, roleArn=ROLE_ARN,
                                     networkConfiguration={"networkMode": "PUBLIC"},
                                     agentRuntimeArtifact={"containerConfiguration": {"containerUri": image_uri}})
    assert _code(err) == ("ConflictException", 409)
    got = wait_ready(control, rid)
    assert got["environmentVariables"] == {"V": "2"}
    assert control.get_agent_runtime(agentRuntimeId=rid, agentRuntimeVersion="1")["environmentVariables"] == {"V": "1"}
    versions = control.list_agent_runtime_versions(agentRuntimeId=rid)["agentRuntimes"]
    assert [v["agentRuntimeVersion"] for v in versions] == ["2", "1"]
    default = control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    assert (default["liveVersion"], default["status"]) == ("2", "READY")


def test_delete_is_deleting_then_gone(control, image_uri):
    rid = create_runtime(control, _name(), image_uri)["agentRuntimeId"]
    wait_ready(control, rid)
    assert control.delete_agent_runtime(agentRuntimeId=rid)["status"] == "DELETING"
    assert control.get_agent_runtime(agentRuntimeId=rid)["status"] == "DELETING"

    def gone() -> bool:
        try:
            control.get_agent_runtime(agentRuntimeId=rid)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
            return True
        return False

    _until(gone)
    assert rid not in [r["agentRuntimeId"] for r in control.list_agent_runtimes()["agentRuntimes"]]


def test_default_endpoint_exists_and_cannot_be_deleted(control, image_uri):
    rid = create_runtime(control, _name(), image_uri)["agentRuntimeId"]
    wait_ready(control, rid)
    names = [e["name"] for e in control.list_agent_runtime_endpoints(agentRuntimeId=rid)["runtimeEndpoints"]]
    assert names == ["DEFAULT"]
    with pytest.raises(ClientError) as err:
        control.delete_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="DEFAULT")
    assert _code(err) == ("ConflictException", 409)
    with pytest.raises(ClientError) as err:
        control.get_agent_runtime_endpoint(agentRuntimeId=rid, endpointName="missing")
    assert _code(err) == ("ResourceNotFoundException", 404)


def test_list_runtimes_pages_with_next_token(control, image_uri):
    for _ in range(3):
        create_runtime(control, _name("page"), image_uri)
    seen, token = [], None
    while True:
        kwargs = {"maxResults": 2, **({"nextToken": token} if token else {})}
        page = control.list_agent_runtimes(**kwargs)
        assert len(page["agentRuntimes"]) <= 2
        seen += [r["agentRuntimeId"] for r in page["agentRuntimes"]]
        token = page.get("nextToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 3


def test_runtimes_survive_an_emulator_restart(tmp_path):
    first = EmulatorProcess(tmp_path).start()
    try:
        uri = push_fake_image(first)
        control = first.client("bedrock-agentcore-control")
        created = create_runtime(control, _name("kept"), uri, env={"KEPT": "yes"})
        require_mmdsv2(control, created["agentRuntimeId"])
    finally:
        first.stop()
    second = EmulatorProcess(tmp_path).start()
    try:
        control = second.client("bedrock-agentcore-control")
        got = control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
        assert (got["agentRuntimeArn"], got["status"]) == (created["agentRuntimeArn"], "READY")
        assert got["environmentVariables"] == {"KEPT": "yes"}
        answer = second.client("bedrock-agentcore").invoke_agent_runtime(
            agentRuntimeArn=created["agentRuntimeArn"], runtimeSessionId="restart-" + uuid.uuid4().hex,
            payload=b'{"input": {"prompt": "env KEPT"}}')
        assert b'"result":"yes"' in answer["response"].read()
    finally:
        second.stop()


def test_helpers_and_the_emulator_read_local_builds_the_same_way():
    from emulator.runtime import images
    from helpers import image

    assert (image.BUILD_ANNOTATION, image.APP_ANNOTATION, image.LOCAL_BUILD, image.DEFAULT_APP) == (
        images.BUILD_ANNOTATION, images.APP_ANNOTATION, images.LOCAL_BUILD, images.DEFAULT_APP)
    packed = image.pack_context(image.CONTAINER_DIR)
    manifest = __import__("json").loads(image.local_manifest(packed, "s3://b/k.tar.gz"))
    assert images.local_context(manifest) == {"uri": "s3://b/k.tar.gz", "digest": packed.digest,
                                              "app": "agent.app:app"}


def test_retryable_conflict_is_described_as_retried_by_boto3_as_botocore_models_it(emulator):
    from emulator.runtime.exceptions import RetryableConflictException

    for service in ("bedrock-agentcore-control", "bedrock-agentcore"):
        model = emulator.client(service).meta.service_model
        if "RetryableConflictException" in model.shape_names:
            assert model.shape_for("RetryableConflictException").metadata.get("retryable") is not None
    doc = RetryableConflictException.__doc__
    assert "not retried" not in doc and "retries it" in doc


@pytest.mark.parametrize("digest", ["sha256:../../../../tmp/x/evil", "sha256:" + "A" * 64, "md5:" + "0" * 64,
                                    "sha256:" + "0" * 63, None])
def test_an_image_layer_digest_that_is_not_sha256_hex_is_rejected_before_use_as_a_path(tmp_path, digest):
    from emulator.core.settings import Settings
    from emulator.runtime import images
    from emulator.runtime.exceptions import ValidationException

    manifest = {"annotations": {images.BUILD_ANNOTATION: images.LOCAL_BUILD},
                "layers": [{"digest": digest, "urls": ["s3://b/k.tar.gz"]}]}
    with pytest.raises(ValidationException, match="digest"):
        images.local_context(manifest)
    # A directory outside the state dir that the evil digest would name is never handed out unverified.
    outside = tmp_path / "outside" / "evil"
    outside.mkdir(parents=True)
    store = images.ImageStore(Settings(state_dir=tmp_path / "state"))
    store.root.mkdir(parents=True)
    evil = "sha256:" + "/".join([".."] * 3) + "/outside/evil" if digest and ".." in digest else digest
    with pytest.raises(ValidationException, match="digest"):
        store.unpack({"uri": "s3://b/k.tar.gz", "digest": evil, "app": "agent.app:app"}, "us-east-1")


def test_a_malformed_or_foreign_runtime_next_token_is_a_validation_error_naming_it(control, image_uri):
    created = create_runtime(control, _name("tok"), image_uri)
    rid = created["agentRuntimeId"]
    other = control.list_agent_runtimes(maxResults=1).get("nextToken")
    bad = ["-5", "abc", "ListAgentRuntimes.-5", "ListAgentRuntimes.x", f"ListAgentRuntimeVersions-{rid}.0"]
    for token in bad:
        with pytest.raises(ClientError) as err:
            control.list_agent_runtimes(nextToken=token)
        assert _code(err) == ("ValidationException", 400), token
        assert "nextToken" in err.value.response["Error"]["Message"]
    for token in ["-5", "ListAgentRuntimes.0"] + ([other] if other else []):
        with pytest.raises(ClientError) as err:
            control.list_agent_runtime_endpoints(agentRuntimeId=rid, nextToken=token)
        assert _code(err) == ("ValidationException", 400), token
        with pytest.raises(ClientError) as err:
            control.list_agent_runtime_versions(agentRuntimeId=rid, nextToken=token)
        assert _code(err) == ("ValidationException", 400), token


def test_runtime_listings_issue_tokens_of_the_emulators_one_scheme(control, image_uri):
    from botocore.paginate import TokenDecoder

    from emulator.core import paginator

    for _ in range(2):
        create_runtime(control, _name("scheme"), image_uri)
    token = control.list_agent_runtimes(maxResults=1)["nextToken"]
    assert TokenDecoder().decode(token) == {"s": paginator.scope("ListAgentRuntimes", {"maxResults": 1}), "o": 1}


def test_resolving_an_image_does_not_hold_the_store_lock(tmp_path):
    import threading

    from emulator.runtime.store import RuntimeStore

    resolving, release = threading.Event(), threading.Event()

    def slow_resolve(uri, account, region):  # stands in for ECR and S3 calls of up to a minute
        resolving.set()
        release.wait(10)
        return {"containerUri": uri, "imageDigest": None, "context": None}

    store = RuntimeStore(tmp_path / "runtimes.db", slow_resolve)
    params = {"agentRuntimeName": "slow_image", "roleArn": ROLE_ARN, "networkConfiguration": {"networkMode": "PUBLIC"},
              "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "x"}}}
    creating = threading.Thread(target=store.create, args=(params, "123456789012", "us-east-1"))
    creating.start()
    try:
        assert resolving.wait(5)
        answered = threading.Event()
        threading.Thread(target=lambda: (store.list("123456789012", "us-east-1"), answered.set()), daemon=True).start()
        assert answered.wait(2), "ListAgentRuntimes waited for another call's image resolution"
    finally:
        release.set()
        creating.join(10)
    (made,) = store.list("123456789012", "us-east-1")
    assert made["name"] == "slow_image"
    # A second create with the same name, resolved meanwhile, is still a conflict.
    with pytest.raises(Exception, match="already exists"):
        store.create(params, "123456789012", "us-east-1")
    store.close()


def test_create_takes_no_metadata_configuration_and_update_stores_and_returns_it(emulator, control, image_uri):
    import json

    # botocore 1.44.8's CreateAgentRuntime has no metadataConfiguration, so boto3 cannot even send it. Put it in
    # the body on the wire: the emulator reads only the model's members, so the runtime still lacks the flag.
    assert "metadataConfiguration" not in control.meta.service_model.operation_model(
        "CreateAgentRuntime").input_shape.members
    raw = emulator.client("bedrock-agentcore-control")

    def add_member(request, **_):
        request.data = json.dumps({**json.loads(request.body), "metadataConfiguration": {"requireMMDSV2": True}})

    raw.meta.events.register("before-sign.bedrock-agentcore-control.CreateAgentRuntime", add_member)
    rid = create_runtime(raw, _name(), image_uri)["agentRuntimeId"]
    assert "metadataConfiguration" not in wait_ready(control, rid), "a created runtime started with the flag"
    control.update_agent_runtime(
        agentRuntimeId=rid, roleArn=ROLE_ARN, networkConfiguration={"networkMode": "PUBLIC"},
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": image_uri}},
        metadataConfiguration={"requireMMDSV2": True},
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 600, "maxLifetime": 3600})
    got = wait_ready(control, rid)
    assert got["metadataConfiguration"] == {"requireMMDSV2": True}
    assert got["lifecycleConfiguration"] == {"idleRuntimeSessionTimeout": 600, "maxLifetime": 3600}
    assert output_problems(control, "GetAgentRuntime", got) == []


@pytest.mark.parametrize("lifecycle, words", [
    ({"idleRuntimeSessionTimeout": 3600, "maxLifetime": 1800}, "must be less than or equal to maxLifetime"),
    ({"maxLifetime": 28801}, "at most 28800s"),
    ({"idleRuntimeSessionTimeout": 30000}, "idleRuntimeSessionTimeout is 30000s"),
])
def test_a_lifecycle_outside_awss_limits_is_a_validation_error_naming_the_field(control, image_uri, lifecycle, words):
    with pytest.raises(ClientError) as err:
        create_runtime(control, _name(), image_uri, lifecycleConfiguration=lifecycle)
    assert _code(err) == ("ValidationException", 400)
    assert words in err.value.response["Error"]["Message"]
