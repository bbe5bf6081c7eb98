"""Sending with OAuth2: SMTP XOAUTH2 and Microsoft Graph, against real loopback servers.

The token endpoint and Graph are :mod:`tests.support.oauth_fakes` over HTTPS; the SMTP
server is aiosmtpd with STARTTLS and an XOAUTH2 check of the tokens the fake issued.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from tests.support.oauth_fakes import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT,
    GraphReply,
    IdentityFake,
    XOAuth2Recorder,
    identity_fake,
)
from tests.support.smtpd import SMTPServer, server_context, start_server
from tests.support.waiting import wait_until

from postroom import Postroom
from postroom.delivery.results import RunStats
from postroom.delivery.worker import Worker
from postroom.errors import MessageTooLargeError
from postroom.message.model import Attachment
from postroom.store.queries import count_messages, get_message

MAILBOX = "noreply@contoso.example"


@pytest.fixture
def fake(tls_ca: trustme.CA) -> Iterator[IdentityFake]:
    with identity_fake(tls_ca) as started:
        yield started


def oauth_flags(fake: IdentityFake, ca_file: str, **more: str) -> dict[str, str]:
    return {
        "mail.enabled": "true",
        "mail.from": MAILBOX,
        "mail.tls_ca_file": ca_file,
        "mail.oauth.provider": "microsoft",
        "mail.oauth.tenant_id": TENANT,
        "mail.oauth.client_id": CLIENT_ID,
        "mail.oauth.client_secret": CLIENT_SECRET,
        "mail.oauth.token_url": fake.microsoft_token_url,
        "delivery.backoff_min": "0",
        "delivery.backoff_max": "0",
        **more,
    }


@pytest.fixture
def smtp(fake: IdentityFake, tls_ca: trustme.CA) -> Iterator[tuple[SMTPServer, XOAuth2Recorder]]:
    handler = XOAuth2Recorder(fake, MAILBOX)
    server = start_server(
        handler, mode="starttls", tls_context=server_context(tls_ca), auth=("unused", "unused")
    )
    yield server, handler
    server.stop()


def smtp_flags(fake: IdentityFake, ca_file: str, server: SMTPServer, **more: str) -> dict[str, str]:
    return {**oauth_flags(fake, ca_file, **more), **server.settings_flags(), "mail.auth": "xoauth2"}


def deliver(postroom: Postroom, concurrency: int = 2) -> RunStats:
    return Worker(postroom.config, postroom.outbox, concurrency=concurrency).run(once=True)


def send(postroom: Postroom, count: int) -> list[int]:
    return postroom.send_many(
        [{"to": f"u{i}@example.org", "subject": f"m{i}", "text": "hello"} for i in range(count)]
    )


# -- SMTP XOAUTH2 -------------------------------------------------------------------------


def test_xoauth2_sends_a_hundred_messages_with_one_token(
    tmp_path: Path,
    fake: IdentityFake,
    ca_file: str,
    smtp: tuple[SMTPServer, XOAuth2Recorder],
) -> None:
    server, handler = smtp
    with Postroom(tmp_path, settings=smtp_flags(fake, ca_file, server)) as postroom:
        send(postroom, 100)
        stats = deliver(postroom)
    assert stats.sent == 100
    assert len(server.messages) == 100
    assert len(fake.token_requests) == 1  # cached across connections and messages
    assert fake.token_requests[0]["grant_type"] == "client_credentials"
    assert fake.token_requests[0]["scope"].split()[0] == "https://outlook.office365.com/.default"
    assert {user for user, _ in handler.logins} == {MAILBOX}


def test_a_token_near_its_expiry_is_replaced_before_it_is_used(
    tmp_path: Path,
    tls_ca: trustme.CA,
    ca_file: str,
) -> None:
    # Tokens that live 301 s are within the 300 s margin a second later: each new
    # connection asks for a new one instead of using one about to expire.
    with identity_fake(tls_ca, expires_in=301) as fake:
        handler = XOAuth2Recorder(fake, MAILBOX)
        server = start_server(
            handler, mode="starttls", tls_context=server_context(tls_ca), auth=("u", "p")
        )
        try:
            flags = smtp_flags(fake, ca_file, server)
            with Postroom(tmp_path, settings=flags) as postroom:
                send(postroom, 1)
                deliver(postroom, concurrency=1)
                before = len(fake.token_requests)
                wait_until(lambda: time.time() > min(fake.issued.values()) - 300)
                send(postroom, 1)
                deliver(postroom, concurrency=1)
        finally:
            server.stop()
    assert len(server.messages) == 2
    assert len(fake.token_requests) == before + 1
    assert len({token for _, token in handler.logins}) == 2


def test_a_revoked_token_is_replaced_once_and_the_mail_goes(
    tmp_path: Path, fake: IdentityFake, ca_file: str, smtp: tuple[SMTPServer, XOAuth2Recorder]
) -> None:
    server, handler = smtp
    with Postroom(tmp_path, settings=smtp_flags(fake, ca_file, server)) as postroom:
        send(postroom, 1)
        deliver(postroom, concurrency=1)
        fake.revoke_all()  # the cached token is now refused
        send(postroom, 1)
        stats = deliver(postroom, concurrency=1)
    assert stats.sent == 1
    assert stats.paused == 0
    assert len(server.messages) == 2
    assert len(fake.token_requests) == 2
    assert [fake.valid(token) for _, token in handler.logins] == [False, False, True]


def test_a_revoked_token_whose_refresh_is_refused_pauses_and_keeps_the_mail(
    tmp_path: Path,
    fake: IdentityFake,
    ca_file: str,
    smtp: tuple[SMTPServer, XOAuth2Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, _ = smtp
    with Postroom(tmp_path, settings=smtp_flags(fake, ca_file, server)) as postroom:
        send(postroom, 1)
        deliver(postroom, concurrency=1)
        fake.revoke_all()
        fake.client_secret = "rotated-by-someone-else"  # ours no longer works
        (pk,) = send(postroom, 1)
        with caplog.at_level(logging.ERROR, logger="postroom.worker"):
            stats = deliver(postroom, concurrency=1)
        detail = get_message(postroom.engine, pk)
    assert stats.paused >= 1
    assert stats.failed == 0
    assert detail is not None
    assert (detail.summary.status, detail.summary.attempts) == ("queued", 0)
    assert "mail.oauth.client_secret is wrong or expired" in caplog.text
    assert len(server.messages) == 1


def test_a_wrong_client_secret_pauses_with_the_fix(
    tmp_path: Path,
    fake: IdentityFake,
    ca_file: str,
    smtp: tuple[SMTPServer, XOAuth2Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, handler = smtp
    flags = smtp_flags(fake, ca_file, server, **{"mail.oauth.client_secret": "wrong-Secret-42"})
    with Postroom(tmp_path, settings=flags) as postroom:
        ids = send(postroom, 3)
        with caplog.at_level(logging.ERROR, logger="postroom.worker"):
            stats = deliver(postroom)
        details = [get_message(postroom.engine, pk) for pk in ids]
    assert stats.failed == 0
    assert stats.paused >= 1
    assert [(d.summary.status, d.summary.attempts) for d in details if d] == [("queued", 0)] * 3
    assert "invalid_client" in caplog.text
    assert "create a new client secret" in caplog.text
    assert "wrong-Secret-42" not in caplog.text
    assert handler.logins == []


def test_xoauth2_is_never_sent_without_tls(
    tmp_path: Path, fake: IdentityFake, ca_file: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler = XOAuth2Recorder(fake, MAILBOX)
    server = start_server(handler, auth=("u", "p"))  # plaintext, offers AUTH anyway
    try:
        flags = smtp_flags(fake, ca_file, server)
        with Postroom(tmp_path, settings=flags) as postroom:
            (pk,) = send(postroom, 1)
            with caplog.at_level(logging.ERROR, logger="postroom.worker"):
                stats = deliver(postroom, concurrency=1)
            detail = get_message(postroom.engine, pk)
    finally:
        server.stop()
    assert stats.paused >= 1
    assert detail is not None
    assert detail.summary.status == "queued"
    assert "never in plaintext" in caplog.text
    assert handler.logins == []
    assert server.messages == []


# -- Microsoft Graph ------------------------------------------------------------------


def graph_flags(fake: IdentityFake, ca_file: str, **more: str) -> dict[str, str]:
    return oauth_flags(
        fake, ca_file, **{"mail.transport": "graph", "mail.graph.base_url": fake.graph_url}, **more
    )


def test_graph_sends_the_mime_to_the_mailbox_with_one_token(
    tmp_path: Path, fake: IdentityFake, ca_file: str
) -> None:
    with Postroom(tmp_path, settings=graph_flags(fake, ca_file)) as postroom:
        ids = postroom.send_many(
            [
                {
                    "to": f"u{i}@example.org",
                    "bcc": ["audit@example.org"],
                    "subject": "s",
                    "text": "t",
                }
                for i in range(20)
            ]
        )
        stats = deliver(postroom)
        detail = get_message(postroom.engine, ids[0])
    assert stats.sent == 20
    assert len(fake.sent) == 20
    assert len(fake.token_requests) == 1
    assert fake.token_requests[0]["scope"].split()[0] == "https://graph.microsoft.com/.default"
    sender, mime = fake.sent[0]
    assert sender == MAILBOX
    assert b"\r\nBcc: audit@example.org\r\n" in mime  # Graph reads recipients from headers
    assert detail is not None
    assert [(r.status, r.code) for r in detail.summary.recipients] == [("sent", None)] * 2
    assert "HTTP 202" in (detail.summary.recipients[0].reply or "")


@pytest.mark.parametrize(
    ("reply", "status", "counted"),
    [
        (GraphReply(429, {"Retry-After": "120"}, "ApplicationThrottled"), "deferred", True),
        (GraphReply(503, {}, "ServiceUnavailable"), "deferred", True),
        (GraphReply(400, {}, "ErrorInvalidRecipients"), "failed", True),
        (GraphReply(403, {}, "ErrorAccessDenied"), "queued", False),
    ],
    ids=["429", "503", "400", "403"],
)
def test_graph_replies_decide_the_state(
    tmp_path: Path,
    fake: IdentityFake,
    ca_file: str,
    reply: GraphReply,
    status: str,
    counted: bool,
) -> None:
    fake.graph_replies.append(reply)
    flags = graph_flags(
        fake, ca_file, **{"delivery.backoff_min": "10", "delivery.backoff_max": "60"}
    )
    with Postroom(tmp_path, settings=flags) as postroom:
        pk = postroom.send(to="ada@example.org", subject="graph", text="hi")
        started = time.time()
        deliver(postroom, concurrency=1)
        detail = get_message(postroom.engine, pk)
    assert detail is not None
    assert detail.summary.status == status
    assert detail.summary.attempts == (1 if counted else 0)
    assert fake.sent == []
    if reply.status == 429:  # Retry-After wins over the 10-60 s backoff
        assert detail.summary.next_attempt_at is not None
        assert detail.summary.next_attempt_at >= started + 119
    if status == "failed":
        assert "ErrorInvalidRecipients" in (detail.summary.last_error or "")


def test_graph_refuses_a_message_too_large_for_it_at_enqueue(
    tmp_path: Path, fake: IdentityFake, ca_file: str
) -> None:
    with Postroom(tmp_path, settings=graph_flags(fake, ca_file)) as postroom:
        with pytest.raises(MessageTooLargeError) as caught:
            postroom.send(
                to="ada@example.org",
                subject="big",
                text="x",
                attachments=[Attachment("data.bin", b"\0" * 3_500_000)],
            )
        assert "Microsoft Graph" in str(caught.value)
        assert "mail.transport=smtp" in str(caught.value)
        assert count_messages(postroom.engine) == 0


def test_no_token_or_secret_reaches_a_log_a_row_or_the_journal(
    tmp_path: Path,
    fake: IdentityFake,
    ca_file: str,
    smtp: tuple[SMTPServer, XOAuth2Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, _ = smtp
    with caplog.at_level(logging.DEBUG):
        with Postroom(tmp_path, settings=smtp_flags(fake, ca_file, server)) as postroom:
            send(postroom, 5)
            deliver(postroom)
        fake.revoke_all()
        flags = graph_flags(fake, ca_file)
        with Postroom(tmp_path, settings=flags) as postroom:
            send(postroom, 5)
            deliver(postroom)
    secrets = [CLIENT_SECRET, *fake.every_token]
    assert len(secrets) >= 3
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for secret in secrets:
        assert secret not in caplog.text
        for path in files:
            assert secret.encode() not in path.read_bytes(), path


def test_graph_replaces_a_revoked_token_once_and_the_mail_goes(
    tmp_path: Path, fake: IdentityFake, ca_file: str
) -> None:
    with Postroom(tmp_path, settings=graph_flags(fake, ca_file)) as postroom:
        send(postroom, 1)
        deliver(postroom, concurrency=1)
        fake.revoke_all()
        send(postroom, 1)
        stats = deliver(postroom, concurrency=1)
    assert stats.sent == 1
    assert stats.paused == 0
    assert [status for _, status in fake.graph_calls] == [202, 401, 202]
    assert len(fake.token_requests) == 2
    assert len(fake.sent) == 2


def test_an_unreachable_token_endpoint_defers_the_mail(tmp_path: Path, ca_file: str) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flags = {
        "mail.enabled": "true",
        "mail.transport": "graph",
        "mail.from": MAILBOX,
        "mail.tls_ca_file": ca_file,
        "mail.oauth.tenant_id": TENANT,
        "mail.oauth.client_id": CLIENT_ID,
        "mail.oauth.client_secret": CLIENT_SECRET,
        "mail.oauth.token_url": f"https://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token",
        "delivery.backoff_min": "1h",
    }
    with Postroom(tmp_path, settings=flags) as postroom:
        pk = postroom.send(to="ada@example.org", subject="s", text="t")
        stats = deliver(postroom, concurrency=1)
        detail = get_message(postroom.engine, pk)
    assert stats.deferred == 1
    assert detail is not None
    assert (detail.summary.status, detail.summary.attempts) == ("deferred", 1)
    assert "cannot reach the token endpoint" in (detail.summary.last_error or "")
