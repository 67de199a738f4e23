"""Bad input against the emulator's AgentCore Memory and Runtime operations, generated from botocore's shapes.

For each operation the emulator serves, hypothesis draws a valid request from the operation's input shape (its
patterns, lengths, ranges, enums and unions) and breaks one member of it: drops it when it is required, gives
it the wrong JSON type, a length or value one past its limits, unicode, NUL bytes, a lone UTF-16 surrogate, a
huge string, a huge or negative number or timestamp. Hand-made raw requests add what no shape describes:
bodies that are not JSON, JSON nested 50,000 deep, broken chunked framing, signatures naming another service
or none, unsigned requests. Every request is signed with botocore's SigV4Auth and sent over a raw socket, so
the bytes are exactly the ones chosen.

Figures: requests sent (in all and per operation), 5xx answers (0: boto3 retries them), hangs over 10 s (0),
ValidationExceptions that do not name the member at fault in `fieldList` and in the message (0), input that is
certainly invalid yet not refused with a ValidationException (0), and responses that break botocore's output
or error shapes (0), which the emulator itself records with EMULATOR_CHECK_RESPONSES.
"""
from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from proof import Profile, Report

# The operations emulator/memory/responses.py and emulator/runtime/responses.py register, by model.
OPERATIONS = {
    "bedrock-agentcore-control": (
        "CreateMemory", "GetMemory", "ListMemories", "UpdateMemory", "DeleteMemory",
        "CreateAgentRuntime", "GetAgentRuntime", "UpdateAgentRuntime", "DeleteAgentRuntime", "ListAgentRuntimes",
        "ListAgentRuntimeVersions", "CreateAgentRuntimeEndpoint", "GetAgentRuntimeEndpoint",
        "UpdateAgentRuntimeEndpoint", "DeleteAgentRuntimeEndpoint", "ListAgentRuntimeEndpoints",
    ),
    "bedrock-agentcore": (
        "CreateEvent", "GetEvent", "ListEvents", "DeleteEvent", "ListSessions", "ListActors",
        "RetrieveMemoryRecords", "ListMemoryRecords", "GetMemoryRecord", "DeleteMemoryRecord",
        "BatchCreateMemoryRecords", "BatchUpdateMemoryRecords", "BatchDeleteMemoryRecords",
        "InvokeAgentRuntime", "StopRuntimeSession", "InvokeAgentRuntimeCommand",
    ),
}
SIGNING_NAME = "bedrock-agentcore"
REGION = "us-east-1"
HANG_SECONDS = 10.0
# Examples per operation at scale 1 (the short profile); the time budget may cut them short.
EXAMPLES = 48
HUGE = 300_000
# Paths and headers get less: http.server refuses a request line or header over 64 KiB before any service sees it.
HUGE_IN_LINE = 8_000

_session = botocore.session.get_session()
_CREDENTIALS = Credentials("test", "test")


# -- valid values, from the shapes --------------------------------------------------------------------------
def _limits(shape: Shape, default_max: int) -> tuple[int, int]:
    lo = int(shape.metadata.get("min", 0))
    hi = int(shape.metadata.get("max", max(lo, default_max)))
    return lo, max(lo, min(hi, lo + default_max))


_TRAILING_CLASS = re.compile(r"^(.*?)(\[[^\]]+\])[*+]$")


def _pattern_strategy(pattern: str, lo: int, hi: int):
    try:
        re.compile(pattern)
    except re.error:
        return None
    generated = pattern
    m = _TRAILING_CLASS.match(pattern)
    if m and lo > 8:
        # e.g. memoryRecordId `mem-[a-zA-Z0-9-_]*` with 40-50 characters: from_regex seldom draws 40 by itself,
        # so the trailing class gets the length (what the prefix takes is estimated when it is not literal).
        prefix = m.group(1)
        prefix_len = 1 if re.search(r"[\\\[\](){}*+?|.^$]", prefix) else len(prefix)
        generated = f"{prefix}{m.group(2)}{{{max(lo - prefix_len, 0)},{max(min(hi, lo + 16) - prefix_len, 0)}}}"
    return st.from_regex(generated, fullmatch=True).filter(lambda s: lo <= len(s) <= hi and "\n" not in s)


def valid(shape: Shape, depth: int = 0) -> st.SearchStrategy:
    """Values that fit `shape` as the emulator reads them (JSON on the wire)."""
    kind = shape.type_name
    if kind == "string":
        if shape.enum:
            return st.sampled_from(list(shape.enum))
        lo, hi = _limits(shape, 24)
        pattern = shape.metadata.get("pattern")
        strategy = _pattern_strategy(pattern, lo, int(shape.metadata.get("max", 10_000))) if pattern else None
        return strategy if strategy is not None else st.text(
            alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=max(lo, 1), max_size=max(hi, 1))
    if kind in ("integer", "long"):
        lo = int(shape.metadata.get("min", 0))
        return st.integers(lo, int(shape.metadata.get("max", lo + 50)))
    if kind in ("float", "double"):
        lo = float(shape.metadata.get("min", 0))
        return st.floats(lo, float(shape.metadata.get("max", lo + 1)), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(1_700_000_000, 1_900_000_000)
    if kind == "blob":
        return st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode())
    if kind == "structure":
        if shape.is_document_type:
            return st.just({"note": "a document"})
        if shape.metadata.get("union"):
            return st.sampled_from(sorted(shape.members)).flatmap(
                lambda name: valid(shape.members[name], depth + 1).map(lambda v, n=name: {_wire(shape, n): v}))
        required = {name: valid(shape.members[name], depth + 1) for name in shape.required_members}
        optional = {name: valid(m, depth + 1) for name, m in shape.members.items()
                    if name not in shape.required_members and depth < 2 and not _located(m)}
        return st.fixed_dictionaries(required, optional=optional).map(lambda d: {_wire(shape, k): v
                                                                                 for k, v in d.items()})
    if kind == "list":
        lo, hi = _limits(shape, 2)
        return st.lists(valid(shape.member, depth + 1), min_size=lo, max_size=max(lo, min(hi, 2)))
    if kind == "map":
        lo, hi = _limits(shape, 2)
        return st.dictionaries(valid(shape.key, depth + 1), valid(shape.value, depth + 1), min_size=lo,
                               max_size=max(lo, min(hi, 2)))
    return st.none()


def _wire(shape: Shape, name: str) -> str:
    return shape.members[name].serialization.get("name", name)


def _located(member: Shape) -> bool:
    return member.serialization.get("location") in ("uri", "querystring", "header", "headers")


# -- breaking one member ---------------------------------------------------------------------------------------
@dataclass
class Mutation:
    member: str
    kind: str
    value: Any = None
    # True when AWS must refuse it: then only a ValidationException naming the member is a right answer.
    invalid: bool = True


_MISSING = object()


def _wrong_type(member: Shape) -> list[Any]:
    kind = member.type_name
    if kind == "string":
        return [12345, {"not": "a string"}, [1, 2], True]
    if kind in ("integer", "long"):
        return ["twelve", 1.5, [1], True]
    if kind in ("float", "double"):
        return ["one", [1.0], True]
    if kind == "boolean":
        return ["true", 1, [True]]
    if kind == "timestamp":
        return ["not a time", [1], {"t": 1}, True]
    if kind == "blob":
        return [12345, ["x"], "not base64 !!"]
    if kind == "structure" and not member.is_document_type:
        return ["a string", [1, 2], 7]
    if kind == "list":
        return ["a string", {"a": 1}, 7]
    if kind == "map":
        return ["a string", [1, 2], 7]
    return []


def mutations(name: str, member: Shape, required: bool, location: str | None, payload: bool = False) -> list[Mutation]:
    """Every way of breaking this member the section tries, for hypothesis to choose from.

    `payload`: the member is the whole body; a blob or string payload is any bytes, so no type is wrong for it.
    """
    out: list[Mutation] = []
    kind = member.type_name
    meta = member.metadata
    in_path_or_header = location in ("uri", "querystring", "header")
    if required:
        # A blob or string payload left out is an empty body, which is an empty payload on the wire.
        out.append(Mutation(name, "missing", _MISSING, invalid=not (payload and kind in ("blob", "string"))))
    if not in_path_or_header and not (payload and kind in ("blob", "string")):
        out += [Mutation(name, "wrong type", v) for v in _wrong_type(member)]
    if kind == "string":
        lo, hi = meta.get("min"), meta.get("max")
        if lo and lo >= 1:
            # An empty header is no header in HTTP: only a longer minimum makes an empty one certainly wrong.
            out.append(Mutation(name, "min-1 length", "a" * (lo - 1), invalid=location != "header" or lo > 1))
        if hi is not None and hi < HUGE:
            out.append(Mutation(name, "max+1 length", "a" * (hi + 1)))
        if member.enum:
            out.append(Mutation(name, "not in enum", "NOT_A_VALUE"))
        huge = HUGE_IN_LINE if in_path_or_header else HUGE
        out.append(Mutation(name, "huge string", "x" * huge, invalid=hi is not None and hi < huge))
        if location != "header":  # a header carries bytes, which hold no surrogate and no NUL
            out.append(Mutation(name, "lone surrogate", "ab\ud800cd"))
            out.append(Mutation(name, "NUL byte", "ab\x00cd", invalid=False))
        out.append(Mutation(name, "unicode", "ünïcødé-名前-🙂", invalid=False))
    if kind in ("integer", "long"):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None:
            out.append(Mutation(name, "below min", lo - 1))
        if hi is not None:
            out.append(Mutation(name, "above max", hi + 1))
        out += [Mutation(name, "huge number", 2 ** 70), Mutation(name, "huge negative", -(2 ** 70))]
    if kind == "timestamp":
        out += [Mutation(name, "huge timestamp", 1e20), Mutation(name, "huge negative timestamp", -1e20),
                Mutation(name, "number beyond double", "1e400" if in_path_or_header else _RAW_HUGE)]
    if kind == "list" and meta.get("max") is not None and meta["max"] < 2000:
        out.append(Mutation(name, "max+1 items", _ITEMS_PLACEHOLDER))
    return out


_ITEMS_PLACEHOLDER = object()  # replaced by max+1 copies of a valid item
_RAW_HUGE = object()  # the JSON literal 1e400, which Python reads as infinity


# -- sending -------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    hung: bool = False
    error: str | None = None

    def json(self) -> dict:
        try:
            doc = json.loads(self.body)
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            return {}

    @property
    def error_code(self) -> str:
        return self.headers.get("x-amzn-errortype", "").split(":", 1)[0]


def sign(method: str, url: str, body: bytes, headers: dict[str, str], service: str = SIGNING_NAME) -> dict:
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(_CREDENTIALS, service, REGION).add_auth(request)
    return dict(request.headers.items())


def send_raw(port: int, data: bytes) -> Answer:
    """Write `data` to a fresh connection and read one HTTP answer (or time out: a hang)."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_SECONDS)
    try:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                      time.monotonic() - started)
    except socket.timeout:
        return Answer(None, seconds=time.monotonic() - started, hung=True)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, seconds=time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()


def request_bytes(method: str, path: str, headers: dict, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1")]
    for name, value in headers.items():
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        lines.append(name.encode("latin-1") + b": " + raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def build(op: OperationModel, params: dict, port: int) -> tuple[str, str, dict, bytes]:
    """(method, path with query, headers, body) for `params`, laid out as botocore's rest-json serializer does."""
    shape = op.input_shape
    uri, _, static_query = op.http["requestUri"].partition("?")
    query: list[tuple[str, str]] = [tuple(p.partition("=")[::2]) for p in static_query.split("&") if p]
    headers: dict[str, Any] = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
    body_doc: dict = {}
    payload_name = shape.serialization.get("payload")
    body: bytes | None = None
    for name, member in shape.members.items():
        wire = member.serialization.get("name", name)
        location = member.serialization.get("location")
        if name not in params:
            if location == "uri":
                uri = uri.replace("{" + wire + "}", "").replace("{" + wire + "+}", "")
            continue
        value = params[name]
        text = value if isinstance(value, str) else _dumps(value).decode("ascii")
        # A lone surrogate goes out as the three bytes a lenient UTF-8 encoder makes of it (ED A0 80).
        encoded = quote(text.encode("utf-8", "surrogatepass"), safe="")
        if location == "uri":
            uri = uri.replace("{" + wire + "+}", encoded).replace("{" + wire + "}", encoded)
        elif location == "querystring":
            query.append((wire, encoded))
        elif location == "header":
            headers[wire] = text.encode("utf-8", "surrogatepass")
        elif name == payload_name:
            if member.type_name == "structure":
                body = _dumps(value)
            else:
                body = text.encode("utf-8", "surrogatepass")
        else:
            body_doc[wire] = value
    if body is None:
        body = _dumps(body_doc) if body_doc or op.http["method"] in ("POST", "PUT") else b""
    path = uri + ("?" + "&".join(f"{quote(k, safe='')}={v}" for k, v in query) if query else "")
    return op.http["method"], path, headers, body


def _dumps(value: Any) -> bytes:
    # json.dumps escapes a lone surrogate as \ud800, which is what a client sending one puts on the wire.
    text = json.dumps(value, default=lambda o: "__RAW_HUGE__")
    return text.replace('"__RAW_HUGE__"', "1e400").encode("ascii")


# -- judging -------------------------------------------------------------------------------------------------
@dataclass
class Tally:
    sent: int = 0
    per_operation: Counter = field(default_factory=Counter)
    status_5xx: int = 0
    hangs: int = 0
    broken_connections: int = 0
    unnamed: int = 0
    section_errors: int = 0
    base_rejected: int = 0
    invalid_accepted: int = 0
    statuses: Counter = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def sample(self, kind: str, text: str) -> None:
        items = self.samples.setdefault(kind, [])
        if len(items) < 10 and text[:120] not in [i[:120] for i in items]:
            items.append(text[:400])

    def record(self, label: str, answer: Answer) -> None:
        self.sent += 1
        self.per_operation[label] += 1
        self.statuses[str(answer.status)] += 1
        if answer.hung or answer.seconds > HANG_SECONDS:
            self.hangs += 1
            self.sample("hangs", label)
        elif answer.status is None:
            self.broken_connections += 1
            self.sample("broken_connections", f"{label}: {answer.error}")
        elif answer.status >= 500:
            self.status_5xx += 1
            self.sample("5xx", f"{label}: {answer.status} {answer.body[:300]!r}")


def names_member(answer: Answer, member: str) -> bool:
    """A ValidationException names `member` in its fieldList (the member or a path inside it) and message."""
    doc = answer.json()
    names = [f.get("name", "") for f in doc.get("fieldList") or [] if isinstance(f, dict)]
    in_list = any(re.match(rf"{re.escape(member)}(\b|[.\[]|$)", n) for n in names)
    return in_list and member in str(doc.get("message", ""))


def _names_its_fields(answer: Answer) -> bool:
    doc = answer.json()
    names = [f.get("name", "") for f in doc.get("fieldList") or [] if isinstance(f, dict)]
    message = str(doc.get("message", ""))
    return bool(names) and all(re.split(r"[.\[]", n)[0] in message for n in names)


def judge(tally: Tally, label: str, mutation: Mutation, answer: Answer) -> None:
    tally.record(label, answer)
    if answer.status is None or answer.status >= 500:
        return
    what = f"{label} {mutation.member} ({mutation.kind}): {answer.status} {answer.body[:300]!r}"
    if answer.error_code == "ValidationException":
        if names_member(answer, mutation.member):
            return
        if _names_its_fields(answer):
            # It names another member, correctly by its own message: the drawn base broke a rule between members
            # that _cross_member_rules does not know yet. A figure to keep low, not the emulator's fault.
            tally.base_rejected += 1
            tally.sample("base_rejected", what)
        else:
            tally.unnamed += 1
            tally.sample("unnamed", what)
    elif mutation.invalid:
        tally.invalid_accepted += 1
        tally.sample("invalid_accepted", what)


# -- the section ---------------------------------------------------------------------------------------------
def _emulator(state_dir: Path, violations: Path):
    from tests.support.emulator import EmulatorProcess

    return EmulatorProcess(state_dir, env={
        "EMULATOR_CHECK_RESPONSES": str(violations),
        "EMULATOR_MEMORY_ACTIVATION_DELAY": "0",
        "EMULATOR_MEMORY_DELETION_DELAY": "0",
        "EMULATOR_RUNTIME_TRANSITION": "0.2",
        # Long-term extraction is not what this section attacks; keep the two cores for requests.
        "EMULATOR_EXTRACTION_DELAY": "3600",
    }).start()


def _known_ids(emu) -> dict[str, str]:
    """Ids of a memory that exists, so that valid requests go past the lookup into each operation's own rules."""
    control = emu.client("bedrock-agentcore-control")
    memory = control.create_memory(name="fuzz_memory", eventExpiryDuration=7)["memory"]
    deadline = time.monotonic() + 20
    while control.get_memory(memoryId=memory["id"])["memory"]["status"] != "ACTIVE" and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"memoryId": memory["id"]}


def fuzz_operation(service: str, name: str, port: int, known: dict, tally: Tally, examples: int, seconds: float,
                   derandomize: bool) -> None:
    op = _session.get_service_model(service).operation_model(name)
    shape = op.input_shape
    choices = [m for member_name, member in shape.members.items()
               for m in mutations(member_name, member, member_name in shape.required_members,
                                  member.serialization.get("location"),
                                  payload=member_name == shape.serialization.get("payload"))]
    stop_at = time.monotonic() + seconds
    base_strategy = valid(shape)

    @settings(max_examples=examples, database=None, deadline=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(base=base_strategy, mutation=st.sampled_from(choices))
    def attack(base, mutation):
        if time.monotonic() > stop_at:
            return
        try:
            one(base, mutation)
        except Exception as exc:  # a fault of this section, not of the emulator: reported, never hidden
            tally.section_errors += 1
            tally.sample("section_errors", f"{name} {mutation.member} ({mutation.kind}): {exc!r}")

    def one(base, mutation):
        params = {member: base[_wire(shape, member)] for member in shape.members if _wire(shape, member) in base}
        if not name.startswith("Delete"):
            params.update({k: v for k, v in known.items() if k in shape.members})
        params.update({k: v for k, v in PLAUSIBLE.items() if k in shape.members})
        _cross_member_rules(name, params)
        member = shape.members[mutation.member]
        if mutation.value is _MISSING:
            params.pop(mutation.member, None)
        elif mutation.value is _ITEMS_PLACEHOLDER:
            item = params.get(mutation.member) or []
            params[mutation.member] = (item[:1] or [None]) * (member.metadata["max"] + 1)
        else:
            params[mutation.member] = mutation.value
        # A missing path member leaves its label empty (build() does that): the request names no value there.
        method, path, headers, body = build(op, params, port)
        signed = sign(method, f"http://127.0.0.1:{port}{path}", body,
                      {k: v for k, v in headers.items() if not isinstance(v, bytes)})
        signed.update({k: v for k, v in headers.items() if isinstance(v, bytes)})
        answer = send_raw(port, request_bytes(method, path, {**signed, "Content-Length": str(len(body))}, body))
        judge(tally, name, mutation, answer)

    try:
        attack()
    except Unsatisfiable as exc:  # no valid base could be drawn: the section's fault, reported as such
        tally.section_errors += 1
        tally.sample("section_errors", f"{name}: {exc}")


# Members the model gives no pattern, whose valid values the emulator still knows the form of.
PLAUSIBLE = {
    "agentRuntimeArn": f"arn:aws:bedrock-agentcore:{REGION}:123456789012:runtime/fuzz_runtime-abcdefghij",
    # Optional in the model, yet a command runs in a session (and ids are 33-256 characters).
    "runtimeSessionId": "fuzz-session-0123456789abcdefghijklmnop",
    # Optional in CreateEvent's model, but the emulator (as AgentCore's docs) files every event in a session.
    "sessionId": "fuzz-session",
}


def _cross_member_rules(name: str, params: dict) -> None:
    """Rules between members that no shape states, so that the valid base request is valid."""
    if not 3 <= params.get("eventExpiryDuration", 7) <= 365:
        # The model sets no upper bound; AgentCore keeps events 3 to 365 days (emulator/memory/control.py).
        params["eventExpiryDuration"] = 7
    strategies = params.get("memoryStrategies")
    if name == "UpdateMemory" and isinstance(strategies, dict):
        # Deleting or modifying a strategy needs one that exists; the fuzzed memory has none.
        strategies.pop("deleteMemoryStrategies", None)
        strategies.pop("modifyMemoryStrategies", None)
    if name in ("CreateAgentRuntime", "UpdateAgentRuntime"):
        # The emulator runs container images only (README), from its own ECR.
        params["agentRuntimeArtifact"] = {"containerConfiguration": {
            "containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fuzz:latest"}}
        lifecycle = params.get("lifecycleConfiguration")
        if isinstance(lifecycle, dict) and "idleRuntimeSessionTimeout" in lifecycle and "maxLifetime" in lifecycle:
            # AWS: the idle timeout is at most the lifetime.
            lifecycle["idleRuntimeSessionTimeout"] = min(lifecycle["idleRuntimeSessionTimeout"],
                                                         lifecycle["maxLifetime"])
    if name == "RetrieveMemoryRecords" or name == "ListMemoryRecords":
        # Exactly one of namespace (exact) and namespacePath (prefix) (FACTS: reads take one or the other).
        if "namespace" in params and "namespacePath" in params:
            params.pop("namespacePath")
        elif "namespace" not in params and "namespacePath" not in params:
            params["namespace"] = "fuzz/facts"

RAW_CASES = [
    # (label, method, path, body, how to sign: "sigv4", "sigv4:<service>", "empty-service", "none"; chunked)
    ("not JSON", "POST", "/memories/create", b"this is not json", "sigv4", False),
    ("JSON array body", "POST", "/memories/create", b"[1, 2, 3]", "sigv4", False),
    ("JSON null body", "POST", "/memories/create", b"null", "sigv4", False),
    ("truncated JSON", "POST", "/memories/create", b'{"name": "a', "sigv4", False),
    ("not UTF-8", "POST", "/memories/create", b'{"name": "\xff\xfe"}', "sigv4", False),
    ("NaN literal", "POST", "/memories/create", b'{"name": "a", "eventExpiryDuration": NaN}', "sigv4", False),
    ("arrays 50k deep", "POST", "/memories/create", b"[" * 50_000 + b"]" * 50_000, "sigv4", False),
    ("objects 50k deep", "POST", "/memories/create", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "sigv4", False),
    ("deep JSON to an event", "POST", "/memories/{memoryId}/events", b'{"payload":' + b"[" * 50_000, "sigv4", False),
    ("broken chunk header", "POST", "/memories/create", b"ZZ\r\nabc\r\n0\r\n\r\n", "sigv4", True),
    ("negative chunk size", "POST", "/memories/create", b"-5\r\nabc\r\n0\r\n\r\n", "sigv4", True),
    ("signed for another service", "POST", "/memories/create", b"{}", "sigv4:s3-outposts", False),
    ("signed for an unknown service", "GET", "/memories/{memoryId}/details", b"", "sigv4:nosuchservice", False),
    ("credential naming no service", "POST", "/memories/create", b"{}", "empty-service", False),
    ("unsigned create", "POST", "/memories/create", b"{}", "none", False),
    ("unsigned get", "GET", "/memories/{memoryId}/details", b"", "none", False),
    ("unsigned invoke", "POST", "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fx-"
                                "abcdefghij/invocations", b"{}", "none", False),
    ("empty runtime id on update", "PUT", "/runtimes//", b"{}", "sigv4", False),
    ("empty endpoint name on update", "PUT", "/runtimes/rt-abcdefghij/runtime-endpoints//", b"{}", "sigv4", False),
]


def raw_attacks(port: int, known: dict, tally: Tally) -> None:
    from botocore.paginate import TokenEncoder

    cases = list(RAW_CASES)
    # A nextToken whose position is past SQLite's integer range, with the right scope (as a forger would make it).
    from emulator.core import paginator

    scope = paginator.scope("ListActors", {"memoryId": known["memoryId"]})
    token = TokenEncoder().encode({"s": scope, "o": 2 ** 64})
    cases.append(("offset beyond SQLite's range", "POST", "/memories/{memoryId}/actors",
                  json.dumps({"nextToken": token}).encode(), "sigv4", False))
    for label, method, path, body, auth, chunked in cases:
        path = path.replace("{memoryId}", known["memoryId"])
        url = f"http://127.0.0.1:{port}{path}"
        headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
        if auth.startswith("sigv4"):
            service = auth.partition(":")[2] or SIGNING_NAME
            headers = sign(method, url, b"" if chunked else body, headers, service)
        elif auth == "empty-service":
            headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1//aws4_request, "
                                        "SignedHeaders=host, Signature=" + "0" * 64)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(body))
        answer = send_raw(port, request_bytes(method, path, headers, body))
        tally.record(f"raw: {label}", answer)
        if answer.status is not None and answer.status < 500 and not 400 <= answer.status < 500:
            tally.invalid_accepted += 1
            tally.sample("invalid_accepted", f"raw {label}: {answer.status} {answer.body[:200]!r}")


def run(profile: Profile) -> Report:
    report = Report("fuzz_emulator")
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="proof-fuzz-") as tmp:
        violations = Path(tmp) / "shape-violations.jsonl"
        emu = _emulator(Path(tmp) / "state", violations)
        try:
            known = _known_ids(emu)
            report.figures["setup_seconds"] = round(time.monotonic() - started, 1)
            raw_attacks(emu.port, known, tally)
            ops = [(service, name) for service, names in OPERATIONS.items() for name in names]
            # Most of the section's time goes to generated requests, shared evenly between the operations.
            deadline = started + profile.section_seconds * 0.45
            for i, (service, name) in enumerate(ops):
                share = max((deadline - time.monotonic()) / (len(ops) - i), 0.5)
                fuzz_operation(service, name, emu.port, known, tally, EXAMPLES * profile.scale, share,
                               derandomize=profile.name == "short")
            report.figures["generated_seconds"] = round(time.monotonic() - started - report.figures["setup_seconds"], 1)
        finally:
            emu.stop()
        lines = [json.loads(line) for line in violations.read_text().splitlines() if line.strip()] \
            if violations.exists() else []
    report.figures["requests_sent"] = tally.sent
    report.figures["per_operation"] = dict(sorted(tally.per_operation.items()))
    report.figures["statuses"] = dict(sorted(tally.statuses.items()))
    report.expect_zero("status_5xx", tally.status_5xx, "; ".join(tally.samples.get("5xx", [])))
    report.expect_zero("hangs_over_10s", tally.hangs, "; ".join(tally.samples.get("hangs", [])))
    report.expect_zero("connections_dropped", tally.broken_connections,
                       "; ".join(tally.samples.get("broken_connections", [])))
    report.expect_zero("errors_not_naming_the_field", tally.unnamed, "; ".join(tally.samples.get("unnamed", [])))
    report.expect_zero("invalid_input_accepted", tally.invalid_accepted,
                       "; ".join(tally.samples.get("invalid_accepted", [])))
    report.figures["base_rejected_for_another_member"] = tally.base_rejected
    if tally.samples.get("base_rejected"):
        report.figures["base_rejected_samples"] = tally.samples["base_rejected"][:3]
    report.expect_zero("section_errors", tally.section_errors, "; ".join(tally.samples.get("section_errors", [])))
    kinds = Counter(f"{line.get('operation')}: {problem[:160]}" for line in lines for problem in line["problems"])
    report.expect_zero("shape_violations", len(lines), "; ".join(f"{n}x {k}" for k, n in kinds.most_common(12)))
    return report
