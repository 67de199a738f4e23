"""helpers.image: reproducible contexts, local pushes that mean one thing, and how each method is chosen and run."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile

import pytest
from botocore.stub import ANY, Stubber

from helpers import config, image
from helpers.errors import ConfigError, ImageBuildError
from tests.emulator.fixtures.runtime import FAKE_AGENT_DIR


@pytest.fixture
def context(tmp_path):
    src = tmp_path / "ctx"
    shutil.copytree(FAKE_AGENT_DIR, src)
    (src / "agent" / "__pycache__").mkdir(exist_ok=True)
    (src / "agent" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"cache")
    (src / "notes.log").write_text("local noise")
    (src / ".dockerignore").write_text("# comment\n*.log\n")
    return src


def test_packing_is_byte_for_byte_reproducible(context):
    first = image.pack_context(context)
    os.utime(context / "agent" / "app.py", (1_700_000_000, 1_700_000_000))  # a touch is not a change
    assert image.pack_context(context).data == first.data
    (context / "agent" / "app.py").write_text((context / "agent" / "app.py").read_text() + "\n# changed\n")
    assert image.pack_context(context).digest != first.digest


def test_packed_entries_have_fixed_times_and_owners_and_skip_ignored_files(context):
    packed = image.pack_context(context)
    with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert "agent/app.py" in names and ".dockerignore" in names
    assert not any("__pycache__" in n or n.endswith(".log") for n in names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(image.FIXED_MTIME, 0, 0, "", "")}
    assert packed.data[4:8] == b"\0\0\0\0"  # gzip header mtime 0


def test_zip_for_codebuild_is_reproducible_too(context):
    first, second = image.pack_context(context, "zip"), image.pack_context(context, "zip")
    assert first.data == second.data
    with zipfile.ZipFile(io.BytesIO(first.data)) as zf:
        assert "agent/app.py" in zf.namelist()


def test_a_missing_context_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ImageBuildError, match="not a directory"):
        image.pack_context(tmp_path / "nope")


def _target(emulator, tag):
    s3, ecr = emulator.client("s3"), emulator.client("ecr")
    bucket, repo = f"img-{tag}", f"img-{tag}"
    s3.create_bucket(Bucket=bucket)
    uri = ecr.create_repository(repositoryName=repo)["repository"]["repositoryUri"]
    return bucket, uri


def test_local_build_pushes_once_and_the_same_context_keeps_its_uri(local_env, context):
    settings = config.load()
    bucket, repo_uri = _target(local_env, "same")
    first = image.build_and_push(settings, "local", context_dir=context, repository_uri=repo_uri, bucket=bucket)
    again = image.build_and_push(settings, "local", context_dir=context, repository_uri=repo_uri, bucket=bucket)
    assert first.method == "local" and "TARGET=local" in first.reason
    assert first.pushed and not again.pushed
    assert first.image_uri == again.image_uri == f"{repo_uri}:{image.pack_context(context).tag}"
    assert first.image_digest == again.image_digest
    assert image.latest_image_uri(settings, repo_uri) == first.image_uri
    body = local_env.client("s3").get_object(Bucket=bucket, Key=first.details["context_location"].split("/", 3)[3])
    assert body["Body"].read() == image.pack_context(context).data


def test_a_changed_context_gets_a_new_uri_and_latest_follows_it(local_env, context):
    settings = config.load()
    bucket, repo_uri = _target(local_env, "changed")
    first = image.build_and_push(settings, "local", context_dir=context, repository_uri=repo_uri, bucket=bucket)
    (context / "agent" / "extra.py").write_text("X = 1\n")
    second = image.build_and_push(settings, "local", context_dir=context, repository_uri=repo_uri, bucket=bucket)
    assert second.pushed and second.image_uri != first.image_uri
    assert image.latest_image_uri(settings, repo_uri) == second.image_uri
    df = image.images_df(settings, repo_uri)
    assert len(df) == 2 and "latest" in df.loc[0, "tags"]


def test_auto_picks_local_for_the_emulator_and_refuses_engines_there():
    local = config.load(target="local")
    assert image.choose_method(local, "auto")[0] == "local"
    for method in ("docker", "codebuild"):
        with pytest.raises(ConfigError, match="TARGET=local"):
            image.choose_method(local, method)
    with pytest.raises(ConfigError, match="not a build method"):
        image.choose_method(local, "podman")


def test_auto_on_aws_uses_docker_when_an_engine_answers_else_codebuild_and_says_why():
    aws_settings = config.load(target="aws", region="us-east-1")
    method, why = image.choose_method(aws_settings, "auto", docker_check=lambda: (True, "engine up"))
    assert method == "docker" and "linux/arm64" in why
    method, why = image.choose_method(aws_settings, "auto", docker_check=lambda: (False, "no Docker engine answers"))
    assert method == "codebuild" and "no Docker engine" in why and "ARM64" in why
    with pytest.raises(ConfigError, match="only works with TARGET=local"):
        image.choose_method(aws_settings, "local")


def test_docker_is_unavailable_when_the_engine_does_not_answer(monkeypatch):
    import subprocess

    monkeypatch.setattr(image.shutil, "which", lambda name: "/usr/bin/docker")
    def down(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "Cannot connect to the Docker daemon")
    assert image.docker_available(run=down) == (False, "no Docker engine answers")


def test_docker_commands_log_in_on_stdin_and_build_arm64_and_push(tmp_path):
    login, build = image.docker_commands("123456789012.dkr.ecr.us-east-1.amazonaws.com",
                                         "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:src-abc", tmp_path)
    assert login == ["docker", "login", "--username", "AWS", "--password-stdin",
                     "123456789012.dkr.ecr.us-east-1.amazonaws.com"]
    assert build[:3] == ["docker", "buildx", "build"]
    assert build[build.index("--platform") + 1] == "linux/arm64"
    assert "--push" in build and build[-1] == str(tmp_path)
    assert "--provenance=false" in build and "--sbom=false" in build  # one image manifest, not an index
    assert "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:latest" in build


def test_codebuild_uploads_the_source_starts_the_project_moves_latest_and_reports_the_digest(monkeypatch, context,
                                                                                           capsys):
    import boto3

    settings = config.load(target="aws", region="us-east-1")
    packed = image.pack_context(context, "zip")
    clients = {name: boto3.client(name, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
               for name in ("ecr", "s3", "codebuild", "logs")}
    stubs = {name: Stubber(c) for name, c in clients.items()}
    repo_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent"
    tag_id = {"repositoryName": "agent", "imageIds": [{"imageTag": packed.tag}]}
    stubs["ecr"].add_client_error("describe_images", "ImageNotFoundException", expected_params=tag_id)
    stubs["s3"].add_response("put_object", {}, {"Bucket": "bkt", "Key": "agent-image/source.zip",
                                                "Body": packed.data, "ContentType": "application/zip"})
    stubs["codebuild"].add_response("start_build", {"build": {"id": "proj:1"}},
                                    image.codebuild_request("proj", "bkt", "agent-image/source.zip", packed.tag))
    where = {"groupName": "/build", "streamName": "s1"}
    for status in ("IN_PROGRESS", "SUCCEEDED"):
        stubs["codebuild"].add_response("batch_get_builds", {"builds": [
            {"id": "proj:1", "buildStatus": status, "currentPhase": "BUILD", "logs": where}]}, {"ids": ["proj:1"]})
    stubs["logs"].add_response("get_log_events", {"events": [{"message": "Step 1/5 : FROM python"}],
                                                  "nextForwardToken": "f1"},
                               {"logGroupName": "/build", "logStreamName": "s1", "startFromHead": True})
    for token in ("f1", "f1"):
        stubs["logs"].add_response("get_log_events", {"events": [], "nextForwardToken": "f1"},
                                   {"logGroupName": "/build", "logStreamName": "s1", "startFromHead": True,
                                    "nextToken": token})
    manifest, oci = '{"schemaVersion": 2}', "application/vnd.oci.image.manifest.v1+json"
    stubs["ecr"].add_response("batch_get_image", {"images": [{"imageManifest": manifest,
                                                              "imageManifestMediaType": oci}]},
                              {"repositoryName": "agent", "imageIds": [{"imageTag": packed.tag}],
                               "acceptedMediaTypes": ANY})
    stubs["ecr"].add_response("put_image", {}, {"repositoryName": "agent", "imageManifest": manifest,
                                                "imageTag": "latest",
                                                "imageManifestMediaType": oci})
    stubs["ecr"].add_response("describe_images", {"imageDetails": [{"imageDigest": "sha256:" + "b" * 64}]}, tag_id)
    for s in stubs.values():
        s.activate()
    monkeypatch.setattr(image.aws, "client", lambda name, settings, config=None: clients[name])
    monkeypatch.setattr(image, "CODEBUILD_POLL_SECONDS", 0.01)
    built = image.build_and_push(settings, "codebuild", context_dir=context, repository_uri=repo_uri, bucket="bkt",
                                 project_name="proj", source_key="agent-image/source.zip")
    assert (built.method, built.image_digest, built.image_uri) == ("codebuild", "sha256:" + "b" * 64,
                                                                   f"{repo_uri}:{packed.tag}")
    assert "Step 1/5 : FROM python" in capsys.readouterr().out
    for s in stubs.values():
        s.assert_no_pending_responses()


def test_docker_build_logs_in_with_the_ecr_password_then_builds_and_reports_the_digest(monkeypatch, context):
    import base64
    import subprocess

    import boto3

    settings = config.load(target="aws", region="us-east-1")
    ecr = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(ecr)
    tag = image.pack_context(context).tag
    tag_id = {"repositoryName": "agent", "imageIds": [{"imageTag": tag}]}
    stub.add_client_error("describe_images", "ImageNotFoundException", expected_params=tag_id)
    token = base64.b64encode(b"AWS:secret-password").decode()
    stub.add_response("get_authorization_token", {"authorizationData": [{"authorizationToken": token}]}, {})
    stub.add_response("describe_images", {"imageDetails": [{"imageDigest": "sha256:" + "c" * 64}]}, tag_id)
    stub.activate()
    monkeypatch.setattr(image.aws, "client", lambda name, settings, config=None: ecr)
    ran = []

    def run(cmd, **kwargs):
        ran.append((cmd, kwargs.get("input")))
        return subprocess.CompletedProcess(cmd, 0, "Login Succeeded", "")

    def popen(cmd, **kwargs):
        ran.append((cmd, None))
        return subprocess.Popen(["echo", "pushed"], **kwargs)

    repo_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/agent"
    built = image._build_docker(settings, context, repo_uri, progress=False, run=run, popen=popen)
    assert ran[0] == (image.docker_commands(repo_uri.split("/")[0], built.image_uri, context)[0], "secret-password")
    assert ran[1][0][:3] == ["docker", "buildx", "build"]
    assert (built.image_uri, built.image_digest) == (f"{repo_uri}:{tag}", "sha256:" + "c" * 64)
    stub.assert_no_pending_responses()
