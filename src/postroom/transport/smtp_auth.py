"""SMTP AUTH: the password mechanisms (PLAIN, LOGIN, CRAM-MD5) and XOAUTH2.

A password is revealed only where AUTH encodes it, and never sent in plaintext to a
host that is not loopback unless mail.allow_plaintext_auth says so. An OAuth2 token
is sent only over TLS, whatever the host. A token the server refuses is replaced once
before the refusal counts (it may have been revoked or expired early).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from postroom.errors import AuthenticationError, TransportConfigError
from postroom.settings import Secret
from postroom.transport.smtp_connection import SMTPConnection
from postroom.transport.smtp_protocol import (
    Capabilities,
    Reply,
    b64,
    choose_mechanism,
    cram_md5_response,
    plain_response,
    with_fix,
)

if TYPE_CHECKING:  # OAuth2 is imported only by a worker that uses it
    from postroom.transport.oauth import AccessToken, TokenSource

#: Microsoft's replies when password logins (basic authentication) are off for SMTP:
#: 5.7.30 (turned off), 5.7.139 (disabled for the tenant or the user), 5.7.57 (a client
#: that did not authenticate).
BASIC_AUTH_OFF = ("5.7.30", "5.7.139", "5.7.57")

SWITCH_TO_OAUTH = (
    "the server no longer takes password logins (Microsoft 365 turned basic "
    "authentication off): set mail.auth=xoauth2, mail.oauth.provider=microsoft, "
    "mail.oauth.tenant_id, mail.oauth.client_id and mail.oauth.client_secret "
    "(see docs/oauth.md)"
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who logs in and with what: a password, or tokens from ``tokens``."""

    username: str
    password: Secret
    mechanism: str  # mail.auth: auto, plain, login, cram-md5 or xoauth2
    allow_plaintext: bool = False
    tokens: TokenSource | None = None


def xoauth2_response(user: str, token: str) -> bytes:
    """The XOAUTH2 initial response (Google's and Microsoft's docs): base64 of
    ``user={user}^Aauth=Bearer {token}^A^A``."""
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01")


def login(
    conn: SMTPConnection, caps: Capabilities, credentials: Credentials, *, tls: bool, where: str
) -> None:
    """Log in as ``credentials`` say. Raises AuthenticationError (or another
    TransportConfigError: delivery pauses) when it cannot."""
    if credentials.mechanism == "xoauth2":
        _login_with_token(conn, caps, credentials, tls=tls, where=where)
        return
    if not tls and not credentials.allow_plaintext and not conn.peer_is_loopback():
        fix = (
            "set mail.security=starttls or ssl, or mail.allow_plaintext_auth=true "
            "if the network is trusted"
        )
        message = f"refusing to send mail.password in plaintext to {where}; {fix}"
        raise with_fix(TransportConfigError(message), fix)
    mechanism = choose_mechanism(credentials.mechanism, caps.auth)
    if mechanism is None:
        raise _no_mechanism(caps, credentials.mechanism, tls=tls, where=where)
    reply = _authenticate(conn, mechanism, credentials)
    if reply.code == 235:
        return
    if reply.code in (530, 538) and not tls:
        fix = "the server wants TLS before a login: set mail.security=starttls or ssl"
    elif any(code in reply.text for code in BASIC_AUTH_OFF):
        fix = SWITCH_TO_OAUTH
    else:
        fix = "check mail.username and mail.password"
    message = f"{where} refused the login of {credentials.username!r} ({mechanism}): {reply}; {fix}"
    raise with_fix(AuthenticationError(message, code=reply.code, reply=reply.text), fix)


def _no_mechanism(caps: Capabilities, configured: str, *, tls: bool, where: str) -> Exception:
    offered = ", ".join(caps.auth) or "none"
    if not caps.auth and not tls and caps.starttls:
        fix = "the server wants TLS first: set mail.security=starttls"
    elif not caps.auth:
        fix = "the server takes no login here: clear mail.username"
    elif configured == "xoauth2":
        fix = "this server does not take OAuth2 tokens: use a password mechanism (mail.auth)"
    else:
        fix = f"set mail.auth=auto or one of: {offered.lower()}"
    message = (
        f"{where} offers no usable login mechanism (mail.auth={configured}, offered: "
        f"{offered}); {fix}"
    )
    return with_fix(AuthenticationError(message), fix)


def _authenticate(conn: SMTPConnection, mechanism: str, credentials: Credentials) -> Reply:
    username, password = credentials.username, credentials.password.reveal()
    if mechanism == "PLAIN":
        return conn.command(f"AUTH PLAIN {plain_response(username, password).decode()}", "auth")
    reply = conn.command(f"AUTH {mechanism}", "auth")
    if mechanism == "CRAM-MD5" and reply.code == 334:
        try:
            answer = cram_md5_response(username, password, reply.text).decode()
        except ValueError:
            answer = "*"  # a challenge that is not base64: cancel
        reply = conn.command(answer, "auth", secret=True)
    elif mechanism == "LOGIN":
        for value in (username, password):
            if reply.code != 334:
                break
            reply = conn.command(b64(value).decode(), "auth", secret=True)
    return reply


def _login_with_token(
    conn: SMTPConnection, caps: Capabilities, credentials: Credentials, *, tls: bool, where: str
) -> None:
    if not tls:
        fix = "set mail.security=starttls (port 587) or ssl (port 465)"
        message = f"mail.auth=xoauth2 sends a bearer token, never in plaintext; {fix}"
        raise with_fix(TransportConfigError(message), fix)
    if "XOAUTH2" not in caps.auth:
        raise _no_mechanism(caps, "xoauth2", tls=tls, where=where)
    tokens = credentials.tokens
    if tokens is None:
        raise with_fix(TransportConfigError("mail.auth=xoauth2 without a token source"), "")
    token = tokens.token()
    reply = _send_token(conn, credentials.username, token)
    if reply.code == 235:
        return
    # Revoked or expired early: one new token before the refusal counts.
    reply = _send_token(conn, credentials.username, tokens.refresh(token))
    if reply.code == 235:
        return
    fix = (
        f"the token was refused for {credentials.username}: check that the app has the "
        "SMTP permission (Microsoft: SMTP.SendAsApp with admin consent, an Exchange "
        "service principal and mailbox permission for it; Google: the mail.google.com "
        "scope) and that mail.username is the mailbox it may send as"
    )
    message = f"{where} refused the XOAUTH2 login of {credentials.username!r}: {reply}; {fix}"
    raise with_fix(AuthenticationError(message, code=reply.code, reply=reply.text), fix)


def _send_token(conn: SMTPConnection, user: str, token: AccessToken) -> Reply:
    reply = conn.command(f"AUTH XOAUTH2 {xoauth2_response(user, token.value).decode()}", "auth")
    if reply.code == 334:  # Google: a base64 JSON error first; an empty line ends it
        reply = conn.command("", "auth", secret=True)
    return reply
