"""IAM's rules as the emulator applies them: runtime-role credentials, policy evaluation, the decision log.

Credentials: AgentCore Runtime gives the agent temporary credentials of the runtime's execution role,
refreshed before they expire. Here the supervisor registers each agent process with a secret token,
and the agent's SDKs fetch credentials from the emulator's container-credentials route (the standard
`AWS_CONTAINER_CREDENTIALS_FULL_URI` provider of botocore and of the AWS SDK for JavaScript, which
both refresh before expiry). Each set comes from moto's STS AssumeRole, so moto knows the keys.

Evaluation: identity policies only (inline and managed, as moto's IAM holds them after the stack
deployed them). AWS's logic, IAM User Guide "Policy evaluation logic"
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an
explicit Deny wins, else any Allow allows, else the request is implicitly denied. moto's own
evaluator (moto/iam/access_control.py) is not used for the decision because (1) it cannot say which
statement allowed a call, which the coverage table needs; (2) it treats an unmet Condition as a Deny
rather than as a statement that does not apply; (3) it passes a StringEquals whose key is absent from
the request (the template's aws:CalledViaLast grants would apply to every call); (4) its wildcard
match is a regex on the raw pattern ("." matches any character). moto is reused for what it does
right: STS sessions (keys, tokens, expiry) and the role's policies as CloudFormation created them.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .actions import NO_PERMISSION, Ask
from .exceptions import denied_message

log = logging.getLogger("emulator.iam")

# botocore refreshes container credentials 15 minutes before they expire (advisory) and the JS SDK 5;
# handing out a set with less than this left makes both fetch again soon, so a fresh one is issued.
REFRESH_MARGIN = 20 * 60
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$")


# ---------------------------------------------------------------- policy documents
def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's wildcards: `*` any run of characters, `?` one character, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


@dataclass(frozen=True)
class Statement:
    policy: str  # the policy's name (inline) or ARN (managed)
    sid: str | None
    effect: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    condition: dict = field(default_factory=dict, hash=False, compare=False)

    def matches_action(self, action: str) -> bool:
        # Action names are case-insensitive (IAM User Guide, "IAM JSON policy elements: Action").
        if self.not_actions:
            return not any(wildcard_match(p, action, ignore_case=True) for p in self.not_actions)
        return any(wildcard_match(p, action, ignore_case=True) for p in self.actions)

    def matches_resource(self, resource: str) -> bool:
        if self.not_resources:
            return not any(wildcard_match(p, resource) for p in self.not_resources)
        return any(wildcard_match(p, resource) for p in self.resources)

    def label(self) -> str:
        return f"{self.policy}/{self.sid}" if self.sid else f"{self.policy}/(no Sid)"


def statements_of(policy: str, document: str | dict) -> list[Statement]:
    doc = json.loads(document) if isinstance(document, str) else document
    out = []
    for raw in _as_list(doc.get("Statement")):
        out.append(Statement(
            policy=policy, sid=raw.get("Sid"), effect=raw.get("Effect", "Deny"),
            actions=tuple(_as_list(raw.get("Action"))), not_actions=tuple(_as_list(raw.get("NotAction"))),
            resources=tuple(_as_list(raw.get("Resource"))), not_resources=tuple(_as_list(raw.get("NotResource"))),
            condition=raw.get("Condition") or {}))
    return out


# ---------------------------------------------------------------- conditions
# IAM User Guide, "IAM JSON policy elements: Condition operators"
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
# a key absent from the request context makes the condition false, except for negated operators (true),
# ...IfExists (true) and Null.
_STRING_OPS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda want, got: want == got, False),
    "StringNotEquals": (lambda want, got: want == got, True),
    "StringEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), True),
    "StringLike": (lambda want, got: wildcard_match(want, got), False),
    "StringNotLike": (lambda want, got: wildcard_match(want, got), True),
    "ArnEquals": (lambda want, got: wildcard_match(want, got), False),
    "ArnLike": (lambda want, got: wildcard_match(want, got), False),
    "ArnNotEquals": (lambda want, got: wildcard_match(want, got), True),
    "ArnNotLike": (lambda want, got: wildcard_match(want, got), True),
    "Bool": (lambda want, got: want.lower() == got.lower(), False),
}


class UnsupportedCondition(ValueError):
    """An operator the emulator does not evaluate: the statement is treated as not applying, and said so."""


def condition_holds(condition: dict, context: dict[str, list[str]]) -> bool:
    """Every operator of the block, and every key of each, must hold (they are ANDed)."""
    lowered = {k.lower(): v for k, v in context.items()}  # condition key names are case-insensitive
    for operator, keys in condition.items():
        qualifier, _, op = operator.rpartition(":")
        if_exists = op.endswith("IfExists")
        base = op[: -len("IfExists")] if if_exists else op
        for key, wanted in keys.items():
            values = lowered.get(key.lower())
            wanted_list = [str(w).lower() if isinstance(w, bool) else str(w) for w in _as_list(wanted)]
            if base == "Null":
                absent = not values
                if any((w.lower() == "true") != absent for w in wanted_list):
                    return False
                continue
            if base not in _STRING_OPS:
                raise UnsupportedCondition(f"condition operator {operator} is not evaluated by the emulator")
            test, negated = _STRING_OPS[base]
            if not values:
                if if_exists or negated:
                    continue
                return False
            if qualifier == "ForAllValues":
                ok = all(any(test(w, v) for w in wanted_list) for v in values)
            else:  # a single-valued key, or ForAnyValue
                ok = any(test(w, v) for w in wanted_list for v in values)
            if negated:
                ok = not any(test(w, v) for w in wanted_list for v in values)
            if not ok:
                return False
    return True


@dataclass
class Decision:
    allowed: bool
    explicit_deny: bool = False
    statement: Statement | None = None  # the Allow that allowed, or the Deny that denied


def evaluate(statements: list[Statement], action: str, resource: str, context: dict[str, list[str]]) -> Decision:
    allow: Statement | None = None
    for st in statements:
        if not (st.matches_action(action) and st.matches_resource(resource)):
            continue
        try:
            applies = condition_holds(st.condition, context) if st.condition else True
        except UnsupportedCondition as exc:
            log.warning("statement %s: %s; it is treated as not applying", st.label(), exc)
            applies = False
        if not applies:
            continue
        if st.effect == "Deny":
            return Decision(False, True, st)
        if allow is None:
            allow = st
    return Decision(allow is not None, False, allow)


# ---------------------------------------------------------------- principals and credentials
@dataclass
class Session:
    """An assumed-role session moto's STS issued: who signs with these keys."""

    access_key_id: str
    session_token: str
    role_arn: str
    session_name: str
    expiration: dt.datetime
    account_id: str

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def arn(self) -> str:
        partition = self.role_arn.split(":")[1]
        return f"arn:{partition}:sts::{self.account_id}:assumed-role/{self.role_name}/{self.session_name}"


class RoleNotAssumable(Exception):
    """The runtime's role cannot be assumed (it does not exist, or it does not trust AgentCore)."""


def _moto_role(account_id: str, role_arn: str):
    from moto.iam.models import iam_backends

    m = ROLE_ARN.match(role_arn)
    if not m:
        return None
    backend = iam_backends[account_id][role_arn.split(":")[1]]
    for role in backend.roles.values():
        if role.arn == role_arn:
            return role
    return None


AGENTCORE_PRINCIPAL = "bedrock-agentcore.amazonaws.com"


def trusts_service(trust_policy: str | dict, service: str, context: dict[str, list[str]]) -> bool:
    """Whether a role's trust policy lets `service` call sts:AssumeRole with this request context.

    AgentCore assumes the execution role as the service principal bedrock-agentcore.amazonaws.com, with
    aws:SourceAccount and aws:SourceArn naming the runtime (devguide: runtime-permissions, the execution
    role's trust policy and its confused-deputy conditions).
    """
    doc = json.loads(trust_policy) if isinstance(trust_policy, str) else trust_policy
    allowed = False
    for raw in _as_list(doc.get("Statement")):
        principals = raw.get("Principal") or {}
        services = _as_list(principals.get("Service")) if isinstance(principals, dict) else []
        if principals != "*" and service not in services:
            continue
        st = statements_of("trust", {"Statement": [{**raw, "Resource": "*"}]})[0]
        if not st.matches_action("sts:AssumeRole"):
            continue
        try:
            applies = condition_holds(st.condition, context) if st.condition else True
        except UnsupportedCondition:
            applies = False
        if not applies:
            continue
        if st.effect == "Deny":
            return False
        allowed = True
    return allowed


@dataclass
class _Registration:
    role_arn: str
    session_name: str
    region: str
    source_arn: str = ""  # the runtime that assumes the role
    current: Session | None = None


class CredentialIssuer:
    """Temporary credentials of runtime roles for agent processes, each process known by a secret token."""

    def __init__(self, account_id: str, duration: int, clock: Callable[[], float] = time.time):
        self.account_id = account_id
        self.duration = duration
        self.clock = clock
        self._by_token: dict[str, _Registration] = {}
        self._lock = threading.Lock()

    def register(self, role_arn: str, session_name: str, region: str, source_arn: str = "") -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._by_token[token] = _Registration(role_arn, session_name, region, source_arn)
        return token

    def forget(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def credentials(self, token: str) -> Session:
        """The process's current credentials, a fresh set when the current one is near its expiry."""
        with self._lock:
            reg = self._by_token.get(token)
        if reg is None:
            raise PermissionError("the authorization token does not belong to a running agent")
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        cur = reg.current
        if cur is not None and (cur.expiration - now).total_seconds() > REFRESH_MARGIN:
            return cur
        reg.current = self._assume(reg, now)
        return reg.current

    def _assume(self, reg: _Registration, now: dt.datetime) -> Session:
        from moto.sts.models import sts_backends

        role = _moto_role(self.account_id, reg.role_arn)
        if role is None:
            raise RoleNotAssumable(
                f"the runtime's execution role {reg.role_arn} does not exist in IAM: deploy the stack that "
                "creates it (or pass an existing role's ARN) before invoking the runtime")
        context = {"aws:SourceAccount": [self.account_id]}
        if reg.source_arn:
            context["aws:SourceArn"] = [reg.source_arn]
        if not trusts_service(role.assume_role_policy_document, AGENTCORE_PRINCIPAL, context):
            raise RoleNotAssumable(
                f"the trust policy of {reg.role_arn} does not let {AGENTCORE_PRINCIPAL} assume it for runtime "
                f"{reg.source_arn or '(unknown)'} in account {self.account_id}: allow sts:AssumeRole to that "
                "service principal (aws:SourceAccount / aws:SourceArn conditions must match)")
        partition = reg.role_arn.split(":")[1]
        assumed = sts_backends[self.account_id][partition].assume_role(
            region_name=reg.region, role_session_name=reg.session_name, role_arn=reg.role_arn,
            policy=None, duration=self.duration, external_id=None)
        # moto stamps its own clock; the session's expiry follows ours so tests can move time.
        expiration = now + dt.timedelta(seconds=self.duration)
        assumed.expiration = expiration.replace(tzinfo=None)
        return Session(assumed.access_key_id, assumed.session_token, reg.role_arn, reg.session_name,
                       expiration, self.account_id)


def session_for(account_id: str, access_key_id: str) -> Session | None:
    """The assumed-role session these keys belong to, or None (the workshop user's own keys)."""
    from moto.sts.models import sts_backends

    for partition in ("aws",):
        for assumed in sts_backends[account_id][partition].assumed_roles:
            if assumed.access_key_id == access_key_id:
                expiration = assumed.expiration
                if expiration.tzinfo is None:
                    expiration = expiration.replace(tzinfo=dt.timezone.utc)
                return Session(assumed.access_key_id, assumed.session_token, assumed.role_arn,
                               assumed.session_name, expiration, account_id)
    return None


def role_statements(account_id: str, role_arn: str) -> list[Statement]:
    """The role's identity policies as IAM holds them: inline, then attached managed (default version)."""
    role = _moto_role(account_id, role_arn)
    if role is None:
        return []
    statements: list[Statement] = []
    for name, document in role.policies.items():
        statements += statements_of(name, document)
    for arn, policy in role.managed_policies.items():
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None:
            statements += statements_of(arn, version.document)
    return statements


# ---------------------------------------------------------------- the decision log
class DecisionLog:
    """Each distinct (principal, action, resource, decision, statement), with a count and the last time."""

    def __init__(self):
        self._rows: dict[tuple, dict] = {}
        self._lock = threading.Lock()

    def record(self, session: Session, action: str, resource: str, decision: Decision) -> None:
        st = decision.statement
        verdict = "allowed" if decision.allowed else ("explicitly denied" if decision.explicit_deny else "denied")
        key = (session.role_arn, action, resource, verdict, st.label() if st else None)
        now = time.time()
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = {
                    "principal": session.arn, "role_arn": session.role_arn, "action": action,
                    "resource": resource, "decision": verdict,
                    "policy": st.policy if st else None, "sid": st.sid if st else None,
                    "count": 0, "first_seen": now,
                }
            row["count"] += 1
            row["last_seen"] = now
            row["principal"] = session.arn

    def rows(self, role_arn: str | None = None) -> list[dict]:
        with self._lock:
            rows = [dict(r) for r in self._rows.values()]
        if role_arn:
            rows = [r for r in rows if r["role_arn"] == role_arn]
        return sorted(rows, key=lambda r: r["first_seen"])

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


@dataclass(frozen=True)
class Refusal:
    """Why a signed request is refused before it reaches its service: "invalid-token", "expired-token" or
    "denied" (with IAM's message). Each protocol answers it with its own error code (responses.py)."""

    reason: str
    message: str = ""


class IamBackend:
    """One account's enforcement state in this emulator process."""

    def __init__(self, account_id: str, enforce: bool, credential_seconds: int):
        self.account_id = account_id
        self.enforce = enforce
        self.issuer = CredentialIssuer(account_id, credential_seconds)
        self.decisions = DecisionLog()

    def session_of(self, access_key_id: str, security_token: str | None) -> Session | Refusal | None:
        """The runtime-role session signing with these keys; None for any other keys (the workshop user's own,
        which pass unjudged, as an administrator's would); a Refusal when the session token is wrong or expired."""
        session = session_for(self.account_id, access_key_id)
        if session is None:
            return None
        if security_token != session.session_token:
            return Refusal("invalid-token")
        if session.expiration <= dt.datetime.now(dt.timezone.utc):
            return Refusal("expired-token")
        return session

    def authorize(self, session: Session, asks: list[Ask], region: str) -> Refusal | None:
        """None when the role's policies allow every action the request asks for; else the first denial."""
        context_base = {"aws:SecureTransport": ["false"], "aws:RequestedRegion": [region],
                        "aws:PrincipalArn": [session.role_arn], "aws:PrincipalAccount": [session.account_id],
                        "aws:userid": [f"{session.role_name}:{session.session_name}"]}
        for ask in asks:
            if ask.action in NO_PERMISSION:
                continue
            decision = self.judge(session, ask.action, ask.resource, {**context_base, **ask.context})
            if not decision.allowed:
                return Refusal("denied", denied_message(session.arn, ask.action, ask.resource,
                                                        decision.explicit_deny))
        return None

    def judge(self, session: Session, action: str, resource: str, context: dict[str, list[str]]) -> Decision:
        decision = evaluate(role_statements(self.account_id, session.role_arn), action, resource, context)
        self.decisions.record(session, action, resource, decision)
        if not decision.allowed:
            log.warning("denied %s %s on %s (%s)", session.arn, action, resource,
                        "explicit deny in " + decision.statement.label() if decision.explicit_deny
                        else "no statement allows it")
        return decision


_backends: dict[str, IamBackend] = {}
_backends_lock = threading.Lock()


def backend_for(settings) -> IamBackend:
    with _backends_lock:
        backend = _backends.get(settings.account_id)
        if backend is None:
            backend = _backends[settings.account_id] = IamBackend(
                settings.account_id, settings.iam_enforcement, int(settings.role_credential_seconds))
        return backend
