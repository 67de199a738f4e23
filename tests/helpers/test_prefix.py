"""WORKSHOP_PREFIX: one prefix gives an attendee their own stack, memory, parameter and runtime in a shared account."""
from __future__ import annotations

import re
import uuid

import boto3
import pytest

from helpers import cleanup, config, image, invoke, memory, runtime, stack
from helpers.errors import ConfigError
from tests.emulator.fixtures.runtime import FAKE_AGENT_DIR

# The patterns each name must match: botocore's models where they have one, CloudFormation's and SSM's docs.
_CONTROL = boto3.client("bedrock-agentcore-control", region_name="us-east-1").meta.service_model
MEMORY_NAME = re.compile(_CONTROL.operation_model("CreateMemory").input_shape.members["name"].metadata["pattern"])
RUNTIME_NAME = re.compile(
    _CONTROL.operation_model("CreateAgentRuntime").input_shape.members["agentRuntimeName"].metadata["pattern"])
STACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,127}")  # CloudFormation CreateStack, StackName
SSM_NAME = re.compile(r"/[a-zA-Z0-9_.\-/]{1,1010}")  # SSM PutParameter, Name (a path, as the template allows)


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("WORKSHOP_PREFIX", "WORKSHOP_STACK_NAME", "WORKSHOP_MEMORY_NAME", "WORKSHOP_MEMORY_ID_PARAMETER",
                 "WORKSHOP_RUNTIME_NAME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("prefix", ["alice", "team-2", "a" * config.PREFIX_MAX])
def test_one_prefix_derives_every_name_and_each_is_valid_for_its_pattern(clean_env, prefix):
    clean_env.setenv("WORKSHOP_PREFIX", prefix)
    settings = config.load(target="local")
    default = config.Settings(target="local", region="us-east-1")
    names = (settings.stack_name, settings.memory_name, settings.memory_id_parameter, settings.runtime_name)
    assert all(prefix in n or prefix.replace("-", "_") in n for n in names)
    assert all(mine != theirs for mine, theirs in zip(names, (default.stack_name, default.memory_name,
                                                              default.memory_id_parameter, default.runtime_name)))
    assert STACK_NAME.fullmatch(settings.stack_name) and MEMORY_NAME.fullmatch(settings.memory_name)
    assert SSM_NAME.fullmatch(settings.memory_id_parameter) and RUNTIME_NAME.fullmatch(settings.runtime_name)
    assert settings.prefix == prefix


def test_a_name_of_its_own_wins_over_the_prefix_and_an_argument_over_both(clean_env):
    clean_env.setenv("WORKSHOP_PREFIX", "alice")
    clean_env.setenv("WORKSHOP_STACK_NAME", "alices-own-stack")
    settings = config.load(target="local")
    assert settings.stack_name == "alices-own-stack" and settings.memory_name == "alice_ClaudeCodeAgentMemory"
    assert config.load(target="local", stack_name="given", prefix="bob").memory_name == "bob_ClaudeCodeAgentMemory"
    assert config.load(target="local", stack_name="given").stack_name == "given"


@pytest.mark.parametrize("prefix", ["Alice", "1st", "a_b", "trailing-", "a--b", "x" * (config.PREFIX_MAX + 1)])
def test_a_prefix_that_cannot_make_valid_names_is_an_error_saying_what_is_allowed(clean_env, prefix):
    clean_env.setenv("WORKSHOP_PREFIX", prefix)
    with pytest.raises(ConfigError) as err:
        config.load(target="local")
    assert repr(prefix) in str(err.value) and "lower-case letters" in str(err.value)


def test_two_prefixes_on_one_emulator_never_share_a_resource(local_env, clean_env):
    tag = uuid.uuid4().hex[:6]
    attendees = {}
    for who in (f"alice{tag}", f"bob{tag}"):
        clean_env.setenv("WORKSHOP_PREFIX", who)
        settings = config.load()
        stack.deploy_stack(settings, progress=False)
        mem = memory.get_or_create_memory(settings, progress=False)
        built = image.build_and_push(settings, "local", context_dir=FAKE_AGENT_DIR, progress=False)
        deployed = runtime.get_or_create_runtime(settings, built.image_uri, progress=False)
        answer = invoke.invoke(settings, "env OUTPUT_BUCKET_NAME", "attendee", "shared-session-name", progress=False)
        attendees[who] = (settings, stack.stack_outputs(settings), mem["id"], deployed, answer.result)
    try:
        (a, a_out, a_mem, a_rt, a_bucket), (b, b_out, b_mem, b_rt, b_bucket) = attendees.values()
        assert a.stack_name != b.stack_name and a_out["BucketName"] != b_out["BucketName"]
        assert a_out["RepositoryUri"] != b_out["RepositoryUri"]
        assert a_mem != b_mem and memory.memory_id(a) == a_mem and memory.memory_id(b) == b_mem
        assert a_rt.agent_runtime_arn != b_rt.agent_runtime_arn
        # Each runtime's agent writes to its own attendee's bucket.
        assert (a_bucket, b_bucket) == (a_out["BucketName"], b_out["BucketName"])
    finally:
        for settings, *_ in attendees.values():
            cleanup.cleanup(settings, progress=False)
