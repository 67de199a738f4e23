"""Who the caller is, as AgentCore Runtime tells the agent, and so which actor the invocation may act as.

AgentCore Runtime forwards two kinds of caller identity (devguide: runtime-oauth, runtime-header-allowlist):
- `X-Amzn-Bedrock-AgentCore-Runtime-User-Id`: the `runtimeUserId` of InvokeAgentRuntime. The caller
  chose it, and IAM decides who may (bedrock-agentcore:InvokeAgentRuntimeForUser), not a proof of who
  the user is.
- `Authorization: Bearer <JWT>`: forwarded when the runtime has a customJWTAuthorizer and lists
  `Authorization` in requestHeaderConfiguration.requestHeaderAllowlist. The runtime has already checked the
  token's signature, issuer, expiry, audience and clients against the authorizer before the request reached
  the agent, so the agent reads its claims without checking them again (it holds no keys to do so).

Where either is present it decides the actor: a payload actor_id that names someone else is refused.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from .request import ACTOR_ID_PATTERN

USER_HEADER = "x-amzn-bedrock-agentcore-runtime-user-id"
AUTHORIZATION_HEADER = "authorization"
# The claim that names the user: OIDC's subject (Cognito's `sub` is the user's UUID).
SUBJECT_CLAIM = "sub"
_HASH_CHARS = 16


class IdentityRefused(Exception):
    """The caller's identity forbids this invocation: `status` (401 or 403), `error`, `details`, `field`."""

    def __init__(self, status: int, error: str, details: str, field: str | None = None):
        super().__init__(details)
        self.status, self.error, self.details, self.field = status, error, details, field


@dataclass(frozen=True)
class Identity:
    actor_id: str  # the actor this caller acts as (the subject itself when it is a valid actor id)
    subject: str  # the user id or the JWT's subject, as given
    source: str  # where it came from, for messages

    def describe(self) -> str:
        same = "" if self.subject == self.actor_id else f" (actor id {self.actor_id!r})"
        return f"{self.subject!r} from the {self.source}{same}"


def actor_for(subject: str) -> str:
    """The actor id for a user id or subject: itself when Memory and the workspace accept it, else a
    readable prefix plus a hash, so that distinct users stay distinct (e.g. 'alice@example.com')."""
    if ACTOR_ID_PATTERN.fullmatch(subject):
        return subject
    digest = hashlib.sha256(subject.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", subject).strip("-_")[:64].rstrip("-_")
    return f"{prefix}-{digest}" if prefix else f"user-{digest}"


def jwt_claims(token: str) -> dict:
    """The claims of a JWT the runtime has validated; IdentityRefused when it is not a JWT at all."""
    parts = token.split(".")
    if len(parts) != 3:
        raise IdentityRefused(401, "invalid bearer token", "the Authorization header's bearer token is not a JWT "
                                   "(header.payload.signature)", "Authorization")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise IdentityRefused(401, "invalid bearer token", "the bearer token's payload is not base64url JSON",
                              "Authorization") from None
    if not isinstance(claims, dict):
        raise IdentityRefused(401, "invalid bearer token", "the bearer token's payload is not a JSON object",
                              "Authorization")
    return claims


def from_headers(headers) -> Identity | None:
    """The caller's identity from the request headers (a JWT's subject first: it is signed), or None."""
    auth = (headers.get(AUTHORIZATION_HEADER) or "").strip()
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise IdentityRefused(401, "invalid Authorization header",
                                  "expected 'Authorization: Bearer <JWT>' as AgentCore Runtime forwards it",
                                  "Authorization")
        subject = jwt_claims(token.strip()).get(SUBJECT_CLAIM)
        if not isinstance(subject, str) or not subject:
            raise IdentityRefused(403, "bearer token names no user",
                                  f"the bearer token has no '{SUBJECT_CLAIM}' claim, so it cannot decide the actor; "
                                  "use a token issued to a user (not only to a client)", "Authorization")
        return Identity(actor_for(subject), subject, f"bearer token's '{SUBJECT_CLAIM}' claim")
    user = headers.get(USER_HEADER)
    if user:
        return Identity(actor_for(user), user, "X-Amzn-Bedrock-AgentCore-Runtime-User-Id header")
    return None


def decide_actor(identity: Identity | None, payload_actor: str | None, required: bool) -> str | None:
    """The actor the invocation acts as: the identity's, which a differing payload actor_id may not override.

    None: no identity and none required, so the payload's actor_id (or its default) stands.
    """
    if identity is None:
        if required:
            raise IdentityRefused(401, "caller identity required",
                                  "AGENT_REQUIRE_IDENTITY is set, but the request carries neither a bearer token "
                                  "(a runtime with a customJWTAuthorizer and Authorization in its header allowlist) "
                                  "nor the X-Amzn-Bedrock-AgentCore-Runtime-User-Id header (runtimeUserId)")
        return None
    if payload_actor is not None and payload_actor not in (identity.actor_id, identity.subject):
        raise IdentityRefused(403, "actor_id is not the caller's",
                              f"input.actor_id {payload_actor!r} differs from the caller's identity "
                              f"{identity.describe()}: a caller acts only as itself. Leave actor_id out or set it "
                              f"to {identity.actor_id!r}.", "input.actor_id")
    return identity.actor_id
