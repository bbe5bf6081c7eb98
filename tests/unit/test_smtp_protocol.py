"""The pure half of the SMTP client: replies, EHLO, data encoding, AUTH encoding."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.transport.smtp_protocol import (
    Reply,
    choose_mechanism,
    cram_md5_response,
    decode_data,
    encode_data,
    end_of_data,
    mail_command,
    parse_ehlo,
    parse_reply_line,
    plain_response,
    redact,
)


def test_reply_lines_parse_code_continuation_and_text() -> None:
    assert parse_reply_line(b"250-PIPELINING") == (250, False, "PIPELINING")
    assert parse_reply_line(b"250 OK") == (250, True, "OK")
    assert parse_reply_line(b"354") == (354, True, "")


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 400", b"\x16\x03\x01\x02", b"25", b"250xyz"])
def test_lines_that_are_not_smtp_replies_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not an SMTP reply"):
        parse_reply_line(raw)


def test_ehlo_capabilities_are_parsed() -> None:
    reply = Reply(
        250,
        (
            "mx.example.org greets you",
            "PIPELINING",
            "SIZE 10240000",
            "AUTH=LOGIN PLAIN",
            "auth cram-md5 plain login",
            "STARTTLS",
            "SMTPUTF8",
            "8BITMIME",
        ),
    )
    caps = parse_ehlo(reply)

    assert caps.name == "mx.example.org"
    assert caps.pipelining
    assert caps.starttls
    assert caps.smtputf8
    assert caps.eightbitmime
    assert caps.size_limit == 10240000
    assert set(caps.auth) == {"LOGIN", "PLAIN", "CRAM-MD5"}


def test_size_without_a_number_means_no_limit() -> None:
    caps = parse_ehlo(Reply(250, ("mx", "SIZE")))
    assert caps.has_size
    assert caps.size_limit is None


def test_mail_command_carries_the_parameters_asked_for() -> None:
    assert mail_command("a@example.org", size=None, smtputf8=False, eight_bit=False) == (
        b"MAIL FROM:<a@example.org>\r\n"
    )
    assert mail_command("jö@example.org", size=12, smtputf8=True, eight_bit=True) == (
        "MAIL FROM:<jö@example.org> SIZE=12 BODY=8BITMIME SMTPUTF8\r\n".encode()
    )
    assert mail_command("", size=None, smtputf8=False, eight_bit=False) == b"MAIL FROM:<>\r\n"


def test_clean_data_is_not_copied() -> None:
    data = b"Subject: x\r\n\r\nbody\r\n"
    assert encode_data(data) is data


def test_data_is_dot_stuffed_and_line_ends_become_crlf() -> None:
    assert encode_data(b".a\n.\r\nb\rc") == b"..a\r\n..\r\nb\r\nc"
    assert end_of_data(b"x\r\n") == b".\r\n"
    assert end_of_data(b"x") == b"\r\n.\r\n"
    assert end_of_data(b"") == b".\r\n"


@given(st.lists(st.text(alphabet=".ab\r\n", max_size=8), max_size=12))
def test_encoding_round_trips_to_the_crlf_message(parts: list[str]) -> None:
    data = "".join(parts).encode()
    encoded = encode_data(data)
    normalised = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")

    assert decode_data(encoded) == normalised
    wire = encoded + end_of_data(encoded)
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    # The only line that is exactly "." is the terminator.
    assert wire.split(b"\r\n").count(b".") == 1


def test_plain_response_encodes_user_and_password() -> None:
    assert base64.b64decode(plain_response("tim", "tanstaaf")) == b"\0tim\0tanstaaf"


def test_cram_md5_matches_rfc_2195_example() -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>").decode()
    answer = cram_md5_response("tim", "tanstaaftanstaaf", challenge)
    assert base64.b64decode(answer) == b"tim b913a602c7eda7a495b4e6e7334d3890"


@pytest.mark.parametrize(
    ("configured", "offered", "chosen"),
    [
        ("auto", ("LOGIN", "PLAIN", "CRAM-MD5"), "CRAM-MD5"),
        ("auto", ("LOGIN", "PLAIN"), "PLAIN"),
        ("auto", ("LOGIN",), "LOGIN"),
        ("auto", ("XOAUTH2",), None),
        ("login", ("LOGIN", "PLAIN"), "LOGIN"),
        ("cram-md5", ("LOGIN", "PLAIN"), None),
    ],
)
def test_mechanism_choice(configured: str, offered: tuple[str, ...], chosen: str | None) -> None:
    assert choose_mechanism(configured, offered) == chosen


def test_transcript_masks_auth_data() -> None:
    assert redact("AUTH PLAIN AHRpbQB0YW5zdGFhZg==", in_auth=False) == "AUTH PLAIN ********"
    assert redact("AUTH LOGIN", in_auth=False) == "AUTH LOGIN"
    assert redact("dGFuc3RhYWY=", in_auth=True) == "********"
    assert redact("MAIL FROM:<a@example.org>", in_auth=False) == "MAIL FROM:<a@example.org>"
