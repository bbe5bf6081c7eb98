"""``test-email`` steps for OAuth2: the token endpoint, the token, and Graph sendMail.

Each function returns steps as :mod:`postroom.diagnostics` runs them: a name, a
title, and an action that returns what it saw or raises a TransportError whose fix
the report shows. A token is never part of what is shown: only its scopes and expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from postroom.errors import TransportError
from postroom.message.envelope import Envelope
from postroom.settings import Home, Settings
from postroom.transport.graph import GraphTransport
from postroom.transport.oauth import Purpose, TokenSource, http_client, require_settings
from postroom.transport.smtp_protocol import with_fix

Step = tuple[str, str, Callable[[], str | tuple[str, dict[str, object]]]]


def token_steps(settings: Settings, purpose: Purpose) -> list[Step]:
    """Reach the token endpoint, then obtain a fresh token (never a cached one)."""
    tokens = TokenSource(settings.mail, purpose)
    return [
        ("token_endpoint", "Token endpoint", lambda: _reach(settings, tokens)),
        ("token", "Token obtained", lambda: _obtain(tokens)),
    ]


def graph_steps(settings: Settings, home: Home, envelope: Envelope, data: bytes) -> list[Step]:
    transport = GraphTransport(settings, home=home)
    return [("graph", "Graph sendMail (test message)", lambda: _send(transport, envelope, data))]


def _reach(settings: Settings, tokens: TokenSource) -> str:
    import httpx

    require_settings(settings.mail)

    started = time.perf_counter()
    try:
        with http_client(settings.mail) as client:
            response = client.get(tokens.url)
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        fix = "check the network, mail.oauth.token_url and mail.tls_ca_file"
        raise _with_fix(f"cannot reach {tokens.url} ({reason})", fix) from None
    took = time.perf_counter() - started
    return f"{tokens.url} answers (HTTP {response.status_code} in {took * 1000:.0f} ms)"


def _obtain(tokens: TokenSource) -> tuple[str, dict[str, object]]:
    token = tokens.refresh()
    expires = datetime.fromtimestamp(token.expires_at, UTC)
    minutes = max(0, round((token.expires_at - time.time()) / 60))
    scopes = " ".join(token.scopes)
    detail = (
        f"token for {scopes}, expires {expires:%Y-%m-%d %H:%M} UTC (in {minutes} min); "
        "kept in memory only"
    )
    return detail, {"scopes": list(token.scopes), "expires_at": expires.isoformat()}


def _send(transport: GraphTransport, envelope: Envelope, data: bytes) -> str:
    try:
        transport.open()
        result = transport.send(envelope, data)
    finally:
        transport.close()
    first = result.recipients[0]
    if first.accepted:
        return f"sent as {transport.mailbox}: {first.reply}"
    if first.temporary:
        fix = "Graph is busy or throttling: try again later"
    else:
        fix = "Graph refused this message: see its reply"
    raise _with_fix(f"{first.reply}", fix)


def _with_fix(message: str, fix: str) -> TransportError:
    return with_fix(TransportError(f"{message}; {fix}"), fix)
