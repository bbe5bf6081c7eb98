"""No CR, LF, NUL or encoded line break reaches a header or the envelope, by any path."""

from __future__ import annotations

import base64
import email
import email.policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.errors import AddressError, HeaderError, MessageError
from postroom.headers import check_header_text, check_header_value
from postroom.message import Attachment, ComposePolicy, OutgoingMessage, compose, safe_filename

POLICY = ComposePolicy(from_="Postroom <postroom@example.org>", subject_prefix="[pr]")

INJECTIONS = [
    pytest.param("hi\r\nBcc: x@evil.example", id="CRLF"),
    pytest.param("hi\nBcc: x@evil.example", id="LF"),
    pytest.param("hi\rBcc: x@evil.example", id="CR"),
    pytest.param("hi\x00there", id="NUL"),
    pytest.param("hi\u2028Bcc: x@evil.example", id="U+2028"),
    pytest.param("hi\u0085Bcc: x@evil.example", id="U+0085"),
    pytest.param("hi\x0bthere", id="vertical-tab"),
    pytest.param("=?utf-8?q?a=0ABcc:_x@evil.example?=", id="q-encoded-LF"),
    pytest.param("=?utf-8?q?a b=0ABcc:_x@evil.example?=", id="q-encoded-LF-with-space"),
    pytest.param("=?UTF-8?Q?a=0D=0ABcc:_x@evil.example?=", id="q-encoded-CRLF"),
    pytest.param(
        "=?utf-8?b?" + base64.b64encode(b"a\nBcc: x@evil.example").decode() + "?=",
        id="b-encoded-LF",
    ),
    pytest.param("=?utf-8?b?YQpCY2M6IHg?=", id="b-encoded-LF-missing-padding"),
    pytest.param("=?utf-8?q?a=E2=80=A8b?=", id="q-encoded-U+2028"),
    pytest.param("=?utf-8?q?a=00b?=", id="q-encoded-NUL"),
    pytest.param("=?utf-8*en?q?a=0Ab?=", id="encoded-LF-with-language"),
    pytest.param("ok =?utf-8?q?a=0Ab?= ok", id="encoded-LF-mid-text"),
]


def message(**fields: object) -> OutgoingMessage:
    values: dict[str, object] = {"to": ("jane@example.org",), "subject": "Hi", "text": "Hello"}
    values.update(fields)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("value", INJECTIONS)
def test_subject_with_line_break_or_encoded_line_break_is_refused(value: str) -> None:
    with pytest.raises(HeaderError, match="Subject"):
        compose(message(subject=value), POLICY)


@pytest.mark.parametrize("value", INJECTIONS)
def test_display_name_with_line_break_is_refused(value: str) -> None:
    with pytest.raises(HeaderError, match="To"):
        compose(message(to=(f'"{value}" <jane@example.org>',)), POLICY)


@pytest.mark.parametrize("value", INJECTIONS)
def test_actor_name_with_line_break_is_refused(value: str) -> None:
    with pytest.raises(HeaderError, match="From"):
        compose(message(actor_name=value), POLICY)


@pytest.mark.parametrize("value", INJECTIONS)
def test_extra_header_value_with_line_break_is_refused(value: str) -> None:
    with pytest.raises(HeaderError, match="X-Ticket"):
        compose(message(headers={"X-Ticket": value}), POLICY)


@pytest.mark.parametrize("value", INJECTIONS)
def test_type_with_line_break_is_refused(value: str) -> None:
    with pytest.raises(HeaderError, match="X-Postroom-Notification-Type"):
        compose(message(type=value), POLICY)


@pytest.mark.parametrize("value", INJECTIONS)
def test_thread_id_with_line_break_is_refused(value: str) -> None:
    with pytest.raises(HeaderError, match="References"):
        compose(message(thread_id=value), POLICY)


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
@pytest.mark.parametrize(
    "address",
    ["jane@example.org\r\nBcc: x@evil.example", "jane@example.org\n", "ja\x00ne@example.org"],
)
def test_address_with_line_break_is_refused(field: str, address: str) -> None:
    with pytest.raises(HeaderError):
        compose(message(**{field: (address,)}), POLICY)


def test_address_with_encoded_line_break_in_local_part_is_refused() -> None:
    # "=" and "?" are legal in a local part, so this passes an address validator.
    with pytest.raises(HeaderError, match="encoded LF"):
        compose(message(to=("=?utf-8?q?a=0ABcc:x?=@example.org",)), POLICY)


@pytest.mark.parametrize("field", ["from_", "envelope_from", "redirect_to"])
def test_configured_address_with_line_break_is_refused(field: str) -> None:
    policy = ComposePolicy(
        **{"from_": "postroom@example.org", field: "postroom@example.org\r\nBcc: x@evil.example"}
    )
    with pytest.raises(HeaderError):
        compose(message(), policy)


def test_subject_prefix_with_encoded_line_break_is_refused() -> None:
    policy = ComposePolicy(from_="postroom@example.org", subject_prefix="=?utf-8?q?=0A?=")
    with pytest.raises(HeaderError, match="Subject"):
        compose(message(), policy)


def test_prefix_and_subject_that_form_an_encoded_word_together_are_refused() -> None:
    policy = ComposePolicy(from_="postroom@example.org", subject_prefix="=?utf-8?q?a")
    with pytest.raises(HeaderError, match="encoded"):
        compose(message(subject="b=0Ac?="), policy)


def test_file_name_with_encoded_line_break_is_refused() -> None:
    attachment = Attachment("=?utf-8?q?a=0AX-Evil:_1?=.txt", b"x")
    with pytest.raises(HeaderError, match="filename"):
        compose(message(attachments=(attachment,)), POLICY)


def test_file_name_with_raw_line_break_loses_it_and_adds_no_header() -> None:
    attachment = Attachment("report\r\nX-Evil: 1\r\n.txt", b"x")
    raw = compose(message(attachments=(attachment,)), POLICY).as_bytes()
    part = next(parse(raw).iter_attachments())
    assert part.get_filename() == "reportX-Evil: 1.txt"
    assert "X-Evil" not in part


@pytest.mark.parametrize("name", ["X-Bad\r\nBcc", "X-Bad Name", "X-Bad:", ""])
def test_malformed_extra_header_name_is_refused(name: str) -> None:
    with pytest.raises(HeaderError):
        compose(message(headers={name: "1"}), POLICY)


def test_message_id_with_line_break_is_refused() -> None:
    with pytest.raises(HeaderError, match="Message-ID"):
        compose(message(message_id="<a@example.org>\r\nBcc: x@evil.example"), POLICY)


def test_long_display_name_with_a_comma_stays_one_mailbox() -> None:
    # Python 3.11's own folder drops the quotes here and splits the name at the comma.
    name = "x" * 70 + ", Bob Evil"
    got = parse(compose(message(to=(f'"{name}" <jane@example.org>',)), POLICY).as_bytes())
    assert [(a.display_name, a.addr_spec) for a in got["To"].addresses] == [
        (name, "jane@example.org")
    ]


def test_a_display_name_holding_an_address_is_refused() -> None:
    with pytest.raises(AddressError, match="display name holds an @"):
        compose(message(to=('"x, bob@evil.example" <jane@example.org>',)), POLICY)


def test_long_actor_name_with_a_colon_does_not_become_a_group() -> None:
    got = parse(compose(message(actor_name=":" + "0" * 72), POLICY).as_bytes())
    (sender,) = got["From"].addresses
    assert sender.display_name == ":" + "0" * 72 + " (no-reply)"
    assert sender.addr_spec == "postroom@example.org"


def test_header_lines_stay_within_the_smtp_limit() -> None:
    raw = compose(message(subject="x" * 2000, headers={"X-Long": "y" * 3000}), POLICY).as_bytes()
    head = raw.split(b"\r\n\r\n")[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert parse(raw)["X-Long"] == "y" * 3000


def test_very_long_extra_header_name_is_refused() -> None:
    with pytest.raises(HeaderError, match="at most 76"):
        compose(message(headers={"X-" + "a" * 100: "1"}), POLICY)


def test_safe_encoded_word_is_accepted_by_the_value_check_but_not_as_text() -> None:
    word = "=?utf-8?q?caf=C3=A9?="
    assert check_header_value("Subject", word) == word
    with pytest.raises(HeaderError, match="plain text"):
        check_header_text("Subject", word)


def test_header_error_is_one_line_naming_the_header_and_the_fix() -> None:
    with pytest.raises(HeaderError) as caught:
        compose(message(subject="a\nb"), POLICY)
    text = str(caught.value)
    assert "\n" not in text
    assert "Subject" in text
    assert "remove line breaks" in text
    assert caught.value.header == "Subject"


# -- properties -------------------------------------------------------------------------

PROPERTY = settings(max_examples=300, deadline=None)
# Arbitrary text, and text built from the pieces that trip header folding and parsing.
PIECES = st.sampled_from(
    [
        *("=?", "?=", "=?utf-8?q?", "=?utf-8?b?", "?q?", "=0A", "=0D", "Cg==", "_"),
        *(" ", "\t", "  ", '"', "\\", ",", "<", ">", "@", ":", ";", "(", ")"),
        *("é", "€", "\u3000", "x" * 80),
    ]
)
HEADER_TEXT = st.one_of(st.text(), st.lists(st.one_of(PIECES, st.text(max_size=3))).map("".join))


def header_names(msg: EmailMessage) -> list[str]:
    return [name.lower() for name in msg]


# The headers a message() gets, in order; extra headers go before the MIME ones.
HEADERS = [
    *("from", "to", "subject", "date", "message-id", "mime-version"),
    "x-postroom-notification-type",
]
TEXT_PLAIN = ["content-type", "content-transfer-encoding"]
MULTIPART = ["content-type"]


def same_name(parsed: str, given: str) -> bool:
    """Printable ASCII names come back exactly. Others (and names with "=?") travel as
    encoded words, and Python 3.11's reader keeps the space between two encoded words
    of one name (RFC 2047 says to drop it), turns a tab into a space and strips the
    ends: compare those without whitespace."""
    if given.isascii() and given.isprintable() and "=?" not in given:
        return parsed == given
    return "".join(parsed.split()) == "".join(given.split())


def composed_or_refused(outgoing: OutgoingMessage) -> EmailMessage | None:
    """The message's bytes parsed back by the stdlib, or None if compose refused it."""
    try:
        composed = compose(outgoing, POLICY)
    except MessageError:  # HeaderError, AddressError: refused, which is safe
        return None
    raw = composed.as_bytes()
    head = raw.split(b"\r\n\r\n")[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    return parse(raw)


@PROPERTY
@given(subject=HEADER_TEXT)
def test_any_subject_is_refused_or_round_trips_without_changing_headers(subject: str) -> None:
    parsed = composed_or_refused(message(subject=subject))
    if parsed is None:
        return
    assert header_names(parsed) == HEADERS + TEXT_PLAIN
    expected = " ".join(piece for piece in ("[pr]", subject.strip()) if piece)
    assert parsed["Subject"] == expected


@PROPERTY
@given(name=HEADER_TEXT)
def test_any_display_name_is_refused_or_adds_no_header(name: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    parsed = composed_or_refused(message(to=(f'"{quoted}" <jane@example.org>',)))
    if parsed is None:
        return
    assert header_names(parsed) == HEADERS + TEXT_PLAIN
    (address,) = parsed["To"].addresses
    assert address.addr_spec == "jane@example.org"
    assert same_name(address.display_name, name)


@PROPERTY
@given(name=HEADER_TEXT)
def test_any_actor_name_is_refused_or_adds_no_header(name: str) -> None:
    parsed = composed_or_refused(message(actor_name=name))
    if parsed is None:
        return
    assert header_names(parsed) == HEADERS + TEXT_PLAIN
    (address,) = parsed["From"].addresses
    assert address.addr_spec == "postroom@example.org"
    if name.strip():
        assert same_name(address.display_name, f"{name.strip()} (no-reply)")


@PROPERTY
@given(value=HEADER_TEXT)
def test_any_extra_header_value_is_refused_or_adds_no_header(value: str) -> None:
    parsed = composed_or_refused(message(headers={"X-Ticket": value}))
    if parsed is None:
        return
    assert header_names(parsed) == [*HEADERS, "x-ticket", *TEXT_PLAIN]
    assert parsed["X-Ticket"] == value


@PROPERTY
@given(kind=HEADER_TEXT)
def test_any_type_is_refused_or_adds_no_header(kind: str) -> None:
    parsed = composed_or_refused(message(type=kind))
    if parsed is None:
        return
    assert header_names(parsed) == HEADERS + TEXT_PLAIN
    assert parsed["X-Postroom-Notification-Type"] == kind


@PROPERTY
@given(value=HEADER_TEXT)
def test_header_value_check_passes_nothing_that_decodes_to_a_line_break(value: str) -> None:
    try:
        check_header_value("X-Test", value)
    except HeaderError:
        return
    decoded = str(email.policy.default.header_factory("X-Test", value))
    assert not any(c in decoded for c in "\r\n\x00\u2028\u2029\x85")


@PROPERTY
@given(filename=HEADER_TEXT)
def test_any_file_name_is_refused_or_arrives_as_its_safe_name(filename: str) -> None:
    parsed = composed_or_refused(message(attachments=(Attachment(filename, b"data"),)))
    if parsed is None:
        return
    assert header_names(parsed) == HEADERS + MULTIPART
    (part,) = parsed.iter_attachments()
    assert header_names(part) == [*TEXT_PLAIN, "content-disposition"]
    assert part.get_filename() == safe_filename(filename)
    assert part.get_content() == b"data"
