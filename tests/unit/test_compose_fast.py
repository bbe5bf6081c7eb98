"""compose() writes the MIME bytes itself: a stdlib reader gets back what was asked for."""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import postroom.addresses
from postroom.addresses import parse_address
from postroom.errors import HeaderError
from postroom.headers import format_date
from postroom.message import (
    Attachment,
    ComposedMessage,
    ComposePolicy,
    OutgoingMessage,
    compose,
    mime,
    safe_filename,
)

POLICY = ComposePolicy(from_="Postroom <postroom@example.org>", subject_prefix="[pr]")


def message(**fields: object) -> OutgoingMessage:
    values: dict[str, object] = {"to": ("jane@example.org",), "subject": "Hi", "text": "Hello"}
    values.update(fields)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def received(composed: ComposedMessage) -> EmailMessage:
    raw = composed.as_bytes()
    if composed.envelope.smtputf8:  # UTF-8 headers: read as text, as the server hands on
        parsed = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    else:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def sent_text(text: str) -> str:
    """What a reader should get for body ``text``: LF line ends, one at the end."""
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    return normal if normal.endswith("\n") else normal + "\n"


def same_name(parsed: str, given: str) -> bool:
    """Printable ASCII names come back exactly; encoded ones modulo whitespace (Python
    3.11's reader keeps the space between encoded words and strips the ends)."""
    if given.isascii() and given.isprintable() and "=?" not in given:
        return parsed == given
    return "".join(parsed.split()) == "".join(given.split())


# -- strategies -------------------------------------------------------------------------

# Header text: anything but the control and line-separator characters the guard refuses,
# without "=?" (a pre-encoded word is refused, see test_header_safety.py).
HEADER_CHARS = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
HEADER_TEXT = st.one_of(
    st.text(HEADER_CHARS, max_size=30),
    st.sampled_from(
        ["", "Jane Doe", "Doe, Jane", "Jörg Müller", 'Say "hi"', "李小龍", "x" * 90, "a  b"]
    ),
    st.text(HEADER_CHARS, min_size=70, max_size=200),
).filter(lambda text: "=?" not in text)
# (as given, as sent): IDN domains become punycode.
ADDRESSES = [
    ("jane@example.org", "jane@example.org"),
    ("bob.smith+tag@example.org", "bob.smith+tag@example.org"),
    ("x@bücher.example", "x@xn--bcher-kva.example"),
    ("carol@EXAMPLE.org", "carol@example.org"),
    ("ü@example.org", "ü@example.org"),
]
BODY_PIECES = st.sampled_from(
    [
        *(".", "..", ".\n", "\n.\n", "From ", "\nFrom me\n", ">From ", "x" * 998, "y" * 999),
        *("\r", "\n", "\r\n", "\n\n", " ", "\t", " \n", "\t\n", "=", "=\n", "=?utf-8?q?x?="),
        *("--", "--=_", "=_", "ä", "€", "🎉", "\u3000", "\u2028", "\x85", "\x0c", "\x00", "\x1b"),
        *("\x7f", "<p>", "&amp;", "x" * 80),
    ]
)
BODY = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(BODY_PIECES, st.text(max_size=5)), max_size=12).map("".join),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/octet-stream",
        "application/pdf",
        "text/plain",
        "Text/CSV",
        "image/png",
        "message/rfc822",
        "multipart/mixed",
    ]
)
FILE_NAMES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["report.pdf", "../../etc/passwd", "Grüße résumé.txt", "a b;c=d.txt"]),
    st.text(HEADER_CHARS, min_size=100, max_size=260),
).filter(lambda text: "=?" not in text)


@st.composite
def mailboxes(draw: st.DrawFn, count: int) -> list[tuple[str, str, str]]:
    """(text to give, display name, addr-spec as sent) triples with distinct addresses."""
    picked = draw(st.lists(st.sampled_from(ADDRESSES), max_size=count, unique=True))
    found = []
    for text, expected in picked:
        # A display name may not hold an @ (it would read as another address).
        name = draw(HEADER_TEXT).replace("@", "")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        found.append((f'"{quoted}" <{text}>' if name else text, name, expected))
    return found


@dataclass
class Asked:
    outgoing: OutgoingMessage
    to: list[tuple[str, str, str]]
    cc: list[tuple[str, str, str]]


@st.composite
def asked(draw: st.DrawFn) -> Asked:
    to = draw(mailboxes(3))
    cc = draw(mailboxes(2))
    bcc = ("hidden@example.net",) if draw(st.booleans()) or not (to or cc) else ()
    attachments = draw(
        st.lists(
            st.builds(Attachment, FILE_NAMES, st.binary(max_size=300), CONTENT_TYPES),
            max_size=3,
        )
    )
    outgoing = OutgoingMessage(
        to=tuple(text for text, _, _ in to),
        cc=tuple(text for text, _, _ in cc),
        bcc=bcc,
        subject=draw(HEADER_TEXT),
        text=draw(BODY),
        html=draw(st.none() | BODY),
        attachments=tuple(attachments),
        type=draw(st.sampled_from(["message", "pr_comment", "Grüße"])),
        headers=draw(st.dictionaries(st.sampled_from(["X-Ticket", "X-Note"]), HEADER_TEXT)),
        actor_name=draw(st.none() | HEADER_TEXT),
        automatic=draw(st.booleans()),
        thread_id=draw(st.none() | st.sampled_from(["pull-request/42", "a b:c", "t" * 300])),
    )
    return Asked(outgoing, to, cc)


# -- the round trip ---------------------------------------------------------------------


def expected_header_names(outgoing: OutgoingMessage) -> list[str]:
    names = ["from"]
    names += ["to"] if outgoing.to else []
    names += ["cc"] if outgoing.cc else []
    names += ["subject", "date", "message-id", "mime-version"]
    names += ["auto-submitted"] if outgoing.automatic else []
    names += ["x-postroom-notification-type"]
    names += ["references", "in-reply-to"] if outgoing.thread_id else []
    names += [name.lower() for name in outgoing.headers]
    if outgoing.html is None and not outgoing.attachments:
        return [*names, "content-type", "content-transfer-encoding"]
    return [*names, "content-type"]


def check_mailboxes(parsed: EmailMessage, field: str, given: list[tuple[str, str, str]]) -> None:
    if not given:
        return
    addresses = parsed[field].addresses
    assert [a.addr_spec for a in addresses] == [spec for _, _, spec in given]
    for address, (_, name, _) in zip(addresses, given, strict=True):
        assert same_name(address.display_name, name), (address.display_name, name)


@settings(max_examples=400, deadline=None)
@given(case=asked())
def test_any_message_reads_back_as_asked(case: Asked) -> None:
    outgoing = case.outgoing
    composed = compose(outgoing, POLICY)
    raw = composed.as_bytes()
    parsed = received(composed)

    # Transport form: CRLF only, no line over 998, 7-bit unless SMTPUTF8, no Bcc.
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert composed.envelope.smtputf8 or max(raw) < 128
    assert max(raw.partition(b"\r\n\r\n")[2], default=0) < 128  # bodies always 7-bit
    assert b"hidden" not in raw

    # Headers: names in order, and values as given.
    assert [name.lower() for name in parsed] == expected_header_names(outgoing)
    subject = " ".join(p for p in ("[pr]", outgoing.subject.strip()) if p)
    assert parsed["Subject"] == subject == composed.subject
    (sender,) = parsed["From"].addresses
    assert sender.addr_spec == "postroom@example.org"
    actor = (outgoing.actor_name or "").strip()
    assert same_name(sender.display_name, f"{actor} (no-reply)" if actor else "Postroom")
    assert same_name(str(parsed["From"]), composed.from_header)
    check_mailboxes(parsed, "To", case.to)
    check_mailboxes(parsed, "Cc", case.cc)
    assert parsed["X-Postroom-Notification-Type"] == outgoing.type
    assert parsed["Message-ID"] == composed.message_id
    assert parsed["MIME-Version"] == "1.0"
    for name, value in outgoing.headers.items():
        assert parsed[name] == value

    # Bodies: the same text, modulo line ends.
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n") == sent_text(outgoing.text)
    html = parsed.get_body(("html",))
    if outgoing.html is None:
        assert html is None
    else:
        assert html is not None
        assert html.get_content().replace("\r\n", "\n") == sent_text(outgoing.html)

    # Attachments: safe name, type, the very bytes.
    got = list(parsed.iter_attachments())
    assert len(got) == len(outgoing.attachments)
    for part, attachment in zip(got, outgoing.attachments, strict=True):
        assert part.get_filename() == safe_filename(attachment.filename)
        container = attachment.maintype in ("multipart", "message")
        expected_type = "application/octet-stream" if container else attachment.content_type
        assert part.get_content_type() == expected_type.lower()
        assert part.get_payload(decode=True) == attachment.content


# -- structure and encodings ------------------------------------------------------------


def test_ascii_text_with_lines_up_to_998_bytes_is_sent_7bit() -> None:
    raw = compose(message(text="." + "x" * 997 + "\nFrom here\n"), POLICY).as_bytes()
    assert b"Content-Transfer-Encoding: 7bit" in raw
    assert b"\r\n." + b"x" * 997 + b"\r\nFrom here\r\n" in raw


@pytest.mark.parametrize(
    "text", ["x" * 999, "Grüße", "bell \x07", "nul \x00", "line\u2028separator"]
)
def test_long_lines_non_ascii_and_controls_are_quoted_printable(text: str) -> None:
    composed = compose(message(text=text), POLICY)
    raw = composed.as_bytes()
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    assert max(raw) < 128
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    body = received(composed).get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == text + "\n"


def test_empty_text_is_one_empty_line() -> None:
    raw = compose(message(text=""), POLICY).as_bytes()
    assert raw.endswith(b"7bit\r\n\r\n\r\n")


def test_boundary_found_in_a_part_is_replaced() -> None:
    made = iter(["=_clash", "=_fresh"])
    outgoing = message(text="before\n--=_clash\nafter", html="<p>x</p>")
    part = mime.body(outgoing, boundary=lambda: next(made))
    assert part.headers == (("Content-Type", 'multipart/alternative; boundary="=_fresh"'),)
    assert part.body.count(b"--=_fresh") == 3


def test_random_boundaries_differ_between_nested_multiparts() -> None:
    outgoing = message(html="<p>x</p>", attachments=(Attachment("a.bin", b"x"),))
    raw = compose(outgoing, POLICY).as_bytes()
    boundaries = re.findall(rb'boundary="([^"]+)"', raw)
    assert len(set(boundaries)) == 2
    assert all(b.startswith(b"=_") for b in boundaries)


def test_non_ascii_file_name_uses_rfc2231_continuations_on_short_lines() -> None:
    name = "Grüße " * 30 + ".pdf"
    composed = compose(message(attachments=(Attachment(name, b"%PDF"),)), POLICY)
    raw = composed.as_bytes()
    assert b"filename*0*=utf-8''Gr%C3%BC%C3%9Fe" in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    (part,) = received(composed).iter_attachments()
    assert part.get_filename() == safe_filename(name)


def test_attachment_is_base64_in_76_character_lines() -> None:
    content = bytes(range(256)) * 10
    raw = compose(message(attachments=(Attachment("a.bin", content),)), POLICY).as_bytes()
    encoded = raw.split(b"Content-Disposition: attachment;", 1)[1].split(b"\r\n\r\n", 1)[1]
    lines = encoded.split(b"\r\n\r\n--")[0].split(b"\r\n")
    assert all(len(line) == 76 for line in lines[:-1])
    assert 0 < len(lines[-1]) <= 76


# -- headers ----------------------------------------------------------------------------


def offsets() -> st.SearchStrategy[timezone]:
    return st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=200, deadline=None)
@given(now=st.datetimes(timezones=st.just(UTC) | offsets()))
def test_date_is_written_as_format_datetime_writes_it(now: datetime) -> None:
    raw = compose(message(), POLICY, now=now).as_bytes()
    assert f"\r\nDate: {format_datetime(now)}\r\n".encode() in raw


@settings(max_examples=200, deadline=None)
@given(when=st.datetimes(timezones=st.none() | st.just(UTC) | offsets()))
def test_format_date_writes_what_the_stdlib_writes(when: datetime) -> None:
    assert format_date(when) == format_datetime(when)


def test_quoted_display_name_that_escaping_makes_too_long_is_encoded_instead() -> None:
    name = '"' * 600
    quoted = name.replace('"', '\\"')
    composed = compose(message(to=(f'"{quoted}" <jane@example.org>',)), POLICY)
    assert max(len(line) for line in composed.as_bytes().split(b"\r\n")) <= 998
    (address,) = received(composed)["To"].addresses
    # Python 3.11's reader keeps the space between encoded words; RFC 2047 drops it.
    assert address.display_name.replace(" ", "") == name


def test_header_with_a_bare_line_break_from_the_encoder_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Defence in depth: even an encoder fault cannot add a header line.
    compose_module = __import__("postroom.message.compose", fromlist=["encode_text"])
    monkeypatch.setattr(compose_module, "encode_text", lambda name, text: "x\nBcc: evil@x.org")
    with pytest.raises(HeaderError, match="other headers than were set"):
        compose(message(), POLICY)


# -- the composed value -----------------------------------------------------------------


def test_subject_and_from_are_given_as_text_as_a_reader_shows_them() -> None:
    for actor in (None, "Jane Doe", "Doe, Jane", "Jörg Müller", 'Say "hi"'):
        composed = compose(message(subject="Grüße  aus Köln", actor_name=actor), POLICY)
        assert composed.subject == "[pr] Grüße  aus Köln" == received(composed)["Subject"]
        assert composed.from_header == str(received(composed)["From"])


def test_message_is_parsed_from_the_bytes_once_on_first_use() -> None:
    composed = compose(message(to=("ü@example.org",), html="<p>x</p>"), POLICY)
    assert "message" not in vars(composed)
    parsed = composed.message
    assert parsed is composed.message
    assert parsed["To"].addresses[0].addr_spec == "ü@example.org"
    assert parsed.get_content_type() == "multipart/alternative"


def test_composed_message_is_a_value() -> None:
    composed = compose(message(), POLICY, now=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(AttributeError):
        composed.raw = b""  # type: ignore[misc]
    assert "raw" not in repr(composed)


# -- address cache ----------------------------------------------------------------------


def test_parsed_address_is_memoised() -> None:
    assert parse_address("Memo <memo@example.org>") is parse_address("Memo <memo@example.org>")


def test_refused_address_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(HeaderError):
            parse_address("a@example.org\r\nBcc: x@evil.example")


def test_each_address_is_validated_once_across_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    validate = postroom.addresses.validate_email
    seen: list[str] = []

    def counting(spec: str, **options: object) -> object:
        seen.append(spec)
        return validate(spec, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(postroom.addresses, "validate_email", counting)
    unique = next(_counter)
    # IDN domains: plain ASCII addresses take a fast path that needs no email-validator.
    policy = ComposePolicy(from_=f"once-{unique}@bücher.de", envelope_from=f"b-{unique}@bücher.de")
    for _ in range(3):
        compose(message(to=(f"r-{unique}@bücher.de",)), policy)
    assert sorted(seen) == sorted(
        [f"once-{unique}@bücher.de", f"b-{unique}@bücher.de", f"r-{unique}@bücher.de"]
    )


_counter: Iterator[int] = itertools.count()
