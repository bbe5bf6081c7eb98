"""Postroom's own SMTP client and MIME writer against a real Postfix (DESIGN §3).

Messages are composed and sent as the worker sends them (``compose``, then the
transport that ``build_transport`` makes for mail.transport=smtp, ``send_many``) over
STARTTLS with AUTH to a private Postfix (see ``tests/support/postfix.py``). Postfix
delivers them into Maildirs; each delivered file is read back with the stdlib parser
and compared with what postroom was given: every header set, every part.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from email.utils import getaddresses
from pathlib import Path

import pytest
import trustme
from tests.support.postfix import PostfixServer, running_postfix

from postroom.diagnostics import TEST_SUBJECT, run_test_email
from postroom.errors import AuthenticationError
from postroom.message import Attachment, ComposedMessage, ComposePolicy, OutgoingMessage, compose
from postroom.settings import Home, Settings, load
from postroom.transport import build_transport
from postroom.transport.base import SendResult
from postroom.transport.smtp import SMTPTransport

DOMAIN = "example.org"
LOGIN = "robot@example.org"
PASSWORD = "pässwörd ✓ 42"  # UTF-8 on the wire, as RFC 4616 says
FROM = ("Pöstroom Bøt", "robot@example.org")
PREFIX = "[Postroom]"
NOW = datetime(2026, 12, 7, 9, 30, 15, tzinfo=UTC)
MAILBOXES = [
    f"{name}@{DOMAIN}" for name in ("ada", "josé", "bob", "carol", "dave", "erin", "frank", "grace")
]
# Headers Postfix adds on delivery; everything else in a delivered file is postroom's.
TRACE_HEADERS = {"return-path", "x-original-to", "delivered-to", "received"}

#: The full message: SMTPUTF8 (a UTF-8 local part), text + HTML, a 10 MB attachment.
BIG = random.Random(14).randbytes(10 * 1024 * 1024)
LONG_LINE = "Grüße aus Köln, " * 70  # 1,330 bytes (over the 998 a line may have), a space last
FULL_TEXT = (
    "Hallo Ada, hola José,\n"
    "\n"
    "the quarterly report is attached: Größe 10 MB, naïveté included, 日本語も.\n"
    f"{LONG_LINE}\n"
    ".\n"
    "From the desk of the robot:\tindented, and trailing spaces   \n"
    "— Pöstroom ✓\n"
)
FULL_HTML = "<p>Hallo <b>Ada</b>, hola <i>José</i>: Größe 10 MB ✓</p>\n<p>— Pöstroom</p>\n"
FULL = OutgoingMessage(
    to=("Ada Lovelace-Zoë <ada@example.org>", "José Núñez <josé@example.org>"),
    cc=('"Bob, the Builder" <bob@example.org>',),
    bcc=("carol@example.org",),
    reply_to=("Support Désk <support@example.org>",),
    subject="Quarterly report: Größe, naïveté & 日本語 — 10 MB attached ✓",
    text=FULL_TEXT,
    html=FULL_HTML,
    attachments=(Attachment("données brutes – 2026.bin", BIG, "application/octet-stream"),),
    type="report.ready",
    headers={"List-Id": "Quarterly reports <reports.example.org>", "X-Project": "Café ☕ Ärger"},
    thread_id="report/2026-Q4",
    message_id="<report-2026-q4.1@example.org>",
    automatic=True,
)

#: A message whose envelope is ASCII (no SMTPUTF8): encoded words only, a 7bit body
#: with lines SMTP must dot-stuff, and attachments with awkward file names.
PDF = b"%PDF-1.4\n" + random.Random(15).randbytes(40_000) + b"\n%%EOF\n"
NOTES = b"line 1\r\nline 2\nline 3 with a lone CR\rand no final line end"
LONG_NAME = (
    "Ein sehr langer Dateiname mit Umlauten äöü und noch mehr Text, "
    "damit er über mehrere Zeilen umbrochen wird – Teil 1.pdf"
)
PLAIN_TEXT = "Dear Dave,\n.\n..\n.hidden line starting with a dot\nFrom here on, plain ASCII.\n"
ASCII_ENVELOPE = OutgoingMessage(
    to=("Dörte Ünal <dave@example.org>", "erin@example.org"),
    subject="Ça marche: an ASCII envelope, encoded words",
    text=PLAIN_TEXT,
    attachments=(
        Attachment(LONG_NAME, PDF, "application/pdf"),
        Attachment("notes v2.txt", NOTES, "text/plain"),
    ),
    actor_name="Ärne Müller-Lüdenscheidt",
    message_id="<ascii-envelope.1@example.org>",
)


@dataclass(frozen=True)
class Sent:
    """What the worker's transport sent in one session, and what it saw."""

    full: ComposedMessage
    ascii_envelope: ComposedMessage
    results: list[SendResult]
    transcript: list[tuple[str, str]]


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postfix(tls_ca: trustme.CA) -> Iterator[PostfixServer]:
    certificate = tls_ca.issue_cert("127.0.0.1", "localhost")
    with running_postfix(
        certificate_chain=certificate.private_key_and_cert_chain_pem.bytes(),
        domain=DOMAIN,
        mailboxes=MAILBOXES,
        users={LOGIN: PASSWORD},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("home"))


def settings_for(postfix: PostfixServer, home: Home, ca_file: str, **more: str) -> Settings:
    """Settings as a deployment writes them (glossary keys), for this Postfix."""
    flags = {
        "mail.enabled": "true",
        "mail.transport": "smtp",
        "mail.host": postfix.host,
        "mail.port": str(postfix.port),
        "mail.security": "starttls",
        "mail.tls_ca_file": ca_file,
        "mail.username": LOGIN,
        "mail.password": PASSWORD,
        "mail.auth": "login",
        "mail.from": f"{FROM[0]} <{FROM[1]}>",
        "mail.subject_prefix": PREFIX,
        "mail.timeout": "20",
        **{f"mail.{key}": value for key, value in more.items()},
    }
    return load(home, flags=flags, environ={}, file_values={}).settings


def smtp_transport(
    settings: Settings, home: Home, transcript: list[tuple[str, str]]
) -> SMTPTransport:
    """The transport the worker builds for these settings, recording its session."""
    transport = build_transport(settings, home)
    assert isinstance(transport, SMTPTransport)
    transport.client.transcript = lambda direction, line: transcript.append((direction, line))
    return transport


@pytest.fixture(scope="module")
def sent(postfix: PostfixServer, home: Home, ca_file: str) -> Sent:
    """Both messages sent back to back on one connection, as the worker does, and
    delivered."""
    settings = settings_for(postfix, home, ca_file)
    policy = ComposePolicy.from_settings(settings.mail)
    full = compose(FULL, policy, now=NOW)
    ascii_envelope = compose(ASCII_ENVELOPE, policy, now=NOW)
    transcript: list[tuple[str, str]] = []
    with smtp_transport(settings, home, transcript) as transport:
        items = [(m.envelope, m.as_bytes()) for m in (full, ascii_envelope)]
        results = list(transport.send_many(items))
    recipients = [*full.envelope.recipients, *ascii_envelope.envelope.recipients]
    postfix.wait_for_delivery(*recipients)
    return Sent(full, ascii_envelope, results, transcript)


# -- helpers ------------------------------------------------------------------------------


def read(path: Path) -> EmailMessage:
    with path.open("rb") as file:
        message = BytesParser(policy=default).parse(file)
    assert isinstance(message, EmailMessage)
    return message


def only_copy(postfix: PostfixServer, address: str) -> Path:
    [path] = postfix.delivered(address)
    return path


def mailboxes(message: EmailMessage, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of header ``name`` as a reader shows them.

    Read from the header's text: for a raw UTF-8 (SMTPUTF8) address the stdlib's
    ``.addresses`` still holds undecoded bytes, while the text is decoded.
    """
    return getaddresses([str(message[name])])


def postroom_headers(message: EmailMessage) -> list[str]:
    return [name for name in message if name.lower() not in TRACE_HEADERS]


def client_lines(transcript: list[tuple[str, str]]) -> list[str]:
    return [line for direction, line in transcript if direction == "C"]


def received(message: EmailMessage) -> str:
    [header] = message.get_all("Received") or []
    return " ".join(str(header).split())


# -- the session --------------------------------------------------------------------------


def test_every_recipient_of_both_messages_is_accepted(sent: Sent) -> None:
    full, ascii_envelope = sent.results
    assert [(r.recipient, r.code) for r in full.recipients] == [
        (address, 250) for address in sent.full.envelope.recipients
    ]
    assert sent.full.envelope.recipients == tuple(
        f"{name}@{DOMAIN}" for name in ("ada", "josé", "bob", "carol")
    )
    assert sent.full.envelope.smtputf8 is True
    assert all(r.code == 250 and "queued as" in r.reply for r in full.recipients)
    assert [r.code for r in ascii_envelope.recipients] == [250, 250]
    assert sent.ascii_envelope.envelope.smtputf8 is False


def test_session_is_starttls_then_login_then_pipelined(sent: Sent) -> None:
    lines = client_lines(sent.transcript)
    starttls = lines.index("STARTTLS")
    auth = next(i for i, line in enumerate(lines) if line.startswith("AUTH"))
    assert lines[auth].startswith("AUTH LOGIN")
    assert starttls < auth
    everything = " ".join(line for _, line in sent.transcript)
    assert PASSWORD not in everything
    assert base64.b64encode(PASSWORD.encode()).decode() not in everything
    assert any(line.startswith("235") for direction, line in sent.transcript if direction == "S")
    # One write for MAIL, the four RCPTs and DATA: no reply read in between.
    mail = next(i for i, (d, line) in enumerate(sent.transcript) if line.startswith("MAIL FROM"))
    assert [direction for direction, _ in sent.transcript[mail : mail + 6]] == ["C"] * 6
    group = [line for _, line in sent.transcript[mail : mail + 6]]
    assert group[0].startswith(f"MAIL FROM:<{LOGIN}> SIZE=")
    assert "SMTPUTF8" in group[0]
    assert "BODY=8BITMIME" in group[0]
    assert [line.split(":")[0] for line in group[1:5]] == ["RCPT TO"] * 4
    assert group[5] == "DATA"
    # The second message's commands went out with the first one's data (RFC 2920).
    data_end = next(i for i, (d, line) in enumerate(sent.transcript) if line == "." and d == "C")
    assert sent.transcript[data_end + 1][1].startswith(f"MAIL FROM:<{LOGIN}>")
    assert "SMTPUTF8" not in sent.transcript[data_end + 1][1]


# -- what Postfix delivered ---------------------------------------------------------------


@pytest.mark.parametrize("address", ["ada", "josé", "bob", "carol", "dave", "erin"])
def test_postfix_delivers_exactly_the_bytes_postroom_wrote(
    sent: Sent, postfix: PostfixServer, address: str
) -> None:
    """Nothing needed fixing on the way: no header rewritten, no line split, no 8-bit
    conversion; Postfix only put its trace headers on top (Maildir lines end in LF)."""
    message = sent.full if address in ("ada", "josé", "bob", "carol") else sent.ascii_envelope
    data = only_copy(postfix, f"{address}@{DOMAIN}").read_bytes()
    written = message.raw.replace(b"\r\n", b"\n")
    assert data.endswith(written)
    on_top = BytesParser(policy=default).parsebytes(data[: -len(written)] + b"\n")
    assert {name.lower() for name in on_top} == TRACE_HEADERS
    assert on_top["Return-Path"] == f"<{LOGIN}>"
    assert on_top["Delivered-To"] == f"{address}@{DOMAIN}"


@pytest.mark.parametrize("address", ["ada", "josé", "bob", "carol"])
def test_full_message_headers_read_back_as_given(
    sent: Sent, postfix: PostfixServer, address: str
) -> None:
    message = read(only_copy(postfix, f"{address}@{DOMAIN}"))

    assert postroom_headers(message) == [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Auto-Submitted",
        "X-Postroom-Notification-Type",
        "References",
        "In-Reply-To",
        "List-Id",
        "X-Project",
        "Content-Type",
    ]
    assert mailboxes(message, "From") == [FROM]
    assert mailboxes(message, "To") == [
        ("Ada Lovelace-Zoë", "ada@example.org"),
        ("José Núñez", "josé@example.org"),
    ]
    assert mailboxes(message, "Cc") == [("Bob, the Builder", "bob@example.org")]
    assert mailboxes(message, "Reply-To") == [("Support Désk", "support@example.org")]
    assert message["Subject"] == f"{PREFIX} {FULL.subject}"
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == FULL.message_id
    assert message["MIME-Version"] == "1.0"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Postroom-Notification-Type"] == "report.ready"
    assert message["References"] == message["In-Reply-To"] == "<report/2026-Q4@example.org>"
    assert message["List-Id"] == FULL.headers["List-Id"]
    assert message["X-Project"] == FULL.headers["X-Project"]
    # Bcc: carol got it, and nobody (carol included) can see that she did.
    assert "Bcc" not in message
    assert "carol" not in "".join(str(message[name]) for name in postroom_headers(message))


@pytest.mark.parametrize("address", ["ada", "josé", "bob", "carol"])
def test_full_message_parts_read_back_as_given(
    sent: Sent, postfix: PostfixServer, address: str
) -> None:
    message = read(only_copy(postfix, f"{address}@{DOMAIN}"))

    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = alternative.iter_parts()
    for part, subtype, given in ((text, "plain", FULL_TEXT), (html, "html", FULL_HTML)):
        assert part.get_content_type() == f"text/{subtype}"
        assert part.get_content_charset() == "utf-8"
        assert part.get_content_disposition() is None  # shown inline, not as a file
        assert part.get_content() == given
        assert part.get_payload(decode=True) == given.encode("utf-8")
    # What a reader shows is the plain text as given, line by line, the long one whole.
    assert LONG_LINE in text.get_content().splitlines()
    assert message.get_body(preferencelist=("html", "plain")) is html

    assert attachment.get_content_type() == "application/octet-stream"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "données brutes – 2026.bin"
    assert attachment.get_payload(decode=True) == BIG
    assert [a.get_filename() for a in message.iter_attachments()] == ["données brutes – 2026.bin"]


def test_utf8_mailbox_gets_it_over_smtputf8(sent: Sent, postfix: PostfixServer) -> None:
    josé = read(only_copy(postfix, "josé@example.org"))
    assert josé["Delivered-To"] == "josé@example.org"
    trace = received(josé)
    assert "with UTF8SMTPSA" in trace  # RFC 6531 + TLS + AUTH, as Postfix saw it
    assert "using TLSv1." in trace
    assert f"(Authenticated sender: {LOGIN})" in trace
    # The UTF-8 address is raw UTF-8 in the header, as SMTPUTF8 allows; names stay
    # encoded words (any reader decodes those).
    raw = only_copy(postfix, "josé@example.org").read_bytes()
    assert "<josé@example.org>".encode() in raw
    assert "Núñez".encode() not in raw


@pytest.mark.parametrize("address", ["dave", "erin"])
def test_ascii_envelope_message_reads_back_as_given(
    sent: Sent, postfix: PostfixServer, address: str
) -> None:
    path = only_copy(postfix, f"{address}@{DOMAIN}")
    message = read(path)

    assert path.read_bytes().isascii()  # no SMTPUTF8: every header is 7-bit
    assert "with ESMTPSA" in received(message)
    assert postroom_headers(message) == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "X-Postroom-Notification-Type",
        "Content-Type",
    ]
    # Mail caused by a user: their name, mail.from's address (Kallithea's rule).
    assert mailboxes(message, "From") == [("Ärne Müller-Lüdenscheidt (no-reply)", FROM[1])]
    assert mailboxes(message, "To") == [
        ("Dörte Ünal", "dave@example.org"),
        ("", "erin@example.org"),
    ]
    assert message["Subject"] == f"{PREFIX} {ASCII_ENVELOPE.subject}"
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == ASCII_ENVELOPE.message_id
    assert message["X-Postroom-Notification-Type"] == "message"

    text, pdf, notes = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content_charset() == "utf-8"
    assert text["Content-Transfer-Encoding"] == "7bit"
    assert text.get_content() == PLAIN_TEXT  # the lone dot and ".." survived SMTP
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == LONG_NAME  # RFC 2231, continued over several lines
    assert pdf.get_payload(decode=True) == PDF
    assert notes.get_content_type() == "text/plain"
    assert notes.get_filename() == "notes v2.txt"
    assert notes.get_payload(decode=True) == NOTES  # line ends as given, byte for byte


# -- logins and the test message ----------------------------------------------------------


def test_plain_login_delivers(postfix: PostfixServer, home: Home, ca_file: str) -> None:
    settings = settings_for(postfix, home, ca_file, auth="plain")
    message = compose(
        OutgoingMessage(to=("frank@example.org",), subject="über PLAIN", text="Grüße\n"),
        ComposePolicy.from_settings(settings.mail),
    )
    transcript: list[tuple[str, str]] = []
    with smtp_transport(settings, home, transcript) as transport:
        result = transport.send(message.envelope, message.as_bytes())

    assert [r.code for r in result.recipients] == [250]
    assert any(line.startswith("AUTH PLAIN") for line in client_lines(transcript))
    postfix.wait_for_delivery("frank@example.org")
    delivered = read(only_copy(postfix, "frank@example.org"))
    assert delivered["Subject"] == f"{PREFIX} über PLAIN"
    assert delivered.get_content() == "Grüße\n"
    assert f"(Authenticated sender: {LOGIN})" in received(delivered)


def test_a_wrong_password_is_a_login_failure(
    postfix: PostfixServer, home: Home, ca_file: str
) -> None:
    settings = settings_for(postfix, home, ca_file, password="not the password")
    transport = build_transport(settings, home)
    with pytest.raises(AuthenticationError) as failure:
        transport.open()
    transport.close()
    assert failure.value.code == 535
    assert "mail.password" in str(failure.value) or "mail.username" in str(failure.value)


def test_test_email_is_delivered_as_composed(
    postfix: PostfixServer, home: Home, ca_file: str
) -> None:
    settings = settings_for(postfix, home, ca_file)
    report = run_test_email(settings, "grace@example.org", home=home)

    assert report.ok, report.to_json()
    assert [step.name for step in report.steps] == [
        "resolve",
        "connect",
        "greeting",
        "ehlo",
        "tls",
        "login",
        "mail",
        "rcpt",
        "data",
    ]
    postfix.wait_for_delivery("grace@example.org")
    message = read(only_copy(postfix, "grace@example.org"))
    assert message["Subject"] == TEST_SUBJECT  # no mail.subject_prefix on the test
    assert mailboxes(message, "From") == [FROM]
    assert mailboxes(message, "To") == [("", "grace@example.org")]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Postroom-Notification-Type"] == "test_email"
    assert message["Date"]
    assert re.fullmatch(r"<[^<>@]+@example\.org>", message["Message-ID"])
    assert "postroom test-email" in message.get_content()
    assert "with ESMTPSA" in received(message)
