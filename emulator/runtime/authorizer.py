"""AgentCore Runtime's inbound authorization of InvokeAgentRuntime: SigV4, or a bearer JWT the runtime's
customJWTAuthorizer accepts (devguide: inbound-jwt-authorizer, runtime-oauth).

A runtime takes one method. With `authorizerConfiguration.customJWTAuthorizer` the caller sends
`Authorization: Bearer <JWT>` (unsigned); the authorizer fetches the discovery document at `discoveryUrl`,
then its `jwks_uri`, and checks the token's signature, `iss` (the document's issuer), `exp`, and, where
configured, `aud` against allowedAudience, `client_id` against allowedClients, `scope` against
allowedScopes and the customClaims rules. A SigV4 call to such a runtime, or a bearer call to one without it, is refused with AWS's
"Authorization method mismatch".
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import jwt

from ..core.errors import AccessDeniedException, ServiceError

# AWS's words for a request whose method is not the runtime's (seen from InvokeAgentRuntime on AWS).
METHOD_MISMATCH = ("Authorization method mismatch. The agent is configured for a different authorization "
                   "method than what was used in your request.")
_FETCH_TIMEOUT = 5.0
_CACHE_SECONDS = 300.0
# What OIDC providers sign with; "none" and HMAC are never accepted (keys come from a JWKS).
_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]


class UnauthorizedException(ServiceError):
    """No credentials at all: the caller must send a bearer token (401, as an OAuth resource server answers)."""

    code = "UnauthorizedException"
    status = 401


def is_sigv4(authorization: str | None) -> bool:
    return bool(authorization) and authorization.startswith("AWS4-")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _custom_claim_problem(rule: dict, claims: dict) -> str | None:
    """Why `claims` fail one customClaims rule (CustomClaimValidationType), or None.

    API reference: STRING wants an exact match (EQUALS, matchValueString); STRING_ARRAY wants the claim's
    array to hold the value (CONTAINS, matchValueString) or one of the values (CONTAINS_ANY, matchValueStringList).
    """
    name, kind = rule["inboundTokenClaimName"], rule["inboundTokenClaimValueType"]
    operator = rule["authorizingClaimMatchValue"]["claimMatchOperator"]
    wanted = rule["authorizingClaimMatchValue"]["claimMatchValue"]
    value = claims.get(name)
    if kind == "STRING":
        if not isinstance(value, str):
            return f"its claim {name!r} is not a string"
        if operator == "EQUALS" and value == wanted.get("matchValueString"):
            return None
        return f"its claim {name!r} = {value!r} does not match {operator} {wanted}"
    if not isinstance(value, list):
        return f"its claim {name!r} is not an array of strings"
    if operator == "CONTAINS" and wanted.get("matchValueString") in value:
        return None
    if operator == "CONTAINS_ANY" and set(wanted.get("matchValueStringList") or []) & set(map(str, value)):
        return None
    return f"its claim {name!r} = {value!r} does not match {operator} {wanted}"


class Authorizer:
    """Validates bearer tokens for runtimes, caching each discovery document and key set for a while."""

    def __init__(self):
        self._cache: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def check(self, spec: dict, authorization: str | None, runtime_id: str) -> dict | None:
        """The token's claims for a JWT runtime; None for a SigV4 runtime called with SigV4; else the refusal."""
        config = (spec.get("authorizerConfiguration") or {}).get("customJWTAuthorizer")
        signed = is_sigv4(authorization)
        token = bearer_token(authorization)
        if config is None:
            if token is not None:
                raise AccessDeniedException(METHOD_MISMATCH + f" Runtime {runtime_id} takes SigV4 (IAM) requests; "
                                            "it has no customJWTAuthorizer.")
            if not signed:
                raise AccessDeniedException(f"Missing Authentication Token: runtime {runtime_id} takes SigV4 "
                                            "(IAM) signed requests.")
            return None
        if signed:
            raise AccessDeniedException(METHOD_MISMATCH + f" Runtime {runtime_id} has a customJWTAuthorizer: send "
                                        "'Authorization: Bearer <JWT>' instead of a SigV4 signature.")
        if token is None:
            raise UnauthorizedException(f"Runtime {runtime_id} requires a bearer token: send "
                                        "'Authorization: Bearer <JWT>' issued by its identity provider.")
        return self._validate(config, token, runtime_id)

    def _validate(self, config: dict, token: str, runtime_id: str) -> dict:
        def refuse(reason: str) -> AccessDeniedException:
            return AccessDeniedException(f"The bearer token is not valid for runtime {runtime_id}: {reason}.")

        discovery = self._fetch(config["discoveryUrl"], runtime_id)
        issuer, jwks_uri = discovery.get("issuer"), discovery.get("jwks_uri")
        if not issuer or not jwks_uri:
            raise refuse(f"the discovery document {config['discoveryUrl']} names no issuer or jwks_uri")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise refuse(f"it is not a JWT ({exc})") from None
        try:
            keys = jwt.PyJWKSet.from_dict(self._fetch(jwks_uri, runtime_id))
        except jwt.PyJWTError as exc:
            raise refuse(f"the key set at {jwks_uri} is unusable ({exc})") from None
        key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise refuse(f"its key id {header.get('kid')!r} is not in {jwks_uri}")
        try:
            claims = jwt.decode(token, key.key, algorithms=_ALGORITHMS, issuer=issuer,
                                options={"verify_aud": False, "require": ["exp", "iss"]})
        except jwt.ExpiredSignatureError:
            raise refuse("it has expired (exp)") from None
        except jwt.InvalidIssuerError:
            raise refuse(f"its issuer (iss) is not {issuer}") from None
        except jwt.PyJWTError as exc:
            raise refuse(str(exc)) from None
        audiences = config.get("allowedAudience")
        if audiences:
            aud = claims.get("aud")
            given = set(aud) if isinstance(aud, list) else {aud} if aud else set()
            if not given & set(audiences):
                raise refuse(f"its audience (aud) {sorted(map(str, given))} is not among the allowed audiences")
        clients = config.get("allowedClients")
        if clients and claims.get("client_id") not in clients:
            raise refuse(f"its client (client_id) {claims.get('client_id')!r} is not among the allowed clients")
        scopes = config.get("allowedScopes")
        if scopes and not set(str(claims.get("scope", "")).split()) & set(scopes):
            raise refuse(f"none of its scopes {claims.get('scope', '')!r} is among the allowed scopes")
        for rule in config.get("customClaims") or []:
            problem = _custom_claim_problem(rule, claims)
            if problem:
                raise refuse(problem)
        return claims

    def _fetch(self, url: str, runtime_id: str) -> dict:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(url)
            if hit and now - hit[0] < _CACHE_SECONDS:
                return hit[1]
        try:
            with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT) as resp:
                doc = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise AccessDeniedException(f"The authorizer of runtime {runtime_id} could not read {url} ({exc}); "
                                        "check the customJWTAuthorizer's discoveryUrl.") from None
        if not isinstance(doc, dict):
            raise AccessDeniedException(f"The authorizer of runtime {runtime_id} found no JSON object at {url}.")
        with self._lock:
            self._cache[url] = (now, doc)
        return doc
