"""Microsoft's and Google's endpoints, as real HTTPS servers on loopback.

Tests cannot reach login.microsoftonline.com, oauth2.googleapis.com or
graph.microsoft.com, so :class:`IdentityFake` speaks their protocols on 127.0.0.1:

- Microsoft identity platform: ``/{tenant}/v2.0/.well-known/openid-configuration`` and
  ``/{tenant}/oauth2/v2.0/token`` (client-credentials grant, as msal uses it);
- Google / generic: ``/token`` (refresh-token and authorization-code grants);
- Microsoft Graph: ``/v1.0/users/{from}/sendMail`` (base64 MIME, ``text/plain``), which
  answers from a script (``graph_replies``) and otherwise checks the bearer token.

It issues random tokens that expire after ``expires_in`` seconds and can be revoked,
and counts every request, so tests can see when postroom asks for a token.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trustme
import uvicorn
from aiosmtpd.smtp import SMTP, AuthResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.support.service import free_port
from tests.support.smtpd import Recorder
from tests.support.waiting import wait_until

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "fake-Client-Secret~0123456789"
TENANT = "contoso.example"
REFRESH_TOKEN = "1//fake-Refresh-Token-abcdef"


@dataclass
class GraphReply:
    """One scripted answer of sendMail: a status, headers and a JSON error body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    code: str = "ErrorFromScript"


@dataclass
class IdentityFake:
    """State of the fake endpoints; see the module docstring."""

    expires_in: int = 3600
    client_secret: str = CLIENT_SECRET
    refresh_token: str = REFRESH_TOKEN
    #: An error the token endpoint answers with instead of a token (e.g. consent missing).
    token_error: tuple[int, str, str] | None = None
    graph_replies: list[GraphReply] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: dict[str, float] = field(default_factory=dict)  # token -> expiry (time.time)
    every_token: list[str] = field(default_factory=list)  # revoked ones too
    sent: list[tuple[str, bytes]] = field(default_factory=list)  # (from, MIME)
    graph_calls: list[tuple[str, int]] = field(default_factory=list)  # (token, status)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests read and change -----------------------------------------------------

    @property
    def microsoft_token_url(self) -> str:
        return f"{self.base_url}/{TENANT}/oauth2/v2.0/token"

    @property
    def google_token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    def revoke_all(self) -> None:
        with self.lock:
            self.issued.clear()

    def valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.issued.get(token)
        return expiry is not None and expiry > time.time()

    # -- the endpoints ----------------------------------------------------------------

    async def openid_configuration(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        return JSONResponse(
            {
                "token_endpoint": f"{self.base_url}/{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{self.base_url}/{tenant}/oauth2/v2.0/authorize",
                "issuer": f"{self.base_url}/{tenant}/v2.0",
            }
        )

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        with self.lock:
            self.token_requests.append(form)
        if self.token_error is not None:
            status, error, description = self.token_error
            return JSONResponse({"error": error, "error_description": description}, status)
        secret = form.get("client_secret", "")
        if form.get("client_id") != CLIENT_ID or secret != self.client_secret:
            description = (
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                "in the request is the client secret value, not the client secret ID."
            )
            return JSONResponse({"error": "invalid_client", "error_description": description}, 401)
        grant = form.get("grant_type")
        if grant == "refresh_token" and form.get("refresh_token") != self.refresh_token:
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
                400,
            )
        if grant == "authorization_code" and form.get("code") != "fake-code":
            return JSONResponse({"error": "invalid_grant", "error_description": "Bad code."}, 400)
        if grant not in ("client_credentials", "refresh_token", "authorization_code"):
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self.lock:
            self.issued[token] = time.time() + self.expires_in
            self.every_token.append(token)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": self.expires_in,
            "scope": form.get("scope", "https://mail.google.com/"),
        }
        if grant == "authorization_code":
            body["refresh_token"] = self.refresh_token
        return JSONResponse(body)

    async def send_mail(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        body = await request.body()
        with self.lock:
            scripted = self.graph_replies.pop(0) if self.graph_replies else None
        if scripted is not None:
            with self.lock:
                self.graph_calls.append((token, scripted.status))
            error = {"error": {"code": scripted.code, "message": f"scripted {scripted.status}"}}
            return JSONResponse(error, scripted.status, headers=scripted.headers)
        if not self.valid(token):
            with self.lock:
                self.graph_calls.append((token, 401))
            error = {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}
            return JSONResponse(error, 401)
        if request.headers.get("content-type", "").split(";")[0] != "text/plain":
            return JSONResponse({"error": {"code": "ErrorInvalidRequest"}}, 400)
        with self.lock:
            self.graph_calls.append((token, 202))
            self.sent.append((request.path_params["sender"], base64.b64decode(body)))
        return Response(status_code=202)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration),
                Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/v1.0/users/{sender}/sendMail", self.send_mail, methods=["POST"]),
            ]
        )


@contextmanager
def identity_fake(tls_ca: trustme.CA, **options: Any) -> Iterator[IdentityFake]:
    """The fake endpoints over HTTPS on a free loopback port, with a certificate from
    ``tls_ca`` (so clients trust it through mail.tls_ca_file)."""
    fake = IdentityFake(**options)
    port = free_port()
    fake.base_url = f"https://127.0.0.1:{port}"
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    with cert.private_key_and_cert_chain_pem.tempfile() as pem:
        config = uvicorn.Config(
            fake.app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="off",
            ssl_certfile=pem,
            ssl_keyfile=pem,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_until(lambda: server.started, timeout=15)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class XOAuth2Recorder(Recorder):
    """An SMTP handler that takes AUTH XOAUTH2 for ``mailbox`` with a token ``fake``
    issued and has not revoked (as Exchange Online and Gmail check it), and records
    every attempt as (user, token)."""

    def __init__(self, fake: IdentityFake, mailbox: str) -> None:
        super().__init__()
        self.fake, self.mailbox = fake, mailbox
        self.logins: list[tuple[str, str]] = []

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        decoded = base64.b64decode(args[1]).decode()
        fields = dict(part.split("=", 1) for part in decoded.split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        self.logins.append((user, token))
        ok = user == self.mailbox and self.fake.valid(token)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)
