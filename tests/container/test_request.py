"""Ids the agent accepts are exactly ids AgentCore Memory accepts, and safe as paths and S3 keys."""
from __future__ import annotations

import json
import re
import uuid

import boto3
import pytest

from agent.request import BadRequest, clean_text, parse, runtime_session_id
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


@pytest.mark.parametrize("header", [
    "../short",
    "..//..//..//..//..//..//..//..//..//..",
    "/" + "a" * 40,
    "a" * 40 + "/../" + "b",
    "%2e%2e%2f" + "a" * 40,
    "%2E%2E%5C" + "a" * 40,
    "\uff0e\uff0e\uff0f" + "a" * 40,  # fullwidth "../": NFKC folds it to the real thing
    "a" * 40 + "\\b",
    "~" + "a" * 40,
    "a" * 40 + "\x7f",
    "a" * 257,
])
def test_a_runtime_session_header_that_reads_as_a_path_or_the_runtime_could_not_send_is_a_400_naming_the_header(
        header):
    with pytest.raises(BadRequest) as err:
        parse(body(), SETTINGS, header)
    assert err.value.field == HEADER


def _refusal(raw: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as err:
        parse(raw, SETTINGS)
    return err.value


@pytest.mark.parametrize("raw,field", [
    (body(prompt="a\x00b"), "input.prompt"),
    (b'{"input": {"prompt": "half a pair \\ud800 here"}}', "input.prompt"),
    (b'{"input": {"prompt": "low \\udfff"}}', "input.prompt"),
    (body(allowed_tools=["Bash(ls\x00)"]), "input.allowed_tools[0]"),
    (body(allowed_tools=["Bash(ls)\n"]), "input.allowed_tools[0]"),
    (body(allowed_tools=["Read(" + "x" * 2000 + ")"]), "input.allowed_tools[0]"),
    (b'{"input": {"prompt": "caf\xe9"}}', "body"),  # Latin-1, not UTF-8
    (b"\xff\xfe{\x00}\x00", "body"),  # UTF-16 with a BOM: json.loads(bytes) would guess it
    (b"[" * 100_000 + b"]" * 100_000, "body"),
    (b'{"input": ' * 5000 + b"1" + b"}" * 5000, "body"),
    (b'{"input": {"prompt": "hi", "max_turns": 1' + b"0" * 5000 + b"}}", "body"),  # more digits than Python parses
    (body(max_turns=float("nan")), "input.max_turns"),
])
def test_text_the_cli_cannot_take_and_bodies_that_are_not_plain_utf8_json_are_a_400_naming_the_field(raw, field):
    err = _refusal(raw)
    assert err.field == field and len(str(err)) < 1000


def test_a_nested_body_within_the_limit_is_parsed():
    inv = parse(json.dumps({"input": {"prompt": "hi"}, "extra": [[[[{"a": [1]}]]]]}).encode(), SETTINGS)
    assert inv.prompt == "hi"


def test_tabs_newlines_and_other_printable_control_text_in_a_prompt_are_kept():
    inv = parse(body(prompt="line 1\n\tline 2\r\n\x1b[31mred\x1b[0m é 😀"), SETTINGS)
    assert inv.prompt == "line 1\n\tline 2\r\n\x1b[31mred\x1b[0m é 😀"


def test_unknown_field_names_are_warned_about_in_text_any_answer_can_carry():
    inv = parse(b'{"input": {"prompt": "hi", "\\ud800x": 1, "ok\\u0000": 2}}', SETTINGS)
    warning = inv.warnings[0]
    warning.encode("utf-8")  # a lone surrogate here would make the JSON answer itself fail
    assert "\\ud800x" in warning and "\x00" not in warning


def test_clean_text_removes_exactly_what_the_cli_cannot_take():
    assert clean_text("a\x00b\ud800c\udfffd\n\té") == "ab\ufffdc\ufffdd\n\té"
    with pytest.raises(BadRequest):
        parse(body(), SETTINGS, "x." * 129)  # 258 characters: over the runtime's own limit
