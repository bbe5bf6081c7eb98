"""`postroom.testing.CaptureServer`: a real capture server on 127.0.0.1, driven by
smtplib and raw sockets. Every test is bounded in time."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import MethodType
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP
from tests.support.smtp_dialog import Dialog

from postroom.capture.server import IDENT, _accept_any_login
from postroom.capture.session import BARE_NEWLINE, CaptureSMTP
from postroom.store.capture_queries import get_captured
from postroom.testing import CaptureServer

MESSAGE = (
    b"From: App <app@example.org>\r\nTo: bob@example.org\r\nSubject: Password reset\r\n"
    b"Content-Type: text/plain\r\n\r\nReset here: https://app.example.org/reset?t=abc\r\n"
)


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as started:
        yield started


def send(server: CaptureServer, to: list[str], message: bytes = MESSAGE, **kw: Any) -> Any:
    with smtplib.SMTP(server.host, server.port, timeout=10, **kw) as client:
        return client.sendmail("app@example.org", to, message)


def test_message_is_kept_with_its_envelope_and_session(server: CaptureServer) -> None:
    with smtplib.SMTP(server.host, server.port, local_hostname="app.local", timeout=10) as client:
        client.ehlo()
        assert client.has_extn("pipelining")
        assert client.has_extn("size")
        assert not client.has_extn("auth")
        client.mail("app@example.org")
        client.rcpt("Bob@Example.org")
        client.rcpt("cy@example.org")
        code, reply = client.data(MESSAGE)
    assert code == 250
    assert reply.startswith(b"2.0.0 OK: kept in the mail record as ")
    (kept,) = server.messages()
    assert kept.raw == MESSAGE
    assert kept.rcpt_tos == ("Bob@Example.org", "cy@example.org")
    assert kept.mail_from == "app@example.org"
    assert kept.subject == "Password reset"
    assert kept.links() == ["https://app.example.org/reset?t=abc"]
    detail = server.messages(to="bob@example.org")[0]
    assert detail.id == kept.id


def test_each_recipient_has_its_own_mailbox_and_wait_for_returns_each_message_once(
    server: CaptureServer,
) -> None:
    send(server, ["ada@example.org"], MESSAGE.replace(b"Password reset", b"For Ada"))
    send(server, ["bob@example.org"], MESSAGE.replace(b"Password reset", b"Bob 1"))
    send(server, ["bob@example.org"], MESSAGE.replace(b"Password reset", b"Bob 2"))
    assert [m.subject for m in server.messages(to="BOB@example.org")] == ["Bob 1", "Bob 2"]
    assert server.wait_for(to="bob@example.org", timeout=5).subject == "Bob 1"
    assert server.wait_for(to="bob@example.org", timeout=5).subject == "Bob 2"
    with pytest.raises(TimeoutError, match=r"no new message to bob@example.org within 0.2s"):
        server.wait_for(to="bob@example.org", timeout=0.2)
    assert server.wait_for(subject="ada", timeout=5).rcpt_tos == ("ada@example.org",)


def test_wait_for_wakes_when_a_message_arrives_later(server: CaptureServer) -> None:
    later = threading.Timer(0.3, send, args=(server, ["late@example.org"]))
    later.start()
    started = time.monotonic()
    found = server.wait_for(to="late@example.org", subject="reset", timeout=10)
    later.join()
    assert found.rcpt_tos == ("late@example.org",)
    assert time.monotonic() - started < 5


def test_clear_empties_the_record(server: CaptureServer) -> None:
    send(server, ["a@example.org", "b@example.org"])
    assert server.clear() == 1
    assert server.messages() == []


# Group commit (250 only after the commit, sessions sharing one, a failing commit
# answering 451 to all of it) is in test_capture_group_commit.py, on both databases.


def test_old_messages_are_dropped_past_max_messages() -> None:
    with CaptureServer(settings={"capture.max_messages": "3"}) as server:
        for n in range(5):
            send(server, ["bob@example.org"], MESSAGE.replace(b"Password reset", f"n{n}".encode()))
        # The prune runs right after the commit's 250s, in a transaction of its own.
        deadline = time.monotonic() + 5
        while len(server.messages()) > 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [m.subject for m in server.messages()] == ["n2", "n3", "n4"]


def test_a_session_is_set_up_as_aiosmtpd_sets_it_up(server: CaptureServer) -> None:
    """CaptureSMTP sets what aiosmtpd's SMTP.__init__ sets, from method tables found
    once per server instead of on every connection; an aiosmtpd that sets up its
    sessions differently fails here."""
    service = server._service
    assert service is not None
    limit, timeout = service.options.max_size, service.options.idle_timeout

    async def build() -> tuple[CaptureSMTP, CaptureSMTP]:
        ours = CaptureSMTP(
            service.handler,
            tables=service._tables,
            faults=service.faults,
            on_lost=lambda: None,
            data_size_limit=limit,
            hostname="capture.test",
            ident=IDENT,
            timeout=timeout,
            authenticator=_accept_any_login,
            auth_require_tls=False,
        )
        theirs = CaptureSMTP.__new__(CaptureSMTP)
        SMTP.__init__(
            theirs,
            service.handler,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            hostname="capture.test",
            ident=IDENT,
            timeout=timeout,
            authenticator=_accept_any_login,
            auth_require_tls=False,
        )
        return ours, theirs

    ours, theirs = asyncio.run(build())
    assert ours._smtp_methods.pop(BARE_NEWLINE) == ours.refuse_bare_newline
    mine = {
        k: v for k, v in vars(ours).items() if k not in ("_faults", "_on_lost", "_last_received")
    }
    assert mine.keys() == vars(theirs).keys()
    for key, value in vars(theirs).items():
        assert _shape(mine[key], ours) == _shape(value, theirs), key


def _shape(value: Any, owner: object) -> Any:
    """``value`` with what differs between two sessions by nature taken out: methods
    bound to the session itself, and per-connection objects (futures, readers)."""
    if isinstance(value, MethodType):
        return (value.__func__, "session" if value.__self__ is owner else value.__self__)
    if isinstance(value, dict):
        return {key: _shape(item, owner) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_shape(item, owner) for item in value)
    for kind in (asyncio.StreamReader, asyncio.Future, weakref.ref, deque):
        if isinstance(value, kind):
            return kind.__name__
    if value is None or isinstance(value, bool):
        return bool(value)  # require_starttls: aiosmtpd gives None or False
    return value


# -- STARTTLS and AUTH -------------------------------------------------------------------


@pytest.fixture
def tls_files(tls_ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    cert = tls_ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    with cert_file.open("ab") as handle:
        for pem in cert.cert_chain_pems[1:]:
            handle.write(pem.bytes())
    return {"capture.tls_cert": str(cert_file), "capture.tls_key": str(key_file)}


def test_starttls_and_any_login_work_for_clients_set_up_for_a_real_server(
    tls_files: dict[str, str], tls_ca: trustme.CA
) -> None:
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    with CaptureServer(settings={**tls_files, "capture.auth": "true"}) as server:
        assert server.settings["mail.security"] == "starttls"
        with smtplib.SMTP(server.host, server.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=client_context)
            client.ehlo()
            assert "PLAIN" in client.esmtp_features["auth"]
            client.login("whoever", "any password at all")
            client.sendmail("app@example.org", ["bob@example.org"], MESSAGE)
        detail = server.messages()[0]
        summary = get_captured(server._engine(), detail.id).summary  # type: ignore[union-attr]
        assert (summary.tls, summary.auth_user) == (True, "whoever")


def test_auth_is_not_offered_unless_capture_auth(
    tls_files: dict[str, str], tls_ca: trustme.CA
) -> None:
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    with (
        CaptureServer(settings=tls_files) as server,
        smtplib.SMTP(server.host, server.port, timeout=10) as client,
    ):
        client.starttls(context=client_context)
        client.ehlo()
        assert not client.has_extn("auth")


# -- scripted faults ---------------------------------------------------------------------


def test_451_at_rcpt_for_the_first_two_attempts_then_accepted(server: CaptureServer) -> None:
    server.faults = [{"match": "*@slow.example", "reply": 451, "times": 2}]
    for _ in range(2):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            send(server, ["ada@slow.example"])
        assert caught.value.recipients["ada@slow.example"][0] == 451
    assert send(server, ["ada@slow.example"]) == {}
    assert len(server.messages()) == 1
    assert [hit for _rule, hit in server.faults_fired] == ["ada@slow.example"] * 2


def test_550_after_data_keeps_nothing(server: CaptureServer) -> None:
    server.faults = [{"match": "bob@*", "reply": "550 5.1.1 no such user", "at": "data"}]
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(server, ["bob@example.org"])
    assert (caught.value.smtp_code, caught.value.smtp_error) == (550, b"5.1.1 no such user")
    assert server.messages() == []


def test_421_answers_then_closes_the_connection(server: CaptureServer) -> None:
    server.faults = [{"match": "*", "reply": 421}]
    with Dialog(server.host, server.port) as dialog:
        dialog.reply()
        dialog.command("EHLO app.local")
        dialog.command("MAIL FROM:<app@example.org>")
        assert dialog.command("RCPT TO:<bob@example.org>")[0] == 421
        assert dialog.is_closed(5)


def test_drop_before_the_dot_keeps_nothing(server: CaptureServer) -> None:
    server.faults = [{"match": "*", "action": "drop-before-dot", "times": 1}]
    with Dialog(server.host, server.port) as dialog:
        dialog.reply()
        dialog.command("EHLO app.local")
        dialog.command("MAIL FROM:<app@example.org>")
        dialog.command("RCPT TO:<bob@example.org>")
        assert dialog.command("DATA")[0] == 354
        dialog.send(b"Subject: half\r\n")
        assert dialog.is_closed(5)
    assert server.messages() == []
    assert send(server, ["bob@example.org"]) == {}  # times: 1


def test_drop_after_the_dot_keeps_the_message_but_never_answers(server: CaptureServer) -> None:
    server.faults = [{"match": "*", "action": "drop-after-dot"}]
    with Dialog(server.host, server.port) as dialog:
        dialog.reply()
        dialog.command("EHLO app.local")
        dialog.command("MAIL FROM:<app@example.org>")
        dialog.command("RCPT TO:<bob@example.org>")
        assert dialog.command("DATA")[0] == 354
        dialog.send(MESSAGE + b".\r\n")
        assert dialog.is_closed(5)
        assert dialog.pending(0.1) == b""
    assert len(server.messages()) == 1


def test_faults_from_the_settings_are_in_force_at_start() -> None:
    rules = json.dumps([{"match": "*@x.org", "reply": 452}])
    with CaptureServer(settings={"capture.faults": rules}) as server:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(server, ["a@x.org"])
        assert server.faults[0].code == 452


def test_the_pytest_fixture_gives_a_running_server(capture_server: CaptureServer) -> None:
    send(capture_server, ["fixture@example.org"])
    assert capture_server.wait_for(to="fixture@example.org", timeout=5).subject == "Password reset"
