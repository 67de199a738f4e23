"""The emulator's one endpoint: routes each request to moto or to our own services, by SigV4 service name.

Signed requests name their service in the credential scope of the Authorization header (or of
`X-Amz-Credential` in a presigned URL); that alone decides who answers, as LocalStack's edge port
does. Unsigned requests (Claude Code with CLAUDE_CODE_SKIP_BEDROCK_AUTH) are routed by path.
Before dispatch, a request signed with a runtime role's temporary credentials is judged against the
role's policies (emulator/iam); the workshop user's own keys pass unjudged.

Whatever the request, the answer is AWS-shaped and carries an `x-amzn-RequestId` (a UUID, as AWS's are): a
signature naming a service the emulator does not serve, or none, or an unsigned request to a signed-only
route, is the 403 AWS's front ends answer, never werkzeug's HTML 500.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterable

from .core import wsgi
from .core.backend import Backend, close_all
from .core.conformance import ResponseChecker
from .core.errors import ServiceError
from .core.restjson import HttpResponse, RestJsonService, error_response
from .core.settings import DEFAULT_REGION, Settings

log = logging.getLogger("emulator")

# Services moto answers, by the name they sign with.
MOTO_SERVICES = ("cloudformation", "s3", "ssm", "ecr", "iam", "sts", "logs", "codebuild")

_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_SIGV4 = "AWS4-HMAC-SHA256"
REQUEST_ID_HEADER = "x-amzn-RequestId"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class AuthError(ServiceError):
    """A request refused before any service sees it: AWS's front ends answer these with 403."""

    status = 403


def signing_scope(environ: dict) -> tuple[str | None, str | None]:
    """(region, service) from the request's SigV4 credential scope, or (None, None) when unsigned."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = _CREDENTIAL.search(auth)
    if not m:
        m = _CREDENTIAL.search("Credential=" + _query_credential(environ.get("QUERY_STRING", "")))
    return (m.group(1), m.group(2)) if m else (None, None)


def _query_credential(query: str) -> str:
    from urllib.parse import parse_qs

    values = parse_qs(query).get("X-Amz-Credential")
    return values[0] if values else ""


@dataclass
class OwnService:
    """A service the emulator implements itself, on botocore's models."""

    signing_name: str
    router: RestJsonService
    # Paths this service answers without a signature (None: signed requests only).
    unsigned_paths: re.Pattern | None = None
    # The backends behind the router, in the order they were made (closed newest first).
    backends: list[Backend] = field(default_factory=list)


class EmulatorApp:
    """The WSGI application behind the endpoint."""

    def __init__(self, settings: Settings, own_services: list[OwnService]):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from .cloudformation import install as install_cloudformation

        install_cloudformation()
        self.settings = settings
        self.own = {svc.signing_name: svc for svc in own_services}
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.started = time.time()
        from .iam.models import backend_for
        from .iam.responses import Gate

        self.iam = backend_for(settings)
        self.gate = Gate(self.iam)
        self.checker = ResponseChecker(settings.check_responses) if settings.check_responses else None

    def services(self) -> list[str]:
        names = list(MOTO_SERVICES)
        for svc in self.own.values():
            names.extend(m.service_name for m in svc.router.models)
        return sorted(set(names))

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        environ["emulator.request_id"] = request_id

        def with_request_id(status, headers, exc_info=None):
            # moto sends x-amzn-requestid, but as 52 random letters for most services; AWS's are UUIDs.
            headers = [(name, value) for name, value in headers
                       if name.lower() != "x-amzn-requestid" or _UUID.match(value)]
            if not any(name.lower() == "x-amzn-requestid" for name, _ in headers):
                headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self._dispatch(environ, with_request_id)

    def _dispatch(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_emulator/health":
            return self._json(start_response, 200, {
                "status": "running",
                "services": self.services(),
                "pid": os.getpid(),
                "uptime_seconds": round(time.time() - self.started, 1),
                "state_dir": str(self.settings.state_dir),
            })
        if path.startswith("/_emulator/"):
            admin = self._admin(path, environ)
            if admin is not None:
                return self._answer(start_response, environ, admin, None, check=False)
        region, service = signing_scope(environ)
        refusal = self._refusal(environ, service, path)
        if refusal is not None:
            return self._answer(start_response, environ, error_response(refusal), None)
        own = self.own.get(service) if service else self._unsigned_owner(path)
        if service:
            try:
                denied = self.gate.check(environ, service, region or DEFAULT_REGION, own.router if own else None)
            except ServiceError as exc:  # e.g. an unreadable body: the service would refuse it too
                denied = error_response(exc, own.router.models[0] if own else None)
            if denied is not None:
                return self._answer(start_response, environ, denied, own)
        if own is None:
            return self._moto(environ, start_response, service)
        return self._serve_own(own, environ, start_response, region or DEFAULT_REGION)

    def _refusal(self, environ: dict, service: str | None, path: str) -> AuthError | None:
        """The 403 for a request no service may answer: bad signature scope, or unsigned to a signed route."""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if service is None and auth.startswith(_SIGV4):
            return AuthError("The Authorization header's Credential names no region and service; SigV4 expects "
                             "Credential=<access key>/<yyyymmdd>/<region>/<service>/aws4_request.",
                             code="IncompleteSignatureException")
        if service is None:
            owner = self._signed_owner(environ, path)
            if owner is not None:
                return AuthError(f"Missing Authentication Token: {environ.get('REQUEST_METHOD')} {path} is a "
                                 f"{owner.signing_name} route and must be signed with SigV4 (botocore signs it).",
                                 code="MissingAuthenticationTokenException")
            return None
        if service in self.own or service in MOTO_SERVICES:
            return None
        owner = self._signed_owner(environ, path)
        if owner is not None:
            return AuthError(f"Credential should be scoped to correct service: '{owner.signing_name}'.",
                             code="InvalidSignatureException")
        return None

    def _signed_owner(self, environ: dict, path: str) -> OwnService | None:
        """The own service with a route for this request, when that route is not one it answers unsigned."""
        from urllib.parse import parse_qs

        raw = wsgi.raw_path(environ)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for svc in self.own.values():
            if svc.unsigned_paths is not None and svc.unsigned_paths.match(path):
                continue
            op, _ = svc.router.match(environ.get("REQUEST_METHOD", ""), raw, query)
            if op is not None:
                return svc
        return None

    def _moto(self, environ: dict, start_response, service: str | None) -> Iterable[bytes]:
        try:
            return self.moto(environ, start_response)
        except Exception as exc:  # moto could not place or answer the request: AWS-shaped, never werkzeug's HTML
            if service is not None and service in MOTO_SERVICES:
                log.exception("moto failed on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
                error = ServiceError(f"Internal error in the emulator's {service} (moto): {exc}",
                                     code="InternalFailure")
            elif service is None:
                error = AuthError("Missing Authentication Token: no service answers this request unsigned; sign it "
                                  "with SigV4.", code="MissingAuthenticationTokenException")
            else:
                error = AuthError(f"The signature names the service {service!r}, which this emulator does not "
                                  f"serve; it serves: {', '.join(self.services())}.",
                                  code="InvalidSignatureException")
            return self._answer(start_response, environ, error_response(error), None)

    def _admin(self, path: str, environ: dict) -> HttpResponse | None:
        from .iam import responses as iam

        if path == iam.CREDENTIALS_PATH:
            return iam.credentials_response(self.iam, environ)
        if path == iam.DECISIONS_PATH:
            return iam.decisions_response(self.iam, environ)
        from .bedrock import script as bedrock_script

        if path == bedrock_script.PATH:
            return bedrock_script.admin_response(self.own["bedrock"].backends[0].script, environ)
        return None

    def _unsigned_owner(self, path: str) -> OwnService | None:
        for svc in self.own.values():
            if svc.unsigned_paths is not None and svc.unsigned_paths.match(path):
                return svc
        return None

    def _serve_own(self, svc: OwnService, environ: dict, start_response, region: str):
        raw_path = wsgi.raw_path(environ)
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        try:
            body = wsgi.read_body(environ)
            response = svc.router.handle(environ["REQUEST_METHOD"], raw_path, environ.get("QUERY_STRING", ""),
                                         headers, body, self.settings.account_id, region)
        except ServiceError as exc:
            response = error_response(exc, svc.router.models[0])
            if getattr(exc, "reason", None) == "CannotParse":
                # The body's framing was broken: what follows on the connection cannot be trusted.
                response.headers["Connection"] = "close"
        except Exception as exc:  # a bug of ours: answer as AWS does (500) and keep the trace in the log
            log.exception("unhandled error in %s %s", environ["REQUEST_METHOD"], raw_path)
            response = error_response(ServiceError(f"Internal error in the emulator: {exc}"))
        if response is None:
            response = error_response(ServiceError(
                f"No {svc.signing_name} operation has the route {environ['REQUEST_METHOD']} {raw_path}.",
                code="UnknownOperationException", status=404))
        return self._answer(start_response, environ, response, svc)

    def _answer(self, start_response, environ: dict, response: HttpResponse, svc: OwnService | None,
                check: bool = True) -> Iterable[bytes]:
        """Send an own answer with its request id; with EMULATOR_CHECK_RESPONSES, check it against its shape."""
        response.headers.setdefault(REQUEST_ID_HEADER, environ.get("emulator.request_id") or str(uuid.uuid4()))
        if self.checker is not None and check:
            body = bytes(response.body) if isinstance(response.body, (bytes, bytearray)) else None
            self.checker.check(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), response.operation,
                               response.status, response.headers, body,
                               svc.router.models[0] if svc is not None else None)
        return self._send(start_response, response)

    @staticmethod
    def _send(start_response, response: HttpResponse) -> Iterable[bytes]:
        headers = dict(response.headers)
        if isinstance(response.body, (bytes, bytearray)):
            headers["Content-Length"] = str(len(response.body))
            start_response(f"{response.status} {_reason(response.status)}", list(headers.items()))
            return [bytes(response.body)]
        start_response(f"{response.status} {_reason(response.status)}", list(headers.items()))
        return response.body

    @staticmethod
    def _json(start_response, status: int, doc: dict) -> list[bytes]:
        body = json.dumps(doc).encode()
        start_response(f"{status} {_reason(status)}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def build_app(settings: Settings) -> EmulatorApp:
    from .services import own_services, persistent_moto

    # moto's state is loaded before any service is built, so nothing holds a backend the load replaces.
    moto_state = persistent_moto(settings)
    app = EmulatorApp(settings, own_services(settings))
    app.moto = moto_state.wrap(app.moto, lambda environ: signing_scope(environ)[1])
    return app


def serve(settings: Settings) -> int:
    """Run the endpoint until SIGTERM or SIGINT; return the process exit code."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code="-", size="-"):
            log.debug("%s %s", self.requestline, code)

    problem = _port_problem(settings.host, settings.port)
    if problem:
        print(f"emulator: cannot listen on {settings.host}:{settings.port}: {problem} "
              f"(is another emulator running? stop it, or pass --port)", file=sys.stderr)
        return 2
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    server = make_server(settings.host, settings.port, app, threaded=True, request_handler=QuietHandler)
    stopping = threading.Event()

    def stop(signum, _frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pid_file = settings.state_dir / "emulator.pid"
    pid_file.write_text(f"{os.getpid()} {settings.port}\n")
    print(f"emulator: serving {', '.join(app.services())} on {settings.endpoint} "
          f"(state in {settings.state_dir})", flush=True)
    if settings.iam_enforcement:
        print("emulator: IAM enforced for runtime roles: agents' calls are judged against their execution "
              "role's policies (EMULATOR_IAM_ENFORCEMENT=off turns this off)", flush=True)
    else:
        print("emulator: IAM enforcement is OFF (EMULATOR_IAM_ENFORCEMENT=off): agents' calls are not judged "
              "against their role's policies, so a missing grant will only fail on AWS", flush=True)
    if settings.model_upstream:
        print(f"emulator: Bedrock's InvokeModel calls go to {settings.model_upstream.messages_url} as model "
              f"{settings.model_upstream.model} (WORKSHOP_MODEL_UPSTREAM; unset it for the stand-in)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        _close(app)
        server.server_close()
        pid_file.unlink(missing_ok=True)
        print("emulator: stopped", flush=True)
    return 0


def _port_problem(host: str, port: int) -> str | None:
    """Why the port cannot be bound (werkzeug would print several lines and exit), or None."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _close(app: EmulatorApp) -> None:
    close_all(backend for svc in app.own.values() for backend in svc.backends)
