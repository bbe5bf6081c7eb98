"""The OAuth2 installed-app flow (RFC 8252) that gets Google a refresh token.

An admin opens the printed URL in a browser and consents; the provider redirects to
``http://127.0.0.1:PORT/`` where :class:`LoopbackRedirect` waits for the one request
that carries the code. The code (with its PKCE verifier, RFC 7636) is exchanged for
a refresh token at mail.oauth.token_url. The token is stored, never printed.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from postroom.settings.glossary import MailSettings
from postroom.transport.oauth import OAuthError, TokenEndpointError, http_client, scope, token_url

#: Where each provider's consent page is; ``generic`` needs --auth-url.
AUTHORIZATION_URLS = {"google": "https://accounts.google.com/o/oauth2/v2/auth"}

_DONE_PAGE = (
    b"<!doctype html><title>postroom</title><p>postroom has what it needs: you can close "
    b"this tab and go back to the terminal.</p>"
)


@dataclass(frozen=True, slots=True)
class Callback:
    """What the browser brought back: a code, or the provider's error."""

    code: str = ""
    state: str = ""
    error: str = ""


class LoopbackRedirect:
    """An HTTP server on 127.0.0.1 that takes one redirect and keeps its parameters."""

    def __init__(self, port: int = 0) -> None:
        received: list[Callback] = []
        arrived = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if "code" not in query and "error" not in query:
                    self.send_error(404)  # a favicon or a stray request: not the redirect
                    return
                received.append(
                    Callback(query.get("code", ""), query.get("state", ""), query.get("error", ""))
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(_DONE_PAGE)
                arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query holds the code: never log it

        self._server = HTTPServer(("127.0.0.1", port), Handler)
        self._received, self._arrived = received, arrived
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/"

    def wait(self, timeout: float) -> Callback | None:
        """The redirect's parameters, or None if none came within ``timeout``."""
        return self._received[0] if self._arrived.wait(timeout) else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass(frozen=True, slots=True)
class Authorization:
    """One run of the flow: the URL to open and what proves the answer is ours."""

    url: str
    redirect_uri: str
    state: str
    verifier: str


def start(mail: MailSettings, redirect_uri: str, auth_url: str) -> Authorization:
    """The consent URL for mail.oauth.client_id, asking for offline access (a refresh
    token) to mail.oauth.scope or the provider's mail scope."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    query = {
        "client_id": mail.oauth_client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": scope(mail, "smtp"),
        "access_type": "offline",
        "prompt": "consent",  # Google gives a refresh token only on consent
        "state": state,
        "code_challenge": challenge.decode().rstrip("="),
        "code_challenge_method": "S256",
    }
    return Authorization(f"{auth_url}?{urlencode(query)}", redirect_uri, state, verifier)


def finish(mail: MailSettings, flow: Authorization, callback: Callback) -> str:
    """The refresh token for the code in ``callback``. Raises OAuthError when the
    consent was refused, the answer is not ours, or the exchange is refused."""
    import httpx

    if callback.error:
        raise OAuthError(
            f"the provider answered {callback.error} instead of a code",
            fix="consent in the browser with an account that may send mail, then run again",
        )
    if not secrets.compare_digest(callback.state, flow.state):
        raise OAuthError("the redirect did not carry this run's state", fix="run the command again")
    url = token_url(mail)
    form = {
        "grant_type": "authorization_code",
        "code": callback.code,
        "redirect_uri": flow.redirect_uri,
        "client_id": mail.oauth_client_id,
        "client_secret": mail.oauth_client_secret.reveal(),
        "code_verifier": flow.verifier,
    }
    with http_client(mail) as client:
        try:
            response = client.post(url, data=form)
            answer = response.json()
        except httpx.HTTPError as exc:
            raise TokenEndpointError(f"cannot reach the token endpoint {url} ({exc})") from None
        except ValueError:
            answer = {"error": f"HTTP {response.status_code}, not JSON"}
    refresh = answer.get("refresh_token") if isinstance(answer, dict) else None
    if not refresh:
        error = answer.get("error", "no refresh token") if isinstance(answer, dict) else "?"
        raise OAuthError(
            f"the token endpoint {url} gave no refresh token ({error})",
            fix="check mail.oauth.client_id and mail.oauth.client_secret (a Desktop app "
            "client), then run again",
        )
    return str(refresh)
