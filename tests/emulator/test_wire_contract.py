"""The emulator holds to AWS's wire contract under bad input: 4xx with the field named, never a 5xx, a request id on all.

Each case here is one proof/fuzz_emulator.py found answered with a 5xx, routed to the wrong operation, or
refused without naming the field; they are kept as the regression tests of those fixes (issue 15).
"""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from botocore.paginate import TokenEncoder

from emulator.core import paginator
from emulator.core.conformance import response_problems
from proof.fuzz_emulator import request_bytes, send_raw, sign
from tests.emulator.fixtures.runtime import create_runtime, push_fake_image

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MEMORY_ID = "fuzzmem-abcdefghij"  # matches the memoryId pattern; no such memory exists
RUNTIME_ARN = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Frt-abcdefghij"
_OFFSET_TOKEN = TokenEncoder().encode({"s": paginator.scope("ListActors", {"memoryId": MEMORY_ID}), "o": 2 ** 64})

# (what was sent, method, path, body, signing: "sigv4[:service]" | "empty-service" | "none", chunked,
#  expected status, expected error code, the field the answer must name (None: no field is at fault))
CASES = [
    ("signature naming another service", "POST", "/memories/create", b"{}", "sigv4:nosuchservice", False,
     403, "InvalidSignatureException", None),
    ("credential scope naming no service", "POST", "/memories/create", b"{}", "empty-service", False,
     403, "IncompleteSignatureException", None),
    ("unsigned request to a memory route", "GET", f"/memories/{MEMORY_ID}/details", b"", "none", False,
     403, "MissingAuthenticationTokenException", None),
    ("unsigned request to the invoke route", "POST", f"/runtimes/{RUNTIME_ARN}/invocations", b"{}", "none", False,
     403, "MissingAuthenticationTokenException", None),
    ("broken chunk header", "POST", "/memories/create", b"ZZ\r\nabc\r\n0\r\n\r\n", "sigv4", True,
     400, "ValidationException", None),
    ("JSON nested 50k deep", "POST", "/memories/create", b"[" * 50_000 + b"]" * 50_000, "sigv4", False,
     400, "ValidationException", None),
    ("body that is not JSON", "POST", "/memories/create", b"not json", "sigv4", False,
     400, "ValidationException", None),
    ("huge eventTimestamp", "POST", f"/memories/{MEMORY_ID}/events",
     b'{"actorId": "a", "eventTimestamp": 1e20, "payload": []}', "sigv4", False,
     400, "ValidationException", "eventTimestamp"),
    ("eventTimestamp beyond a double", "POST", f"/memories/{MEMORY_ID}/events",
     b'{"actorId": "a", "eventTimestamp": 1e400, "payload": []}', "sigv4", False,
     400, "ValidationException", "eventTimestamp"),
    ("lone surrogate in a string", "POST", "/memories/create",
     b'{"name": "ab\\ud800", "eventExpiryDuration": 7}', "sigv4", False, 400, "ValidationException", "name"),
    ("lone surrogate in the path", "GET", "/memories/ab%ED%A0%80cdefghijklmn/details", b"", "sigv4", False,
     400, "ValidationException", "memoryId"),
    ("a boolean for an integer", "POST", "/memories/create", b'{"name": "ok_name", "eventExpiryDuration": true}',
     "sigv4", False, 400, "ValidationException", "eventExpiryDuration"),
    ("empty runtime id on UpdateAgentRuntime", "PUT", "/runtimes//", b"{}", "sigv4", False,
     400, "ValidationException", "agentRuntimeId"),
    ("empty endpoint name on UpdateAgentRuntimeEndpoint", "PUT", "/runtimes/rt-abcdefghij/runtime-endpoints//",
     b"{}", "sigv4", False, 400, "ValidationException", "endpointName"),
    ("empty sessionId on ListEvents (not ListSessions)", "POST", f"/memories/{MEMORY_ID}/actor/a/sessions/", b"{}",
     "sigv4", False, 400, "ValidationException", "sessionId"),
    ("nextToken offset beyond SQLite's integers", "POST", f"/memories/{MEMORY_ID}/actors",
     json.dumps({"nextToken": _OFFSET_TOKEN}).encode(), "sigv4", False, 400, "ValidationException", "nextToken"),
    ("command without a runtime session", "POST", f"/runtimes/{RUNTIME_ARN}/commands",
     b'{"command": "ls"}', "sigv4", False, 400, "ValidationException", "runtimeSessionId"),
    ("command body that is no object", "POST", f"/runtimes/{RUNTIME_ARN}/commands", b"[1]", "sigv4", False,
     400, "ValidationException", "body"),
]


def _send(emulator, method, path, body, auth, chunked):
    headers = {"Host": f"127.0.0.1:{emulator.port}", "Content-Type": "application/json"}
    if auth.startswith("sigv4"):
        service = auth.partition(":")[2] or "bedrock-agentcore"
        headers = sign(method, f"{emulator.endpoint}{path}", b"" if chunked else body, headers, service)
    elif auth == "empty-service":
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1//aws4_request, "
                                    "SignedHeaders=host, Signature=" + "0" * 64)
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    headers.update({"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))})
    return send_raw(emulator.port, request_bytes(method, path, headers, body))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_an_aws_shaped_4xx_naming_the_field(emulator, case):
    _, method, path, body, auth, chunked, status, code, field = case
    answer = _send(emulator, method, path, body, auth, chunked)
    assert answer.status == status, answer.body[:300]
    assert answer.error_code == code, answer.body[:300]
    assert UUID.match(answer.headers.get("x-amzn-requestid", "")), answer.headers
    doc = json.loads(answer.body)
    assert doc["message"]
    if code == "ValidationException":
        assert doc["reason"] in ("CannotParse", "FieldValidationFailed"), doc
    if field is not None:
        assert field in doc["message"], doc
        assert any(f["name"].split(".")[0].split("[")[0] == field for f in doc["fieldList"]), doc


def test_validation_errors_carry_the_models_reason_and_field_list(emulator):
    control = emulator.client("bedrock-agentcore-control")
    with pytest.raises(control.exceptions.ValidationException) as err:
        control.create_memory(name="bad name with spaces", eventExpiryDuration=7)
    body = err.value.response
    assert body["reason"] == "FieldValidationFailed"
    assert [f["name"] for f in body["fieldList"]] == ["name"]
    assert UUID.match(body["ResponseMetadata"]["RequestId"])


def test_moto_answers_carry_a_uuid_request_id(emulator):
    for service, call in (("sts", lambda c: c.get_caller_identity()), ("ssm", lambda c: c.describe_parameters()),
                          ("s3", lambda c: c.list_buckets())):
        headers = call(emulator.client(service))["ResponseMetadata"]["HTTPHeaders"]
        assert UUID.match(headers.get("x-amzn-requestid", "")), (service, headers)


def test_runtime_summaries_omit_an_empty_description_and_endpoint_lists_of_unknown_runtimes_are_empty(emulator):
    control = emulator.client("bedrock-agentcore-control")
    image = push_fake_image(emulator)
    created = create_runtime(control, f"wire_{uuid.uuid4().hex[:8]}", image)
    versions = control.list_agent_runtime_versions(agentRuntimeId=created["agentRuntimeId"])["agentRuntimes"]
    assert versions and all("description" not in v for v in versions), versions
    listed = [r for r in control.list_agent_runtimes()["agentRuntimes"]
              if r["agentRuntimeId"] == created["agentRuntimeId"]]
    assert listed and "description" not in listed[0]
    # botocore's model gives ListAgentRuntimeEndpoints no ResourceNotFoundException to raise.
    assert control.list_agent_runtime_endpoints(agentRuntimeId="nosuch-abcdefghij")["runtimeEndpoints"] == []


def test_ranking_takes_text_with_a_lone_surrogate():
    from emulator.memory.ranking import Embedder

    vectors = Embedder().embed(["plain text", "broken \ud800 text", None])
    assert vectors.shape == (3, 384)


def test_the_response_check_finds_what_breaks_the_shape():
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-agentcore-control")
    op = model.operation_model("GetMemory")
    rid = {"x-amzn-RequestId": str(uuid.uuid4())}
    error = {**rid, "x-amzn-ErrorType": "ValidationException"}
    assert response_problems(op, 400, error, b'{"message": "m", "reason": "FieldValidationFailed"}') == []
    assert any("reason" in p for p in response_problems(op, 400, error, b'{"message": "m"}'))
    assert any("not one of" in p for p in response_problems(op, 400, error, b'{"message": "m", "reason": "Nope"}'))
    assert any("cannot raise" in p for p in response_problems(
        op, 400, {**rid, "x-amzn-ErrorType": "UnknownOperationException"}, b'{"message": "m"}'))
    assert response_problems(op, 200, {}, b'{}') == ["no x-amzn-RequestId header",
                                                     "GetMemoryOutput.memory: required but missing"]
    good = {"memory": {"arn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:memory/m-abcdefghij",
                       "id": "m-abcdefghij", "name": "m", "eventExpiryDuration": 7, "status": "ACTIVE",
                       "createdAt": time.time(), "updatedAt": time.time()}}
    assert response_problems(op, 200, rid, json.dumps(good).encode()) == []
    good["memory"]["eventExpiryDuration"] = "seven"
    assert response_problems(op, 200, rid, json.dumps(good).encode()) == [
        "GetMemoryOutput.memory.eventExpiryDuration: expected an integer, got str"]
