"""helpers.config: one frozen settings object from notebook parameters and the environment."""
from __future__ import annotations

import dataclasses

import pytest

from helpers import config
from helpers.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("WORKSHOP_TARGET", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "WORKSHOP_STACK_NAME",
                 "WORKSHOP_MEMORY_NAME", "WORKSHOP_MEMORY_ID_PARAMETER", "WORKSHOP_RUNTIME_NAME", "ANTHROPIC_MODEL",
                 "WORKSHOP_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_target_defaults_to_local_with_the_standard_endpoint(clean_env):
    settings = config.load()
    assert settings.target == "local" and settings.is_local
    assert settings.endpoint_url == "http://127.0.0.1:4566"
    assert settings.region == "us-east-1"


def test_unknown_target_is_a_one_line_error_naming_it_and_the_choices(clean_env):
    with pytest.raises(ConfigError) as err:
        config.load(target="azure")
    text = str(err.value)
    assert "\n" not in text
    assert "'azure'" in text and "'local'" in text and "'aws'" in text


def test_unknown_target_from_the_environment_is_rejected_too(clean_env):
    clean_env.setenv("WORKSHOP_TARGET", "staging")
    with pytest.raises(ConfigError, match="staging"):
        config.load()


def test_aws_without_a_region_is_an_error_never_a_default(clean_env):
    with pytest.raises(ConfigError) as err:
        config.load(target="aws")
    assert "region" in str(err.value) and "\n" not in str(err.value)


def test_aws_takes_its_region_from_the_parameter_or_the_environment(clean_env):
    assert config.load(target="aws", region="eu-west-1").region == "eu-west-1"
    clean_env.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert config.load(target="aws").region == "ap-south-1"
    clean_env.setenv("AWS_REGION", "eu-central-1")
    assert config.load(target="aws").region == "eu-central-1"
    assert config.load(target="aws").endpoint_url is None


def test_environment_overrides_names_and_arguments_override_the_environment(clean_env, tmp_path):
    clean_env.setenv("WORKSHOP_STACK_NAME", "env-stack")
    clean_env.setenv("WORKSHOP_MEMORY_NAME", "EnvMemory")
    clean_env.setenv("WORKSHOP_STATE_DIR", str(tmp_path / "state"))
    clean_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    settings = config.load()
    assert settings.stack_name == "env-stack"
    assert settings.memory_name == "EnvMemory"
    assert settings.state_dir == (tmp_path / "state").resolve()
    assert settings.endpoint_url == "http://127.0.0.1:5999"
    assert config.load(stack_name="arg-stack").stack_name == "arg-stack"


def test_explicit_target_wins_over_the_environment(clean_env):
    clean_env.setenv("WORKSHOP_TARGET", "aws")
    assert config.load(target="local").target == "local"


def test_an_unknown_setting_is_named(clean_env):
    with pytest.raises(ConfigError, match="stack_nmae"):
        config.load(stack_nmae="typo")


def test_settings_are_frozen(clean_env):
    settings = config.load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.region = "eu-west-1"
    assert settings.with_(region="eu-west-1").region == "eu-west-1"


def test_the_default_model_on_aws_is_the_inference_profile_of_the_regions_geography(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_MODEL", raising=False)
    assert config.load(target="aws", region="us-west-2").model_id.startswith("us.anthropic.claude")
    assert config.load(target="aws", region="eu-central-1").model_id.startswith("eu.anthropic.claude")
    assert config.load(target="aws", region="ap-southeast-2").model_id.startswith("apac.anthropic.claude")


def test_locally_the_model_is_the_stand_in_unless_the_emulator_forwards_to_an_upstream(clean_env):
    clean_env.delenv("WORKSHOP_MODEL_UPSTREAM_MODEL", raising=False)
    assert config.load().model_id == "local-stand-in"
    clean_env.setenv("WORKSHOP_MODEL_UPSTREAM_MODEL", "qwen3-coder")
    assert config.load().model_id == "qwen3-coder"
    assert config.load(target="aws", region="us-west-2").model_id.startswith("us.anthropic.claude")
    clean_env.setenv("ANTHROPIC_MODEL", "claude-haiku-4-5")
    assert config.load().model_id == "claude-haiku-4-5"


def test_on_aws_a_leftover_local_endpoint_is_not_used(monkeypatch):
    from helpers import aws

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = aws.client("sts", config.load(target="aws", region="eu-west-1"))
    assert client.meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
