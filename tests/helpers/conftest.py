"""Fixtures the helpers' tests share: the fake agent deployed through the helpers on a runtime of its own."""
from __future__ import annotations

import uuid

import pytest

from helpers import config, image, runtime
from tests.emulator.fixtures.runtime import FAKE_AGENT_DIR, ROLE_ARN


@pytest.fixture(scope="module")
def deployed(emulator, tmp_path_factory):
    """The fake agent deployed on a runtime of its own, through the helpers."""
    tag = uuid.uuid4().hex[:8]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WORKSHOP_TARGET", "local")
        env.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
        env.setenv("WORKSHOP_STATE_DIR", str(tmp_path_factory.mktemp("invoke-state")))
        settings = config.load(runtime_name=f"invoke_rt_{tag}")
        emulator.client("s3").create_bucket(Bucket=f"inv-{tag}")
        repo = emulator.client("ecr").create_repository(repositoryName=f"inv-{tag}")["repository"]["repositoryUri"]
        uri = image.build_and_push(settings, "local", context_dir=FAKE_AGENT_DIR, repository_uri=repo,
                                   bucket=f"inv-{tag}").image_uri
        runtime.get_or_create_runtime(settings, uri, role_arn=ROLE_ARN, bucket=f"inv-{tag}", progress=False)
        yield settings
        runtime.delete_runtime(settings, progress=False)  # and with it the sessions' agent processes
