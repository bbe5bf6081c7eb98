"""`postroom test-email` with OAuth2 (SMTP XOAUTH2 and Microsoft Graph), as an admin
runs it after following docs/oauth.md, against loopback fakes of Microsoft's endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from tests.support.cli import Run, run_postroom
from tests.support.oauth_fakes import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT,
    IdentityFake,
    XOAuth2Recorder,
    identity_fake,
)
from tests.support.smtpd import Recorder, SMTPServer, server_context

MakeServer = Callable[..., SMTPServer]
MAILBOX = "noreply@contoso.example"
TO = "admin@example.org"


@pytest.fixture
def fake(tls_ca: trustme.CA) -> Iterator[IdentityFake]:
    with identity_fake(tls_ca) as started:
        yield started


def check(home: Path, settings: dict[str, str]) -> Run:
    flags = [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]
    return run_postroom(home, *flags, "--set", "mail.timeout=5", "test-email", "--to", TO)


def microsoft(fake: IdentityFake, ca_file: str, **more: str) -> dict[str, str]:
    return {
        "mail.from": MAILBOX,
        "mail.tls_ca_file": ca_file,
        "mail.oauth.tenant_id": TENANT,
        "mail.oauth.client_id": CLIENT_ID,
        "mail.oauth.client_secret": CLIENT_SECRET,
        "mail.oauth.token_url": fake.microsoft_token_url,
        **more,
    }


def xoauth2_server(make: MakeServer, fake: IdentityFake, tls_ca: trustme.CA) -> SMTPServer:
    return make(
        XOAuth2Recorder(fake, MAILBOX),
        mode="starttls",
        tls_context=server_context(tls_ca),
        auth=("unused", "unused"),
    )


def smtp_settings(server: SMTPServer) -> dict[str, str]:
    return {
        "mail.host": server.host,
        "mail.port": str(server.port),
        "mail.security": "starttls",
        "mail.auth": "xoauth2",
    }


def test_xoauth2_shows_the_token_steps_and_sends(
    make_smtp_server: MakeServer,
    fake: IdentityFake,
    tls_ca: trustme.CA,
    ca_file: str,
    tmp_path: Path,
) -> None:
    server = xoauth2_server(make_smtp_server, fake, tls_ca)
    run = check(tmp_path, {**microsoft(fake, ca_file), **smtp_settings(server)})

    assert run.code == 0, run.output
    for title in ("Token endpoint", "Token obtained", "STARTTLS and certificate", "Login"):
        assert f"✓ {title}" in run.stdout, run.output
    assert "https://outlook.office365.com/.default" in run.stdout
    assert "expires" in run.stdout
    assert f"logged in as {MAILBOX} (XOAUTH2)" in run.stdout
    assert len(server.messages) == 1
    for secret in (CLIENT_SECRET, *fake.every_token):
        assert secret not in run.output


def test_graph_shows_the_token_steps_and_sends(
    fake: IdentityFake, ca_file: str, tmp_path: Path
) -> None:
    graph = {"mail.transport": "graph", "mail.graph.base_url": fake.graph_url}
    run = check(tmp_path, {**microsoft(fake, ca_file), **graph})

    assert run.code == 0, run.output
    for title in ("Token endpoint", "Token obtained", "Graph sendMail (test message)"):
        assert f"✓ {title}" in run.stdout, run.output
    assert "https://graph.microsoft.com/.default" in run.stdout
    assert "HTTP 202" in run.stdout
    [(sender, mime)] = fake.sent
    assert sender == MAILBOX
    assert b"Subject: postroom test message" in mime
    for secret in (CLIENT_SECRET, *fake.every_token):
        assert secret not in run.output


def test_a_wrong_client_secret_fails_at_the_token_with_the_fix(
    fake: IdentityFake, ca_file: str, tmp_path: Path
) -> None:
    graph = {"mail.transport": "graph", "mail.graph.base_url": fake.graph_url}
    settings = {**microsoft(fake, ca_file), **graph, "mail.oauth.client_secret": "wrong-Secret"}
    run = check(tmp_path, settings)

    assert run.code == 1, run.output
    assert "✓ Token endpoint" in run.stdout
    assert "✗ Token obtained" in run.stdout
    assert "invalid_client" in run.stdout
    assert "create a new client secret" in run.stdout
    assert "wrong-Secret" not in run.output
    assert fake.sent == []


def test_missing_oauth_settings_are_named(tmp_path: Path, ca_file: str) -> None:
    run = check(
        tmp_path,
        {"mail.transport": "graph", "mail.tls_ca_file": ca_file, "mail.oauth.client_id": "x"},
    )

    assert run.code == 1, run.output
    assert "✗ Token endpoint" in run.stdout
    assert "mail.oauth.client_secret" in run.stdout
    assert "mail.oauth.tenant_id" in run.stdout


def test_microsofts_basic_auth_refusal_says_switch_to_xoauth2(
    make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    server = make_smtp_server(auth=("ops", "the-right-one"))
    assert server.authenticator is not None
    server.authenticator.refusal = (
        "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
    )
    settings = {
        "mail.host": server.host,
        "mail.port": str(server.port),
        "mail.username": "ops",
        "mail.password": "Old-Password-1",
    }
    run = check(tmp_path, settings)

    assert run.code == 1, run.output
    assert "✗ Login" in run.stdout
    assert "5.7.139" in run.stdout
    assert "set mail.auth=xoauth2" in run.stdout
    assert "docs/oauth.md" in run.stdout
    assert "Old-Password-1" not in run.output


def test_microsofts_unauthenticated_refusal_at_mail_from_says_switch_to_xoauth2(
    make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    server = make_smtp_server(
        Recorder(mail_reply="530 5.7.57 Client not authenticated to send mail [AM0PR01]")
    )
    run = check(tmp_path, {"mail.host": server.host, "mail.port": str(server.port)})

    assert run.code == 1, run.output
    assert "✗ MAIL FROM" in run.stdout
    assert "5.7.57" in run.stdout
    assert "set mail.auth=xoauth2" in run.stdout
