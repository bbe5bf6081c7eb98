"""Safety of the capture server, on raw sockets: SMTP smuggling, bare CR/LF, plaintext
pipelined after STARTTLS, and every limit."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from tests.support.smtp_dialog import Dialog

from postroom.testing import CaptureServer

SMUGGLED = (
    b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
    b"From: admin@bank.example\r\nSubject: smuggled\r\n\r\nsend money\r\n"
)


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as started:
        yield started


def greeted(server: CaptureServer) -> Dialog:
    dialog = Dialog(server.host, server.port)
    assert dialog.reply()[0] == 220
    assert dialog.command("EHLO client.example")[0] == 250
    return dialog


@pytest.mark.parametrize(
    "fake_end", [b"\n.\n", b"\n.\r\n", b"\r.\r"], ids=["LF.LF", "LF.CRLF", "CR.CR"]
)
def test_smuggled_end_of_data_never_makes_a_second_message(
    server: CaptureServer, fake_end: bytes
) -> None:
    with greeted(server) as dialog:
        dialog.command("MAIL FROM:<app@example.org>")
        dialog.command("RCPT TO:<bob@example.org>")
        assert dialog.command("DATA")[0] == 354
        dialog.send(b"Subject: real\r\n\r\nhello" + fake_end + SMUGGLED + b"\r\n.\r\n")
        code, _ = dialog.reply()
        assert code == 250
        assert dialog.pending(0.3) == b""  # not one reply to the smuggled commands
        assert dialog.command("QUIT")[0] == 221
    (kept,) = server.messages()
    assert kept.rcpt_tos == ("bob@example.org",)
    assert SMUGGLED.rstrip(b"\r\n") in kept.raw  # the smuggled text is data, not commands


@pytest.mark.parametrize(
    ("line", "what"),
    [
        (b"MAIL FROM:<app@example.org>\n", "bare LF"),
        (b"NOOP\rMAIL FROM:<app@example.org>\r\n", "bare CR"),
    ],
)
def test_bare_cr_or_lf_in_a_command_is_refused_and_not_executed(
    server: CaptureServer, line: bytes, what: str
) -> None:
    with greeted(server) as dialog:
        dialog.send(line)
        code, text = dialog.reply()
        assert (code, "bare CR or LF" in text) == (500, True), what
        # MAIL FROM was not executed: RCPT still needs it.
        assert dialog.command("RCPT TO:<bob@example.org>")[0] == 503


def test_plaintext_pipelined_after_starttls_is_discarded(
    tls_ca: trustme.CA, tmp_path: Path
) -> None:
    cert = tls_ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    settings = {
        "capture.tls_cert": str(tmp_path / "both.pem"),
        "capture.tls_key": str(tmp_path / "both.pem"),
    }
    client_context = ssl.create_default_context()
    tls_ca.configure_trust(client_context)
    with CaptureServer(settings=settings) as server, greeted(server) as dialog:
        dialog.send(b"STARTTLS\r\nNOOP\r\n")  # one write: the NOOP is injected plaintext
        assert dialog.reply()[0] == 220
        assert dialog.pending(0.3) == b""  # NOOP not answered before TLS either
        dialog.starttls(client_context)
        code, text = dialog.command("EHLO client.example")
        assert code == 250
        assert "PIPELINING" in text  # the EHLO reply, not a "250 OK" to the NOOP
        assert dialog.pending(0.3) == b""


# -- limits ------------------------------------------------------------------------------


def test_size_is_announced_and_enforced_with_552() -> None:
    with CaptureServer(settings={"capture.max_size": "1000"}) as server, greeted(server) as d:
        assert d.command("EHLO client.example")[1].count("SIZE 1000") == 1
        assert d.command("MAIL FROM:<app@example.org> SIZE=5000")[0] == 552
        assert d.command("MAIL FROM:<app@example.org>")[0] == 250
        d.command("RCPT TO:<bob@example.org>")
        assert d.command("DATA")[0] == 354
        d.send(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 1 + (b"y" * 70 + b"\r\n") * 30)
        d.send(b".\r\n")
        assert d.reply()[0] == 552
        assert server.messages() == []


def test_recipients_past_the_limit_get_452() -> None:
    with CaptureServer(settings={"capture.max_recipients": "2"}) as server, greeted(server) as d:
        d.command("MAIL FROM:<app@example.org>")
        assert [d.command(f"RCPT TO:<u{i}@example.org>")[0] for i in range(3)] == [250, 250, 452]
        assert d.command("DATA")[0] == 354
        d.send(b"Subject: two\r\n\r\nhi\r\n.\r\n")
        assert d.reply()[0] == 250
        assert server.messages()[0].rcpt_tos == ("u0@example.org", "u1@example.org")


@pytest.mark.parametrize("length", [600, 5000])
def test_command_lines_over_the_limit_get_500(server: CaptureServer, length: int) -> None:
    with greeted(server) as dialog:
        code, text = dialog.command(b"NOOP " + b"x" * length)
        assert (code, text) == (500, "Command line too long")
        assert dialog.command("NOOP")[0] == 250  # the session goes on


def test_one_session_past_the_limit_gets_421_and_is_closed() -> None:
    with CaptureServer(settings={"capture.max_sessions": "2"}) as server:
        first, second = greeted(server), greeted(server)
        with Dialog(server.host, server.port) as third:
            code, text = third.reply()
            assert (code, "Too many connections" in text) == (421, True)
            assert third.is_closed(5)
        first.command("QUIT")
        first.close()
        deadline = time.monotonic() + 5
        while True:  # the freed slot is taken again
            with Dialog(server.host, server.port) as fourth:
                if fourth.reply()[0] == 220:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second.close()


def test_idle_sessions_are_closed_but_a_slow_upload_is_not_idle() -> None:
    with CaptureServer(settings={"capture.idle_timeout": "0.5"}) as server:
        with greeted(server) as idle:
            assert idle.is_closed(5)
        with greeted(server) as slow:
            slow.command("MAIL FROM:<app@example.org>")
            slow.command("RCPT TO:<bob@example.org>")
            slow.command("DATA")
            slow.send(b"Subject: slow\r\n\r\n")
            for _ in range(6):  # 1.2 s of upload, a line every 0.2 s
                time.sleep(0.2)
                slow.send(b"still typing\r\n")
            slow.send(b".\r\n")
            assert slow.reply()[0] == 250
