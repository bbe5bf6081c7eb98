"""The SMTP client and transport against real in-process aiosmtpd servers."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from tests.support.smtpd import (
    Recorder,
    SilentServer,
    SMTPServer,
    TricklingServer,
    closed_port,
    server_context,
)

from postroom.errors import (
    AuthenticationError,
    CertificateError,
    ConnectError,
    ServerDisconnected,
    SMTPUTF8Required,
    TLSError,
    TransportConfigError,
    TransportTimeout,
)
from postroom.message.envelope import Envelope
from postroom.settings import Home, Secret, Settings
from postroom.transport import smtp as smtp_module
from postroom.transport.smtp import SMTPTransport
from postroom.transport.smtp_client import SMTPClient
from postroom.transport.smtp_connection import SMTPConnection, data_deadline

MakeServer = Callable[..., SMTPServer]
PASSWORD = "correct horse battery staple"
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello.\r\n"


_clients: list[SMTPClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client_for(server: SMTPServer | SilentServer | TricklingServer, **options: Any) -> SMTPClient:
    """A client for ``server``, closed after the test."""
    options.setdefault("timeout", 5.0)
    security = getattr(server, "mode", "plain")
    options.setdefault("security", {"plain": "none"}.get(security, security))
    client = SMTPClient(server.host, server.port, **options)
    _clients.append(client)
    return client


def envelope(*recipients: str, sender: str = "a@example.org", smtputf8: bool = False) -> Envelope:
    return Envelope(sender, recipients or ("b@example.org",), smtputf8=smtputf8)


def client_lines(transcript: list[tuple[str, str]]) -> list[str]:
    return [line for direction, line in transcript if direction == "C"]


# -- sending ------------------------------------------------------------------------------


def test_plain_send_delivers_message_with_envelope(smtp_server: SMTPServer) -> None:
    client = client_for(smtp_server).open()
    result = client.send(envelope("b@example.org", "c@example.org"), MESSAGE)
    client.quit()

    assert result.all_accepted
    assert [r.code for r in result.recipients] == [250, 250]
    [received] = smtp_server.messages
    assert received.mail_from == "a@example.org"
    assert received.rcpt_tos == ["b@example.org", "c@example.org"]
    assert received.content == MESSAGE
    assert f"SIZE={len(MESSAGE)}" in received.mail_options


def test_pipelining_writes_mail_rcpt_and_data_before_reading(smtp_server: SMTPServer) -> None:
    transcript: list[tuple[str, str]] = []
    client = client_for(smtp_server, transcript=lambda d, line: transcript.append((d, line)))
    client.open()
    start = len(transcript)
    client.send(envelope("b@example.org", "c@example.org"), MESSAGE)

    directions = "".join(d for d, _ in transcript[start:])
    assert directions.startswith("CCCC" + "SSSS")  # MAIL, 2 RCPT, DATA, then 4 replies
    assert smtp_server.handler.connections == 1


def test_without_pipelining_commands_go_one_at_a_time(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(Recorder(pipelining=False))
    transcript: list[tuple[str, str]] = []
    client = client_for(server, transcript=lambda d, line: transcript.append((d, line))).open()
    start = len(transcript)
    result = client.send(envelope("b@example.org", "c@example.org"), MESSAGE)

    directions = "".join(d for d, _ in transcript[start:])
    assert directions.startswith("CSCSCSCS")
    assert result.all_accepted
    assert len(server.messages) == 1


@pytest.mark.parametrize("pipelining", [True, False])
def test_each_recipient_gets_its_own_reply(make_smtp_server: MakeServer, pipelining: bool) -> None:
    handler = Recorder(
        pipelining=pipelining,
        rcpt_replies={"later@*": "450 4.2.1 mailbox busy", "nobody@*": "550 5.1.1 no such user"},
    )
    server = make_smtp_server(handler)
    client = client_for(server).open()
    result = client.send(
        envelope("ok@example.org", "later@example.org", "nobody@example.org"), MESSAGE
    )

    by_recipient = {r.recipient: (r.code, r.reply) for r in result.recipients}
    assert by_recipient["ok@example.org"][0] == 250
    assert by_recipient["later@example.org"] == (450, "4.2.1 mailbox busy")
    assert by_recipient["nobody@example.org"] == (550, "5.1.1 no such user")
    assert result.recipients[1].temporary
    assert result.recipients[2].permanent
    assert server.messages[0].rcpt_tos == ["ok@example.org"]


@pytest.mark.parametrize("pipelining", [True, False])
def test_no_recipient_accepted_leaves_connection_usable(
    make_smtp_server: MakeServer, pipelining: bool
) -> None:
    server = make_smtp_server(
        Recorder(pipelining=pipelining, rcpt_replies={"nobody@*": "550 5.1.1 no such user"})
    )
    client = client_for(server).open()
    refused = client.send(envelope("nobody@example.org"), MESSAGE)
    accepted = client.send(envelope("b@example.org"), MESSAGE)

    assert [r.code for r in refused.recipients] == [550]
    assert accepted.all_accepted
    assert len(server.messages) == 1
    assert server.handler.connections == 1


def test_data_opened_without_accepted_recipients_sends_only_the_dot(
    make_smtp_server: MakeServer,
) -> None:
    handler = Recorder(rcpt_replies={"*": "550 5.1.1 no such user"}, open_data_anyway=True)
    server = make_smtp_server(handler)
    client = client_for(server).open()
    result = client.send(envelope("b@example.org"), MESSAGE)

    assert [(r.code, r.reply) for r in result.recipients] == [(550, "5.1.1 no such user")]
    assert [m.content for m in server.messages] == [b""]  # the message itself never went
    assert client.rset().ok


def test_refused_mail_from_answers_for_every_recipient(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(Recorder(mail_reply="553 5.7.1 sender not allowed"))
    client = client_for(server).open()
    result = client.send(envelope("b@example.org", "c@example.org"), MESSAGE)

    assert [(r.code, r.reply) for r in result.recipients] == [
        (553, "5.7.1 sender not allowed"),
        (553, "5.7.1 sender not allowed"),
    ]
    assert server.messages == []
    assert client.is_open


def test_refused_data_answers_for_accepted_recipients(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(Recorder(data_replies={"*": "554 5.6.0 content rejected"}))
    client = client_for(server).open()
    result = client.send(envelope("b@example.org"), MESSAGE)

    assert [(r.code, r.reply) for r in result.recipients] == [(554, "5.6.0 content rejected")]
    assert client.send(envelope("b@example.org"), MESSAGE).recipients[0].code == 554


def test_lines_starting_with_a_dot_arrive_intact(smtp_server: SMTPServer) -> None:
    body = b".starts with a dot\r\n..two dots\r\n.\r\nlast line without end"
    message = b"Subject: dots\r\n\r\n" + body
    client = client_for(smtp_server).open()
    client.send(envelope(), message)

    assert smtp_server.messages[0].content == message + b"\r\n"


def test_bare_line_ends_are_sent_as_crlf(smtp_server: SMTPServer) -> None:
    client = client_for(smtp_server).open()
    client.send(envelope(), b"Subject: lf\n\nline one\nline two\r.dot\n")

    assert smtp_server.messages[0].content == b"Subject: lf\r\n\r\nline one\r\nline two\r\n.dot\r\n"


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_large_message_arrives_intact(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str, security: str
) -> None:
    if security == "ssl":
        server = make_smtp_server(mode="ssl", tls_context=server_context(tls_ca))
    else:
        server = make_smtp_server()
    line = b"0123456789abcdef" * 4 + b"\r\n"
    message = b"Subject: big\r\n\r\n" + line * 60_000 + b".dot\r\n"  # about 4 MB
    client = client_for(server, tls_ca_file=ca_file).open()

    assert client.send(envelope(), message).all_accepted
    assert server.messages[0].content == message


def test_message_over_the_server_size_limit_is_refused_before_sending(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(data_size_limit=100)
    client = client_for(server).open()
    result = client.send(envelope(), b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n")

    assert [r.code for r in result.recipients] == [552]
    assert result.recipients[0].permanent
    assert server.handler.mail_froms == []


def test_smtputf8_address_is_sent_with_smtputf8(smtp_server: SMTPServer) -> None:
    client = client_for(smtp_server).open()
    result = client.send(envelope("jösé@example.org", smtputf8=True), MESSAGE)

    assert result.all_accepted
    assert smtp_server.messages[0].rcpt_tos == ["jösé@example.org"]
    assert "SMTPUTF8" in smtp_server.messages[0].mail_options


def test_smtputf8_not_offered_raises_before_sending(make_smtp_server: MakeServer) -> None:
    server = make_smtp_server(smtputf8=False)
    client = client_for(server).open()

    with pytest.raises(SMTPUTF8Required, match="SMTPUTF8"):
        client.send(envelope("jösé@example.org", smtputf8=True), MESSAGE)
    assert server.handler.mail_froms == []
    assert client.send(envelope(), MESSAGE).all_accepted  # the connection is still fine


def test_many_messages_share_one_connection(smtp_server: SMTPServer) -> None:
    client = client_for(smtp_server).open()
    for index in range(30):
        assert client.send(envelope(f"r{index}@example.org"), MESSAGE).all_accepted
    client.quit()

    assert len(smtp_server.messages) == 30
    assert len({m.peer for m in smtp_server.messages}) == 1
    assert smtp_server.handler.connections == 1


def test_send_many_gives_each_message_its_result_in_order(make_smtp_server: MakeServer) -> None:
    handler = Recorder(
        rcpt_replies={"nobody@*": "550 5.1.1 no such user"},
        data_replies={"spam@*": "554 5.7.1 looks like spam"},
    )
    server = make_smtp_server(handler)
    recipients = [f"r{i}@example.org" for i in range(20)]
    recipients[5] = "nobody@example.org"
    recipients[6] = "spam@example.org"
    recipients[19] = "nobody@example.org"
    client = client_for(server).open()

    results = list(client.send_many((envelope(r), MESSAGE) for r in recipients))

    assert [r.recipients[0].recipient for r in results] == recipients
    codes = [r.recipients[0].code for r in results]
    assert (codes[5], codes[6], codes[19]) == (550, 554, 550)
    assert codes.count(250) == 17
    assert [m.rcpt_tos[0] for m in server.messages] == [
        r for r in recipients if r not in ("nobody@example.org", "spam@example.org")
    ]
    assert handler.connections == 1
    assert client.send(envelope(), MESSAGE).all_accepted


def test_send_many_abandoned_midway_sends_no_unreported_message(
    smtp_server: SMTPServer,
) -> None:
    client = client_for(smtp_server).open()
    results = client.send_many((envelope(f"r{i}@example.org"), MESSAGE) for i in range(10))
    first = next(results)
    results.close()

    assert first.all_accepted
    time.sleep(0.2)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["r0@example.org"]]


def test_send_many_reports_what_it_knows_before_a_dropped_connection(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(Recorder(data_replies={"r3@*": "drop"}))
    client = client_for(server).open()
    seen: list[str] = []
    results = client.send_many((envelope(f"r{i}@example.org"), MESSAGE) for i in range(6))

    with pytest.raises(ServerDisconnected):
        seen.extend(result.recipients[0].recipient for result in results)
    assert seen == ["r0@example.org", "r1@example.org", "r2@example.org"]
    assert [m.rcpt_tos[0] for m in server.messages] == seen


# -- failures -----------------------------------------------------------------------------


def test_refused_connection_raises_connect_error_with_hint() -> None:
    client = SMTPClient("127.0.0.1", closed_port(), timeout=2)

    with pytest.raises(ConnectError, match="refused") as caught:
        client.open()
    assert "mail.port" in str(caught.value.fix)


def test_server_dropping_the_connection_raises_server_disconnected(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(Recorder(data_replies={"*": "drop"}))
    client = client_for(server).open()

    with pytest.raises(ServerDisconnected):
        client.send(envelope(), MESSAGE)
    assert not client.is_open


def test_silent_server_times_out_within_the_timeout(silent_server: SilentServer) -> None:
    client = client_for(silent_server, timeout=1.0)
    started = time.monotonic()

    with pytest.raises(TransportTimeout) as caught:
        client.open()
    assert caught.value.step == "greeting"
    assert 0.9 <= time.monotonic() - started < 3


@pytest.mark.parametrize(("greeting_fast", "step"), [(False, "greeting"), (True, "ehlo")])
def test_a_reply_that_trickles_times_out_as_a_whole(greeting_fast: bool, step: str) -> None:
    # One byte every 0.2 s: every read gets something, the whole reply takes ~10 s.
    server = TricklingServer(greeting_fast=greeting_fast)
    try:
        client = client_for(server, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TransportTimeout) as caught:
            client.open()
        took = time.monotonic() - started
    finally:
        server.close()
    assert caught.value.step == step
    assert "within 1s" in str(caught.value)
    assert took < 3


@pytest.mark.parametrize("size", [30_000, 200_000])  # sendall, and the sendmsg loop
def test_message_data_a_server_takes_too_slowly_times_out_by_its_size(size: int) -> None:
    # The server end reads 1 kB every 50 ms (20 kB/s, under the 50 kB/s floor): each
    # write makes a little progress, so only a deadline for the whole write ends it.
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stop = threading.Event()

    def read_slowly() -> None:
        while not stop.wait(0.05):
            try:
                if not theirs.recv(1024):
                    return
            except OSError:
                return

    reader = threading.Thread(target=read_slowly)
    reader.start()
    connection = SMTPConnection(ours, where="slow.example:25", timeout=0.2)
    limit = data_deadline(0.2, size)
    started = time.monotonic()
    try:
        with pytest.raises(TransportTimeout) as caught:
            connection.write_data(b"x" * size, b"\r\n.\r\n")
        took = time.monotonic() - started
    finally:
        stop.set()
        reader.join()
        theirs.close()
    assert caught.value.step == "data"
    assert f"took more than {limit:.0f}s to take {size} bytes" in str(caught.value)
    assert limit - 0.1 <= took < limit + 1.5
    assert not connection.is_open


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_transaction_answered_just_in_time_at_each_step_is_capped_as_a_whole(
    make_smtp_server: MakeServer, pipelining: bool
) -> None:
    # Each RCPT is answered in 0.35 s, inside the 0.5 s per reply; 12 of them would hold
    # the connection 4 s or more. The cap (3 x 0.5 s plus the data's share) ends it.
    server = make_smtp_server(Recorder(pipelining=pipelining, rcpt_delay=0.35))
    client = client_for(server, timeout=0.5).open()
    recipients = [f"r{i}@example.org" for i in range(12)]
    started = time.monotonic()

    with pytest.raises(TransportTimeout) as caught:
        client.send(envelope(*recipients), MESSAGE)
    took = time.monotonic() - started

    assert caught.value.step == "rcpt"
    assert "did not finish a message within 1.5s" in str(caught.value)
    assert "raise mail.timeout" in str(caught.value)
    assert 1.4 <= took < 2.5
    assert server.messages == []
    assert not client.is_open


def test_the_callers_pauses_between_messages_do_not_count_against_the_cap(
    make_smtp_server: MakeServer,
) -> None:
    # The caller takes longer between two messages than a whole transaction may (as a
    # slow commit of results would); only time spent waiting on the server counts.
    server = make_smtp_server(Recorder())
    client = client_for(server, timeout=0.2).open()

    def items() -> Iterator[tuple[Envelope, bytes]]:
        for i in range(3):
            if i == 1:
                time.sleep(1.0)  # the caller's own work, longer than the 0.6 s cap
            yield envelope(f"r{i}@example.org"), MESSAGE

    results = list(client.send_many(items()))

    assert [r.all_accepted for r in results] == [True, True, True]
    assert len(server.messages) == 3


# -- TLS ----------------------------------------------------------------------------------


def test_starttls_with_ca_file(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str
) -> None:
    server = make_smtp_server(mode="starttls", tls_context=server_context(tls_ca))
    client = client_for(server, tls_ca_file=ca_file).open()
    result = client.send(envelope(), MESSAGE)

    assert client.tls
    assert result.all_accepted
    assert (client.tls_info() or {}).get("verified") is True
    assert "STARTTLS" not in (client.capabilities.keywords if client.capabilities else {})


def test_starttls_required_by_server(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str
) -> None:
    server = make_smtp_server(
        mode="starttls", tls_context=server_context(tls_ca), require_starttls=True
    )
    client = client_for(server, tls_ca_file=ca_file).open()
    assert client.send(envelope(), MESSAGE).all_accepted


def test_implicit_tls(make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str) -> None:
    server = make_smtp_server(mode="ssl", tls_context=server_context(tls_ca))
    client = client_for(server, tls_ca_file=ca_file).open()

    assert client.send(envelope(), MESSAGE).all_accepted
    assert len(server.messages) == 1


def test_untrusted_certificate_raises_certificate_error(
    make_smtp_server: MakeServer, tls_ca: trustme.CA
) -> None:
    server = make_smtp_server(mode="ssl", tls_context=server_context(tls_ca))

    with pytest.raises(CertificateError, match="not trusted") as caught:
        client_for(server).open()
    assert "mail.tls_ca_file" in str(caught.value.fix)


def test_certificate_for_another_host_names_the_hosts(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str
) -> None:
    server = make_smtp_server(
        mode="starttls", tls_context=server_context(tls_ca, "mail.example.org")
    )

    with pytest.raises(CertificateError) as caught:
        client_for(server, tls_ca_file=ca_file).open()
    assert "mail.example.org" in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert server.handler.mail_froms == []


def test_tls_verify_false_accepts_any_certificate(
    make_smtp_server: MakeServer, tls_ca: trustme.CA
) -> None:
    server = make_smtp_server(mode="ssl", tls_context=server_context(tls_ca, "other.example"))
    client = client_for(server, tls_verify=False).open()

    assert client.send(envelope(), MESSAGE).all_accepted


def test_starttls_not_offered_raises_and_sends_nothing_in_plaintext(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(auth=("user", PASSWORD))
    transcript: list[tuple[str, str]] = []
    client = client_for(
        server,
        security="starttls",
        username="user",
        password=Secret(PASSWORD),
        transcript=lambda d, line: transcript.append((d, line)),
    )

    with pytest.raises(TLSError, match="does not offer STARTTLS"):
        client.open()
    assert [line.split()[0] for line in client_lines(transcript)] == ["EHLO"]
    assert server.handler.mail_froms == []
    assert server.authenticator is not None
    assert server.authenticator.attempts == []


def test_ssl_against_a_plaintext_server_explains_the_mismatch(smtp_server: SMTPServer) -> None:
    with pytest.raises(TLSError) as caught:
        client_for(smtp_server, security="ssl", timeout=2).open()
    assert "mail.security" in str(caught.value.fix)


# -- login --------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["plain", "login", "cram-md5", "auto"])
def test_login_with_each_mechanism(make_smtp_server: MakeServer, mechanism: str) -> None:
    server = make_smtp_server(auth=("user", PASSWORD), auth_required=True, cram_md5=True)
    transcript: list[tuple[str, str]] = []
    client = client_for(
        server,
        username="user",
        password=Secret(PASSWORD),
        auth=mechanism,
        transcript=lambda d, line: transcript.append((d, line)),
    ).open()

    assert client.authenticated
    assert client.send(envelope(), MESSAGE).all_accepted
    expected = "CRAM-MD5" if mechanism == "auto" else mechanism.upper()
    assert f"AUTH {expected}" in " ".join(client_lines(transcript))
    assert_no_secret(transcript, PASSWORD)


def test_password_is_not_sent_in_plaintext_to_a_remote_host(
    make_smtp_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_smtp_server(auth=("user", PASSWORD))
    monkeypatch.setattr(SMTPConnection, "peer_is_loopback", lambda self: False)  # pretend

    with pytest.raises(TransportConfigError, match="plaintext"):
        client_for(server, username="user", password=Secret(PASSWORD)).open()
    assert server.authenticator is not None
    assert server.authenticator.attempts == []

    allowed = client_for(
        server, username="user", password=Secret(PASSWORD), allow_plaintext_auth=True
    )
    assert allowed.open().authenticated


def test_login_required_by_server_refuses_mail_without_login(
    make_smtp_server: MakeServer,
) -> None:
    server = make_smtp_server(auth=("user", PASSWORD), auth_required=True)
    client = client_for(server).open()

    result = client.send(envelope(), MESSAGE)
    assert result.recipients[0].code == 530
    assert server.messages == []


@pytest.mark.parametrize("mechanism", ["plain", "login", "cram-md5"])
def test_wrong_password_raises_authentication_error_without_leaking_it(
    make_smtp_server: MakeServer, mechanism: str
) -> None:
    server = make_smtp_server(auth=("user", PASSWORD), cram_md5=True)
    wrong = "wrong-pässword-123"
    transcript: list[tuple[str, str]] = []
    client = client_for(
        server,
        username="user",
        password=Secret(wrong),
        auth=mechanism,
        transcript=lambda d, line: transcript.append((d, line)),
    )

    with pytest.raises(AuthenticationError) as caught:
        client.open()
    error = caught.value
    assert error.code == 535
    assert "mail.password" in str(error)
    for text in (str(error), repr(error), repr(client), repr(error.args), repr(vars(error))):
        assert wrong not in text
    assert_no_secret(transcript, wrong)


def assert_no_secret(transcript: list[tuple[str, str]], secret: str) -> None:
    encoded = [
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0user\0{secret}".encode()).decode(),
    ]
    text = "\n".join(line for _, line in transcript)
    for value in encoded:
        assert value not in text
    for line in client_lines(transcript):
        if line.startswith("AUTH "):
            assert len(line.split()) == 2 or line.endswith("********")


# -- the transport ------------------------------------------------------------------------


def transport_settings(server: SMTPServer, **mail: Any) -> Settings:
    settings = Settings()
    mail.setdefault("timeout", 5.0)
    return replace(
        settings, mail=replace(settings.mail, host=server.host, port=server.port, **mail)
    )


def test_transport_reuses_one_connection(smtp_server: SMTPServer, tmp_path: Path) -> None:
    with SMTPTransport(transport_settings(smtp_server), home=Home(tmp_path)) as transport:
        for _ in range(5):
            assert transport.send(envelope(), MESSAGE).all_accepted

    assert len(smtp_server.messages) == 5
    assert smtp_server.handler.connections == 1


def test_transport_reconnects_after_the_server_closed_an_idle_connection(
    make_smtp_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smtp_module, "IDLE_CHECK_SECONDS", 0.1)
    server = make_smtp_server(idle_timeout=0.3)
    transport = SMTPTransport(transport_settings(server), home=Home(tmp_path))
    transport.open()
    assert transport.send(envelope(), MESSAGE).all_accepted
    time.sleep(0.8)  # the server says 421 and hangs up

    assert transport.send(envelope(), MESSAGE).all_accepted
    transport.close()
    assert len(server.messages) == 2
    assert server.handler.connections == 2


def test_transport_resends_once_when_a_reused_connection_was_dropped(
    make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    server = make_smtp_server()
    transport = SMTPTransport(transport_settings(server), home=Home(tmp_path))
    transport.send(envelope(), MESSAGE)  # opens on first use
    connection = transport.client.connection
    assert connection is not None
    assert connection.sock is not None
    connection.sock.shutdown(2)  # as if the server had gone away unnoticed

    assert transport.send(envelope(), MESSAGE).all_accepted
    transport.close()
    assert len(server.messages) == 2


def test_transport_close_never_raises(smtp_server: SMTPServer, tmp_path: Path) -> None:
    transport = SMTPTransport(transport_settings(smtp_server), home=Home(tmp_path))
    transport.open()
    smtp_server.stop()
    transport.close()
    transport.close()


def test_transport_keeps_an_idle_tls_connection(
    make_smtp_server: MakeServer,
    tls_ca: trustme.CA,
    ca_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(smtp_module, "IDLE_CHECK_SECONDS", 0.0)  # check before every send
    server = make_smtp_server(mode="starttls", tls_context=server_context(tls_ca))
    settings = transport_settings(server, security="starttls", tls_ca_file=ca_file)
    with SMTPTransport(settings, home=Home(tmp_path)) as transport:
        for _ in range(3):
            time.sleep(0.05)
            assert transport.send(envelope(), MESSAGE).all_accepted

    assert server.handler.connections == 1
