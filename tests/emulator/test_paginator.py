"""The one nextToken scheme of the emulator's own services (emulator/core/paginator.py)."""
from __future__ import annotations

import base64
import json

import pytest
from botocore.paginate import TokenDecoder

from emulator.core import paginator
from emulator.core.errors import ValidationException


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("token", [
    "not-a-token", "%%%", _b64(b"\xff\xfe"), _b64(b"not json"), _b64(b"[1, 2]"), _b64(b'"text"'),
    _b64(b'{"o": 1}'), _b64(json.dumps({"s": "X", "boto_encoded_keys": [["s"]]}).encode()),
    _b64(json.dumps({"s": "X", "boto_encoded_keys": 5}).encode()),
])
def test_a_token_that_is_not_ours_is_a_validation_error_naming_next_token(token):
    with pytest.raises(ValidationException, match="nextToken"):
        paginator.decode_offset(token, paginator.scope("ListMemories", {}))


def test_a_token_is_refused_by_another_operation_and_by_the_same_one_with_other_parameters():
    issued = paginator.encode(paginator.scope("ListSessions", {"memoryId": "m", "actorId": "a"}), {"o": 20})
    with pytest.raises(ValidationException, match="different request"):
        paginator.decode_offset(issued, paginator.scope("ListActors", {"memoryId": "m"}))
    with pytest.raises(ValidationException, match="different request"):
        paginator.decode_offset(issued, paginator.scope("ListSessions", {"memoryId": "m", "actorId": "b"}))
    assert paginator.decode_offset(issued, paginator.scope("ListSessions", {"actorId": "a", "memoryId": "m"})) == 20


def test_the_page_size_may_change_from_page_to_page():
    items = list(range(7))
    first = paginator.page(items, {"maxResults": 3}, "items", paginator.scope("Op", {"maxResults": 3}), 100)
    scope = paginator.scope("Op", {"maxResults": 5, "nextToken": first["nextToken"]})
    second = paginator.page(items, {"maxResults": 5, "nextToken": first["nextToken"]}, "items", scope, 100)
    assert (first["items"], second["items"], "nextToken" in second) == ([0, 1, 2], [3, 4, 5, 6], False)


def test_tokens_are_botocores_encoding_of_the_position_and_the_request_checksum():
    token = paginator.encode(paginator.scope("ListEvents", {"memoryId": "m"}), {"t": 1.5, "q": 3})
    doc = TokenDecoder().decode(token)
    assert doc["s"].startswith("ListEvents:") and (doc["t"], doc["q"]) == (1.5, 3)


@pytest.mark.parametrize("position", [{}, {"o": -1}, {"o": "1"}, {"o": 1.5}, {"o": True}, {"o": None}])
def test_a_token_with_a_malformed_position_is_refused_as_malformed(position):
    scope = paginator.scope("ListMemories", {})
    with pytest.raises(ValidationException, match="malformed"):
        paginator.decode_offset(paginator.encode(scope, position), scope)


def test_list_memories_issues_tokens_of_the_one_scheme(emulator):
    import uuid

    control = emulator.client("bedrock-agentcore-control")
    for _ in range(2):
        control.create_memory(name=f"Paginated_{uuid.uuid4().hex[:12]}", eventExpiryDuration=30)
    token = control.list_memories(maxResults=1)["nextToken"]
    assert TokenDecoder().decode(token)["s"] == paginator.scope("ListMemories", {"maxResults": 1})
