"""Ids the agent accepts are exactly ids AgentCore Memory accepts, and safe as paths and S3 keys."""
from __future__ import annotations

import json
import re
import uuid

import boto3
import pytest

from agent.request import BadRequest, parse, runtime_session_id
from agent.settings import AgentSettings
from agent.workspace import Workspace

HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
SETTINGS = AgentSettings.from_env({})


def _memory_shape(name: str):
    return boto3.client("bedrock-agentcore", region_name="us-east-1").meta.service_model.shape_for(name)


def _accepted_by_memory(shape_name: str, value: str) -> bool:
    meta = _memory_shape(shape_name).metadata
    return meta["min"] <= len(value) <= meta["max"] and re.fullmatch(meta["pattern"], value) is not None


def body(**fields) -> bytes:
    return json.dumps({"input": {"prompt": "hi", **fields}}).encode()


@pytest.mark.parametrize("actor", ["john.doe", "a/b", "a:b", "x" * 256, "-lead", "a\n", "ünï"])
def test_actor_ids_memory_or_the_filesystem_would_refuse_are_a_400_naming_the_field(actor):
    with pytest.raises(BadRequest) as err:
        parse(body(actor_id=actor), SETTINGS)
    assert err.value.field == "input.actor_id"


@pytest.mark.parametrize("session", ["a.b", "s/1", "x" * 101, "a:b", "_lead", "s\n"])
def test_session_ids_memory_would_refuse_are_a_400_naming_the_field(session):
    with pytest.raises(BadRequest) as err:
        parse(body(session_id=session), SETTINGS)
    assert err.value.field == "input.session_id"


@pytest.mark.parametrize("actor,session", [("a" * 255, "s" * 100), ("default_user", "project-calc"),
                                           ("Alice_01-x", "9"), ("u", "0b6f4a8e-3c2d-4f1a-9e7b-5d8c2a1f0e93")])
def test_accepted_ids_are_valid_for_memory(actor, session):
    inv = parse(body(actor_id=actor, session_id=session), SETTINGS)
    assert _accepted_by_memory("ActorId", inv.actor_id) and _accepted_by_memory("SessionId", inv.session_id)


@pytest.mark.parametrize("header", [
    "r" * 256,
    "runtime.session." + "x" * 200,
    "urn:session/" + str(uuid.uuid4()) + "/" + "z" * 150,
    "..//..//..//..//..//..//..//..//..//..",
    "ésession-" + "é" * 40,
])
def test_a_runtime_session_header_maps_to_a_valid_memory_session_id_and_directory_deterministically(
        header, tmp_path):
    inv = parse(body(), SETTINGS, header)
    assert _accepted_by_memory("SessionId", inv.session_id), inv.session_id
    assert inv.session_id == runtime_session_id(header) == parse(body(), SETTINGS, header).session_id
    assert runtime_session_id(header[:-1] + "Q") != inv.session_id  # distinct sessions stay distinct
    ws = Workspace(tmp_path, inv.actor_id, inv.session_id, None)
    ws.path.mkdir(parents=True, exist_ok=True)  # no ENAMETOOLONG, no escape
    assert ws.path.is_dir()
    assert ws.path.parent.parent == tmp_path.resolve()


def test_a_runtime_session_header_that_is_already_a_memory_session_id_is_kept():
    header = str(uuid.uuid4())
    assert parse(body(), SETTINGS, header).session_id == header


def test_a_runtime_session_header_the_runtime_could_not_send_is_a_400_naming_the_header():
    with pytest.raises(BadRequest) as err:
        parse(body(), SETTINGS, "../short")
    assert err.value.field == HEADER
    with pytest.raises(BadRequest):
        parse(body(), SETTINGS, "x." * 129)  # 258 characters: over the runtime's own limit
