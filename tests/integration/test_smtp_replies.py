"""Reading replies off a real socket: the one-line fast path and the memo of replies
seen before give what the general parser gives."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.errors import SMTPProtocolError
from postroom.transport.smtp_connection import SMTPConnection
from postroom.transport.smtp_protocol import Reply, parse_reply_line


@pytest.fixture
def pair() -> Iterator[tuple[SMTPConnection, socket.socket]]:
    ours, theirs = socket.socketpair()
    connection = SMTPConnection(ours, where="test:25", timeout=2.0)
    yield connection, theirs
    connection.close()
    theirs.close()


def general(raw: bytes) -> Reply:
    code, _, text = parse_reply_line(raw.rstrip(b"\r"))
    return Reply(code, (text,))


@given(st.integers(200, 599), st.binary().filter(lambda b: b"\n" not in b), st.booleans())
def test_a_one_line_reply_reads_as_the_general_parser_reads_it(
    code: int, text: bytes, crlf: bool
) -> None:
    ours, theirs = socket.socketpair()
    connection = SMTPConnection(ours, where="test:25", timeout=2.0)
    try:
        line = b"%d %s%s" % (code, text, b"\r" if crlf else b"")
        theirs.sendall(line + b"\n" + line + b"\n")
        first, again = connection.read_reply("mail"), connection.read_reply("rcpt")
        assert first == again == general(line)
    finally:
        connection.close()
        theirs.close()


def test_replies_of_a_pipelined_group_with_a_multi_line_one_and_repeats(
    pair: tuple[SMTPConnection, socket.socket],
) -> None:
    connection, theirs = pair
    theirs.sendall(
        b"250 2.1.0 Ok\r\n250-first\r\n250 second\r\n354 End data\r\n"
        b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n"
    )
    replies = connection.read_replies(("mail", "rcpt", "data", "mail", "rcpt", "data"))
    assert replies == [
        Reply(250, ("2.1.0 Ok",)),
        Reply(250, ("first", "second")),
        Reply(354, ("End data",)),
        Reply(250, ("2.1.0 Ok",)),
        Reply(250, ("2.1.5 Ok",)),
        Reply(354, ("End data",)),
    ]
    assert replies[3] is replies[0]  # seen before: not parsed again


def test_a_group_answered_with_the_same_bytes_as_before_gets_the_same_replies(
    pair: tuple[SMTPConnection, socket.socket],
) -> None:
    connection, theirs = pair
    group = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n"
    steps = ("mail", "rcpt", "data")
    theirs.sendall(group)
    first = connection.read_replies(steps)
    theirs.sendall(group + b"250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n354 End data\r\n")
    assert connection.read_replies(steps) == first
    assert connection.read_replies(steps) == [
        Reply(250, ("2.1.0 Ok",)),
        Reply(550, ("5.1.1 No such user",)),
        Reply(354, ("End data",)),
    ]


def test_a_421_ends_the_group_and_replies_split_across_reads_are_joined(
    pair: tuple[SMTPConnection, socket.socket],
) -> None:
    connection, theirs = pair
    theirs.sendall(b"25")
    theirs.sendall(b"0 Ok\r")
    theirs.sendall(b"\n421 4.3.2 shutting down\r\n")
    assert connection.read_replies(("mail", "rcpt", "data")) == [
        Reply(250, ("Ok",)),
        Reply(421, ("4.3.2 shutting down",)),
    ]


def test_a_line_that_is_not_smtp_is_refused_after_good_ones(
    pair: tuple[SMTPConnection, socket.socket],
) -> None:
    connection, theirs = pair
    theirs.sendall(b"250 Ok\r\nHTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(SMTPProtocolError, match="not SMTP"):
        connection.read_replies(("mail", "rcpt"))
    assert not connection.is_open
