"""An identity provider for tests: an OIDC discovery document and its key set on 127.0.0.1, and tokens it signs."""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.emulator import free_port


class IdentityProvider:
    """Serves /.well-known/openid-configuration and /jwks.json; `token(...)` issues RS256 access tokens."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:12]
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        docs = {
            "/.well-known/openid-configuration": {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks.json",
                                                  "token_endpoint": f"{self.issuer}/token"},
            "/jwks.json": {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]},
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                doc = docs.get(self.path)
                body = json.dumps(doc or {"error": "not found"}).encode()
                self.send_response(200 if doc else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="oidc", daemon=True)

    def __enter__(self) -> "IdentityProvider":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, subject: str, *, audience: str | None = None, client_id: str | None = None,
              expires_in: float = 300, key=None, issuer: str | None = None, **claims) -> str:
        now = int(time.time())
        doc = {"sub": subject, "iss": issuer or self.issuer, "iat": now, "exp": int(now + expires_in),
               "token_use": "access", **claims}
        if audience is not None:
            doc["aud"] = audience
        if client_id is not None:
            doc["client_id"] = client_id
        return jwt.encode(doc, key or self.key, algorithm="RS256", headers={"kid": self.kid})
