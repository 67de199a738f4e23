"""The enforcement gate in front of every service, the credentials route agents fetch from, the decisions route.

`Gate.check` runs before the emulator dispatches a signed request: keys that moto's STS issued for an
assumed-role session are judged against the role's identity policies; any other keys (the workshop
user's own) pass unjudged, as an administrator's would. A deny is answered in the service's own
protocol with AWS's code and message, so boto3 and the AWS SDK for JavaScript raise what they raise on AWS.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
import re
import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from ..core import wsgi
from ..core.restjson import HttpResponse
from . import actions
from .exceptions import (AccessDenied, AccessDeniedException, ExpiredToken, ExpiredTokenException, IamError,
                         InvalidToken, UnrecognizedClientException)
from .models import IamBackend, Refusal, RoleNotAssumable

log = logging.getLogger("emulator.iam")

CREDENTIALS_PATH = "/_emulator/runtime/credentials"
DECISIONS_PATH = "/_emulator/iam/decisions"
_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")
JSON_SERVICES = {"ssm", "logs", "ecr", "codebuild"}
QUERY_SERVICES = {"sts", "iam", "cloudformation", "monitoring"}


def _protocol(service: str) -> str:
    if service == "s3":
        return "rest-xml"
    if service in JSON_SERVICES:
        return "json"
    if service in QUERY_SERVICES:
        return "query"
    return "rest-json"


def error_for(protocol: str, exc: IamError) -> HttpResponse:
    request_id = str(uuid.uuid4())
    if protocol == "rest-xml":
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{exc.code}</Code>'
                f"<Message>{escape(exc.message)}</Message><RequestId>{request_id}</RequestId>"
                f"<HostId>{request_id}</HostId></Error>").encode()
        return HttpResponse(403, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body)
    if protocol == "query":
        body = (f'<ErrorResponse><Error><Type>Sender</Type><Code>{exc.code}</Code>'
                f"<Message>{escape(exc.message)}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>").encode()
        return HttpResponse(403, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body)
    if protocol == "json":
        # awsJson services answer client faults with 400 and the code in __type.
        body = json.dumps({"__type": exc.code, "message": exc.message}).encode()
        return HttpResponse(400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id},
                            body)
    body = json.dumps({"message": exc.message}).encode()
    return HttpResponse(403, {"Content-Type": "application/json", "x-amzn-ErrorType": exc.code,
                              "x-amzn-RequestId": request_id}, body)


def access_key_of(environ: dict) -> str | None:
    m = _ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
    if m:
        return m.group(1)
    values = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential")
    return values[0].split("/", 1)[0] if values else None


def _security_token(environ: dict) -> str | None:
    token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
    if token:
        return token
    values = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Security-Token")
    return values[0] if values else None


def _buffer_body(environ: dict) -> bytes:
    """Read the body and put it back, so the service that answers still reads it whole."""
    body = wsgi.read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return body


def _refusal_error(refusal: Refusal, protocol: str) -> IamError:
    """The error each protocol's AWS SDKs raise for this refusal (S3 names them differently)."""
    if refusal.reason == "invalid-token":
        return InvalidToken("The provided token is malformed or otherwise invalid.") if protocol == "rest-xml" \
            else UnrecognizedClientException("The security token included in the request is invalid.")
    if refusal.reason == "expired-token":
        return ExpiredToken("The provided token has expired.") if protocol == "rest-xml" \
            else ExpiredTokenException("The security token included in the request is expired")
    return AccessDeniedException(refusal.message) if protocol in ("json", "rest-json") \
        else AccessDenied(refusal.message)


class Gate:
    """Parses a signed request, asks the IAM backend whether it may go on, and answers a refusal."""

    def __init__(self, backend: IamBackend):
        self.backend = backend

    def check(self, environ: dict, service: str, region: str, own_router=None) -> HttpResponse | None:
        """None when the request may go on; else the service's answer to a judged-and-denied request."""
        if not self.backend.enforce:
            return None
        key = access_key_of(environ)
        if not key:
            return None
        session = self.backend.session_of(key, _security_token(environ))
        if session is None:
            return None  # not a runtime role's keys: the workshop user's own
        protocol = _protocol(service)
        if isinstance(session, Refusal):
            return error_for(protocol, _refusal_error(session, protocol))
        # Parsed only now, for a runtime role's request: the workshop user's own calls pass without being read here.
        refusal = self.backend.authorize(session, self._asks(environ, service, region, protocol, own_router), region)
        return None if refusal is None else error_for(protocol, _refusal_error(refusal, protocol))

    def _asks(self, environ: dict, service: str, region: str, protocol: str, own_router) -> list[actions.Ask]:
        raw_path = wsgi.raw_path(environ)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        needs_body = protocol in ("json", "query") or (service == "s3" and "delete" in query)
        body = _buffer_body(environ) if needs_body else b""
        req = actions.Request(environ["REQUEST_METHOD"], raw_path, query, headers, body, self.backend.account_id,
                              region)
        if protocol == "rest-xml":
            return actions.s3(req)
        if protocol == "json":
            return actions.json_service(service, req)
        if protocol == "query":
            return actions.query_service(service, req)
        if own_router is None:
            return []
        operation, path_params = own_router.match(req.method, raw_path, query)
        if operation is None:
            return []
        return actions.rest_json(operation, path_params, req)


# ---------------------------------------------------------------- admin and credentials routes
def credentials_response(backend: IamBackend, environ: dict) -> HttpResponse:
    """What the container-credentials provider of botocore and the JS SDK expect (AccessKeyId, ..., Expiration)."""
    token = environ.get("HTTP_AUTHORIZATION", "")
    try:
        session = backend.issuer.credentials(token)
    except PermissionError as exc:
        return _json(403, {"code": "AccessDenied", "message": f"No credentials: {exc}."})
    except RoleNotAssumable as exc:
        log.warning("agent asked for credentials, but %s", exc)
        return _json(403, {"code": "AccessDenied", "message": f"No credentials: {exc}."})
    return _json(200, {
        "Code": "Success", "Type": "AWS-HMAC",
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": _secret_of(backend.account_id, session.access_key_id),
        "Token": session.session_token,
        "Expiration": session.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RoleArn": session.role_arn,
        "LastUpdated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


def _secret_of(account_id: str, access_key_id: str) -> str:
    from moto.sts.models import sts_backends

    for assumed in sts_backends[account_id]["aws"].assumed_roles:
        if assumed.access_key_id == access_key_id:
            return assumed.secret_access_key
    raise LookupError(access_key_id)


def decisions_response(backend: IamBackend, environ: dict) -> HttpResponse:
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "DELETE":
        backend.decisions.clear()
        return _json(200, {"cleared": True})
    if method != "GET":
        return _json(405, {"code": "MethodNotAllowed", "message": f"{DECISIONS_PATH} answers GET and DELETE"})
    role = (parse_qs(environ.get("QUERY_STRING", "")).get("role_arn") or [None])[0]
    return _json(200, {"enforcement": backend.enforce, "decisions": backend.decisions.rows(role)})


def _json(status: int, doc: dict) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())
