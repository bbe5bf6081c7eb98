"""`postroom.testing.CaptureServer`: a real capture server on 127.0.0.1, driven by
smtplib and raw sockets. Every test is bounded in time."""

from __future__ import annotations

import json
import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from tests.support.smtp_dialog import Dialog

from postroom.store.capture import Row
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


class _GatedStore:
    """Holds every commit until ``gate`` is set; counts what it was given."""

    def __init__(self, real: Any) -> None:
        self.real, self.engine = real, real.engine
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def insert_rows(self, rows: list[Row], **kwargs: Any) -> list[int]:
        self.entered.set()
        assert self.gate.wait(10)
        self.batches.append(len(rows))
        return list(self.real.insert_rows(rows, **kwargs))


def _gate(server: CaptureServer) -> _GatedStore:
    writer = server._service.writer  # type: ignore[union-attr]
    gated = _GatedStore(writer.store)
    writer.store = gated
    return gated


def test_250_comes_only_after_the_message_is_committed(server: CaptureServer) -> None:
    gated = _gate(server)
    with Dialog(server.host, server.port) as dialog:
        dialog.reply()
        dialog.command("EHLO app.local")
        dialog.command("MAIL FROM:<app@example.org>")
        dialog.command("RCPT TO:<bob@example.org>")
        assert dialog.command("DATA")[0] == 354
        dialog.send(MESSAGE + b".\r\n")
        assert gated.entered.wait(5)
        assert dialog.pending(0.5) == b""  # no reply while the commit is held
        gated.gate.set()
        code, _text = dialog.reply()
    assert code == 250
    assert len(server.messages()) == 1


def test_messages_arriving_during_a_commit_share_the_next_one(server: CaptureServer) -> None:
    gated = _gate(server)
    first = threading.Thread(target=send, args=(server, ["first@example.org"]))
    first.start()
    assert gated.entered.wait(5)
    others = [threading.Thread(target=send, args=(server, [f"u{i}@example.org"])) for i in range(4)]
    for thread in others:
        thread.start()
    time.sleep(1.0)  # the four are queued behind the held commit
    gated.gate.set()
    for thread in [first, *others]:
        thread.join(10)
    assert gated.batches == [1, 4]
    assert len(server.messages()) == 5


def test_a_message_that_cannot_be_stored_gets_451_not_250(server: CaptureServer) -> None:
    class Broken:
        engine = server._service.writer.store.engine  # type: ignore[union-attr]

        def insert_rows(self, rows: list[Row], **kwargs: Any) -> list[int]:
            raise OSError("disk full")

    server._service.writer.store = Broken()  # type: ignore[union-attr,assignment]
    with pytest.raises(smtplib.SMTPDataError) as caught:
        send(server, ["bob@example.org"])
    assert caught.value.smtp_code == 451
    assert b"could not store the message (OSError)" in caught.value.smtp_error


def test_old_messages_are_dropped_past_max_messages() -> None:
    with CaptureServer(settings={"capture.max_messages": "3"}) as server:
        for n in range(5):
            send(server, ["bob@example.org"], MESSAGE.replace(b"Password reset", f"n{n}".encode()))
        assert [m.subject for m in server.messages()] == ["n2", "n3", "n4"]


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
