"""Mail transactions: MAIL, RCPT, DATA and the message, one or many, pipelined or not.

Per recipient the result is its RCPT reply when refused, else the reply to the data
(or to DATA when that was refused). A refused MAIL FROM answers for every recipient.
After a transaction that did not reach the end of its data, RSET keeps the
connection usable; after a 421 the connection is closed.

With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go in one write. :func:`send_many`
goes further: a message's data and final dot go in the same write as the next
message's MAIL/RCPT/DATA (message content may start a pipelined group), so each
message costs one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from postroom.errors import SMTPUTF8Required, TransportError
from postroom.message.envelope import Envelope
from postroom.transport.base import RecipientResult, SendResult
from postroom.transport.smtp_connection import SMTPConnection
from postroom.transport.smtp_protocol import (
    Capabilities,
    Reply,
    encode_data,
    end_of_data,
    mail_command,
    rcpt_command,
)

_DATA = b"DATA\r\n"


# Plain classes with slots: built for every message, and a dataclass or NamedTuple
# costs more to build and much more to define (a worker defines them at its first send).


class _Server:
    """What a transaction needs of the server's EHLO, read once per call rather than
    once per message."""

    __slots__ = ("eightbitmime", "has_size", "pipelining", "size_limit", "smtputf8")

    def __init__(self, caps: Capabilities) -> None:
        self.pipelining = caps.pipelining
        self.smtputf8 = caps.smtputf8
        self.has_size = caps.has_size
        self.size_limit = caps.size_limit
        self.eightbitmime = caps.eightbitmime


class _Message:
    """A message ready to go: its commands and its encoded data."""

    __slots__ = ("commands", "group", "payload", "recipients", "steps", "tail")

    def __init__(
        self,
        recipients: tuple[str, ...],
        commands: list[bytes],
        payload: bytes,
        tail: bytes,
        group: bytes,
        steps: tuple[str, ...],
    ) -> None:
        self.recipients = recipients
        self.commands = commands
        self.payload = payload
        #: What ends the data: the final dot, after a CRLF if the data lacks one.
        self.tail = tail
        #: MAIL, every RCPT and DATA as one pipelined write, and the step of each reply.
        self.group = group
        self.steps = steps


class _Open:
    """A pipelined message whose DATA got 354: its data is still to be written."""

    __slots__ = ("accepted", "message", "rcpt_replies")

    def __init__(self, message: _Message, rcpt_replies: list[Reply], accepted: bool) -> None:
        self.message = message
        self.rcpt_replies = rcpt_replies
        self.accepted = accepted


def prepare(
    envelope: Envelope, data: bytes, caps: Capabilities, where: str
) -> _Message | SendResult:
    """The commands and data of a message, or a result if the server cannot take it.

    Raises SMTPUTF8Required when an address needs SMTPUTF8 and the server lacks it.
    """
    return _prepare(envelope, data, _Server(caps), where)


def _prepare(envelope: Envelope, data: bytes, server: _Server, where: str) -> _Message | SendResult:
    recipients = envelope.recipients
    utf8 = envelope.smtputf8 or not envelope.sender.isascii()
    for recipient in recipients:
        utf8 = utf8 or not recipient.isascii()
    if utf8 and not server.smtputf8:
        raise SMTPUTF8Required(
            f"{where} does not offer SMTPUTF8, needed for a non-ASCII address in this "
            "message; use ASCII addresses or a server that supports SMTPUTF8"
        )
    payload = encode_data(data)
    limit = server.size_limit
    if limit is not None and len(payload) > limit:
        text = f"5.3.4 message of {len(payload)} bytes is over the server's limit of {limit}"
        return SendResult(tuple(RecipientResult(r, 552, text) for r in recipients))
    mail = mail_command(
        envelope.sender,
        size=len(payload) if server.has_size else None,
        smtputf8=utf8,
        eight_bit=server.eightbitmime and not payload.isascii(),
    )
    commands = [mail]
    for recipient in recipients:
        commands.append(rcpt_command(recipient, smtputf8=utf8))
    group = b"".join(commands) + _DATA
    steps = ("mail", "rcpt", "data") if len(recipients) == 1 else _steps(len(recipients))
    tail = end_of_data(payload)
    return _Message(recipients, commands, payload, tail, group, steps)


def _steps(count: int) -> tuple[str, ...]:
    return ("mail", *("rcpt" for _ in range(count)), "data")


def send(conn: SMTPConnection, caps: Capabilities, envelope: Envelope, data: bytes) -> SendResult:
    """One message; pipelined when the server offers PIPELINING."""
    message = prepare(envelope, data, caps, conn.where)
    if isinstance(message, SendResult):
        return message
    conn.end_of_data_sent = False
    conn.begin_transaction(len(message.payload))
    try:
        if not caps.pipelining:
            return _send_stepwise(conn, message)
        conn.write(message.group, "mail", lines=[*message.commands, _DATA])
        opened = _read_group(conn, message)
        if isinstance(opened, SendResult):
            return opened
        return _finish(conn, opened, _write_data(conn, opened))
    finally:
        conn.end_transaction()


def send_many(
    conn: SMTPConnection, caps: Capabilities, items: Iterable[tuple[Envelope, bytes]]
) -> Iterator[SendResult]:
    """Each message's result, in order; one round trip per message with PIPELINING.

    A message's data and final dot go out with the next message's commands, so its
    result is yielded once those are written and its final reply read. If the caller
    stops early, the connection is closed: a message whose data was not yet written
    is abandoned, so the server never takes a message whose result nobody saw. A message that needs
    SMTPUTF8 the server lacks gets a permanent 553 result instead of an exception.
    ``items`` should give each next message at once: while it waits, the message before
    sits after 354 with its data unsent. A caller that must wait between messages (the
    worker's rate limit) ends the items there and calls again.
    """
    if not caps.pipelining:
        for envelope, data in items:
            try:
                result = send(conn, caps, envelope, data)
            except SMTPUTF8Required as exc:
                result = _refusal(envelope, exc)
            yield result
        return
    server = _Server(caps)
    where = conn.where
    pending: _Open | None = None  # its DATA got 354; its data is not written yet
    in_flight = False  # commands written whose replies are not read yet
    try:
        for envelope, data in items:
            message = _prepare_or_refuse(envelope, data, server, where)
            if isinstance(message, SendResult):
                if pending is not None:
                    last, pending = pending, None
                    yield _finish(conn, last, _write_data(conn, last))
                yield message
                continue
            in_flight = True
            if pending is None:
                conn.begin_transaction(len(message.payload))
                conn.write(message.group, "mail", lines=[*message.commands, _DATA])
            else:
                previous, pending = pending, None
                # One cap for the previous message's data and final reply and this
                # message's commands and replies: they share the writes and reads.
                conn.begin_transaction(len(previous.message.payload) + len(message.payload))
                if previous.accepted:
                    conn.write_data(
                        previous.message.payload, previous.message.tail, more=message.group
                    )
                else:  # no recipient took it: only the dot
                    conn.write_data(b"", b".\r\n", more=message.group)
                final = conn.read_reply("data")
                yield _finish(conn, previous, final)  # as soon as it is known
                if final.code == 421:  # the server is leaving: this message was not taken
                    in_flight = False
                    yield _results(conn, message.recipients, [final] * len(message.recipients))
                    continue  # with the connection closed, a next message raises
            current = _read_group(conn, message)
            in_flight = False
            if isinstance(current, SendResult):
                yield current
            else:
                pending = current
        if pending is not None:
            last, pending = pending, None
            yield _finish(conn, last, _write_data(conn, last))
    finally:
        conn.end_transaction()
        if pending is not None or in_flight:  # abandoned mid-way: the server must not
            conn.close()  # take a message whose result nobody saw


def _prepare_or_refuse(
    envelope: Envelope, data: bytes, server: _Server, where: str
) -> _Message | SendResult:
    """As :func:`prepare`, but a message that needs SMTPUTF8 the server lacks gets a
    permanent 553 5.6.7 result instead of stopping the other messages."""
    try:
        return _prepare(envelope, data, server, where)
    except SMTPUTF8Required as exc:
        return _refusal(envelope, exc)


def _refusal(envelope: Envelope, error: SMTPUTF8Required) -> SendResult:
    text = f"5.6.7 {error}"
    return SendResult(tuple(RecipientResult(r, 553, text) for r in envelope.recipients))


def _write_data(conn: SMTPConnection, opened: _Open, *, more: bytes = b"") -> Reply | None:
    """Write the data of an opened message (just the dot if no recipient was accepted).
    Returns the final reply only when nothing else was written after it."""
    if opened.accepted:
        conn.write_data(opened.message.payload, opened.message.tail, more=more)
    else:
        conn.write_data(b"", b".\r\n", more=more)
    return None if more else conn.read_reply("data")


def _read_group(conn: SMTPConnection, message: _Message) -> _Open | SendResult:
    """Read the replies to a pipelined MAIL, RCPT... and DATA."""
    count = len(message.recipients)
    replies = conn.read_replies(message.steps)
    if len(replies) < count + 2:  # a 421: the server is closing, the rest never comes
        replies.extend([replies[-1]] * (count + 2 - len(replies)))
    mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
    accepted = False
    if 200 <= mail_reply.code < 300:
        for reply in rcpt_replies:
            accepted = accepted or 200 <= reply.code < 300
    else:
        rcpt_replies = [mail_reply] * count
    if data_reply.code == 354:
        return _Open(message, rcpt_replies, accepted)
    final = data_reply if accepted else None
    return _results(conn, message.recipients, rcpt_replies, final, reset=True)


def _finish(conn: SMTPConnection, opened: _Open, final: Reply | None) -> SendResult:
    if final is None:
        final = conn.read_reply("data")
    if not opened.accepted:  # only the dot went: the RCPT replies tell it all
        return _results(conn, opened.message.recipients, opened.rcpt_replies, None)
    return _results(conn, opened.message.recipients, opened.rcpt_replies, final)


def _send_stepwise(conn: SMTPConnection, message: _Message) -> SendResult:
    recipients = message.recipients
    mail_reply = _command(conn, message.commands[0], "mail")
    if not mail_reply.ok:
        return _results(conn, recipients, [mail_reply] * len(recipients), None, reset=True)
    rcpt_replies = [_command(conn, command, "rcpt") for command in message.commands[1:]]
    if not any(r.ok for r in rcpt_replies):
        return _results(conn, recipients, rcpt_replies, None, reset=True)
    data_reply = _command(conn, _DATA, "data")
    if data_reply.code != 354:
        return _results(conn, recipients, rcpt_replies, data_reply, reset=True)
    payload = message.payload
    conn.write_data(payload, end_of_data(payload))
    return _results(conn, recipients, rcpt_replies, conn.read_reply("data"))


def _command(conn: SMTPConnection, command: bytes, step: str) -> Reply:
    conn.write(command, step, lines=[command])
    return conn.read_reply(step)


def _results(
    conn: SMTPConnection,
    recipients: tuple[str, ...],
    rcpt_replies: list[Reply],
    final: Reply | None = None,
    *,
    reset: bool = False,
) -> SendResult:
    """Per recipient: its RCPT reply if refused (or no final reply), else the final one.

    ``reset``: the transaction stopped before its data, so RSET (or, if even that
    fails, close: the next message then starts on a fresh connection).
    """
    conn.transactions += 1
    results = []
    closing = final is not None and final.code == 421
    for recipient, reply in zip(recipients, rcpt_replies, strict=True):
        answer = final if final is not None and 200 <= reply.code < 300 else reply
        closing = closing or answer.code == 421
        results.append(RecipientResult(recipient, answer.code, answer.text))
    if closing:
        conn.close()
    elif reset:
        try:
            if not _command(conn, b"RSET\r\n", "rset").ok:
                conn.close()
        except TransportError:  # the result stands; the next message reconnects
            conn.close()
    return SendResult(tuple(results))
