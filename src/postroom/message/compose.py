"""Composing: an OutgoingMessage and the mail settings in, MIME bytes and envelope out.

Pure: no I/O, no settings read here. The bytes are written here and in
:mod:`postroom.message.mime`, not by the ``email`` package: every header value passes
postroom's own guard and encoder (:mod:`postroom.headers`), because the email package
of some Python versions writes an encoded newline out as a new header and drops the
quotes of long display names; and it costs ~0.5 ms a message, postroom ~20 µs.
"""

from __future__ import annotations

import email
import hashlib
import os
import random
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from functools import cached_property, lru_cache
from typing import NamedTuple
from urllib.parse import quote

from postroom.addresses import Address, parse_address
from postroom.errors import HeaderError, MessageError, MessageTooLargeError
from postroom.headers import (
    check_header_name,
    check_header_text,
    check_header_value,
    encode_addresses,
    encode_text,
    format_date,
)
from postroom.message import mime
from postroom.message.envelope import Envelope
from postroom.message.model import OutgoingMessage
from postroom.settings.glossary import MailSettings

ORIGINAL_RECIPIENTS_HEADER = "X-Postroom-Original-Recipients"

#: The largest message Microsoft Graph's sendMail takes: its requests stop at 4 MB, and
#: the MIME goes base64-encoded (4/3 as large), with room for the request around it.
GRAPH_MESSAGE_LIMIT = 4 * 1024 * 1024 * 3 // 4 - 1024

# Extra headers a caller may set. Address fields (Reply-To, Bcc…) are message fields.
_ALLOWED_HEADERS = (
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Help",
    "Precedence",
    "Organization",
    "Keywords",
    "Comments",
    "Importance",
    "X-Priority",
)
_ALLOWED_LOWER = {name.lower() for name in _ALLOWED_HEADERS}
# Headers that are message fields: point the caller at the field instead.
_FIELD_FOR_HEADER = {
    "from": "from_",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply-to": "reply_to",
    "subject": "subject",
    "message-id": "message_id",
}
_MSG_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_THREAD_ID_SAFE = "!#$&'*+-/^_`{|}~."
_MAX_ID = 250  # characters of a Message-ID, so its header line stays well under 998
_MAX_NAME = 76  # characters of an extra header's name
_CACHED_LENGTH = 200  # characters of an actor name or thread id whose result is kept


@dataclass(frozen=True, slots=True)
class ComposePolicy:
    """The mail settings composing depends on, so compose takes values, not globals."""

    from_: str
    envelope_from: str = ""
    subject_prefix: str = ""
    type_header: str = "X-Postroom-Notification-Type"
    redirect_to: str = ""
    max_size: int = 25_000_000
    #: Set when the transport's own limit is below mail.max_size (Graph).
    transport_limit: int | None = None

    @classmethod
    def from_settings(cls, mail: MailSettings) -> ComposePolicy:
        graph = mail.enabled and mail.transport == "graph"
        return cls(
            from_=mail.from_,
            envelope_from=mail.envelope_from,
            subject_prefix=mail.subject_prefix,
            type_header=mail.type_header,
            redirect_to=mail.redirect_to,
            max_size=mail.max_size,
            transport_limit=GRAPH_MESSAGE_LIMIT if graph else None,
        )

    def check_size(self, size: int) -> None:
        """Raise MessageTooLargeError for a message over either limit."""
        if size > self.max_size:
            raise MessageTooLargeError(size=size, limit=self.max_size)
        if self.transport_limit is not None and size > self.transport_limit:
            raise MessageTooLargeError(
                size=size,
                limit=self.transport_limit,
                what="what Microsoft Graph takes in one sendMail (4 MB once base64-encoded)",
                fix="send a smaller message (link large files instead) or use mail.transport=smtp",
            )


@dataclass(frozen=True, kw_only=True)
class ComposedMessage:
    """A message ready for a transport: its bytes, envelope and Message-ID.

    ``raw`` is the message as sent over SMTP: CRLF line ends, a 7-bit body, UTF-8
    headers only when the envelope needs SMTPUTF8. ``subject`` (prefix included) and
    ``from_header`` are those headers as text, as a reader shows them. ``message`` is
    ``raw`` parsed back with the stdlib's default policy, on first use only.
    ``recipient_kinds`` pairs each envelope recipient with how it was given: ``to``,
    ``cc``, ``bcc``, or ``redirect`` (mail.redirect_to replaced them all).
    """

    envelope: Envelope
    message_id: str
    recipient_kinds: tuple[tuple[str, str], ...]
    raw: bytes = field(repr=False)
    subject: str
    from_header: str

    def as_bytes(self) -> bytes:
        """The message as sent over SMTP."""
        return self.raw

    @cached_property
    def message(self) -> EmailMessage:
        """The message parsed back: headers decoded, parts and attachments to walk."""
        # Read as text: UTF-8 headers (SMTPUTF8) then come back as the text they hold.
        parsed = email.message_from_string(self.raw.decode("utf-8"), policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)  # policy.default builds EmailMessage
        return parsed


def compose(
    message: OutgoingMessage, policy: ComposePolicy, *, now: datetime | None = None
) -> ComposedMessage:
    """Build the MIME bytes and SMTP envelope of ``message``; pure, no I/O.

    Raises MessageError (AddressError, HeaderError, MessageTooLargeError) with one line
    that names the fault and the fix.
    """
    sender = _sender(message, policy)
    people = _People(
        to=_addresses("To", message.to),
        cc=_addresses("Cc", message.cc),
        bcc=_addresses("Bcc", message.bcc),
        reply_to=_addresses("Reply-To", message.reply_to),
        redirect=_parse("mail.redirect_to", policy.redirect_to) if policy.redirect_to else None,
    )
    if not (people.to or people.cc or people.bcc):
        raise MessageError("the message has no recipient; give at least one to, cc or bcc address")
    message_id = _message_id(message.message_id, sender.domain)
    subject = _subject(policy.subject_prefix, message.subject)
    headers = _headers(message, policy, sender, people, subject, message_id, now)
    body = mime.body(message)

    envelope_sender = (
        _parse("mail.envelope_from", policy.envelope_from) if policy.envelope_from else sender
    )
    kinds = people.recipient_kinds()
    envelope = Envelope(
        sender=envelope_sender.addr_spec,
        recipients=tuple(address for address, _ in kinds),
        smtputf8=any(a.smtputf8 for a in (sender, envelope_sender, *people.everyone())),
    )
    raw = mime.head([*headers, *body.headers]) + b"\r\n" + body.body
    policy.check_size(len(raw))
    return ComposedMessage(
        envelope=envelope,
        message_id=message_id,
        recipient_kinds=kinds,
        raw=raw,
        subject=subject,
        from_header=sender.shown,
    )


class _People(NamedTuple):
    """The parsed addresses of one message, besides its sender."""

    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    redirect: Address | None

    def recipient_kinds(self) -> tuple[tuple[str, str], ...]:
        if self.redirect:
            return ((self.redirect.addr_spec, "redirect"),)
        groups = (("to", self.to), ("cc", self.cc), ("bcc", self.bcc))
        return _unique((a.addr_spec, kind) for kind, group in groups for a in group)

    def everyone(self) -> tuple[Address, ...]:
        redirect = (self.redirect,) if self.redirect else ()
        return (*self.to, *self.cc, *self.bcc, *self.reply_to, *redirect)


def _headers(
    message: OutgoingMessage,
    policy: ComposePolicy,
    sender: Address,
    people: _People,
    subject: str,
    message_id: str,
    now: datetime | None,
) -> list[tuple[str, str]]:
    """Every top-level header but the MIME ones, encoded and folded; never Bcc."""
    if len(sender.name) <= _CACHED_LENGTH:
        headers = [("From", _from_header_cached(sender))]
    else:
        headers = [("From", _from_header(sender))]
    for name, group in (("To", people.to), ("Cc", people.cc), ("Reply-To", people.reply_to)):
        if group:
            headers.append((name, encode_addresses(name, [_mailbox(a) for a in group])))
    headers += [
        ("Subject", encode_text("Subject", subject)),
        ("Date", _date_now() if now is None else format_date(_utc(now))),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
    ]
    if message.automatic:
        headers.append(("Auto-Submitted", "auto-generated"))
    type_header = _type_header_name(policy.type_header)
    if len(message.type) <= _CACHED_LENGTH:
        headers.append((type_header, _type_value_cached(type_header, message.type)))
    else:
        headers.append((type_header, _type_value(type_header, message.type)))
    if message.thread_id:
        reference = _thread_reference(message.thread_id, sender.domain)
        headers += [("References", reference), ("In-Reply-To", reference)]
    if people.redirect:
        # Who it would have gone to; Bcc stays hidden even from the redirect address.
        original = _unique((a.addr_spec, "") for a in (*people.to, *people.cc))
        if original:
            name = ORIGINAL_RECIPIENTS_HEADER
            headers.append((name, encode_addresses(name, [("", a) for a, _ in original])))
    return headers + _extra_headers(message.headers, headers, type_header)


# -- addresses --------------------------------------------------------------------------


def _parse(field: str, text: str) -> Address:
    # Checked under the field's name first, so the error says which field is at fault.
    check_header_text(field, text)
    return parse_address(text)


def _addresses(field: str, items: Iterable[str] | str) -> tuple[Address, ...]:
    if not items:
        return ()
    if isinstance(items, str):  # one address given where a list was meant
        items = (items,)
    return tuple([_parse(field, item) for item in items])


def _sender(message: OutgoingMessage, policy: ComposePolicy) -> Address:
    configured = _parse("From", message.from_ or policy.from_)
    actor = (message.actor_name or "").strip()
    if not actor:
        return configured
    no_reply = _no_reply_cached if len(actor) <= _CACHED_LENGTH else _no_reply
    return no_reply(actor, configured.addr_spec, configured.smtputf8)


def _no_reply(actor: str, addr_spec: str, smtputf8: bool) -> Address:
    # Kallithea's rule: the actor's name, mail.from's address, its own name disregarded.
    return Address(addr_spec, check_header_text("From", f"{actor} (no-reply)"), smtputf8)


def _mailbox(address: Address) -> tuple[str, str]:
    return (check_header_text("display name", address.name), address.addr_spec)


def _unique(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """(address, kind) pairs without repeated addresses (case-insensitive), order kept."""
    seen: dict[str, tuple[str, str]] = {}
    for address, kind in pairs:
        seen.setdefault(address.lower(), (address, kind))
    return tuple(seen.values())


# -- headers ----------------------------------------------------------------------------


def _subject(prefix: str, subject: str) -> str:
    joined = " ".join(piece for piece in (prefix.strip(), subject.strip()) if piece)
    # The joined text is checked too: two halves can form one encoded word.
    return check_header_text("Subject", joined)


@lru_cache(maxsize=32)
def _type_header_name(name: str) -> str:
    check_header_name(name)
    if not name.lower().startswith("x-") or name.lower() == ORIGINAL_RECIPIENTS_HEADER.lower():
        raise HeaderError(
            f"mail.type_header {name!r} would clash with a standard header; "
            "use an X- name such as X-Postroom-Notification-Type",
            header=name,
        )
    return name


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


class _SecondDate:
    """The Date header of the current second, written once a second: a batch of a
    thousand messages composed within one second shares it (RFC 5322 dates stop at
    seconds)."""

    def __init__(self) -> None:
        self._kept = (-1, "")  # (second, its Date), replaced whole: threads share it

    def __call__(self) -> str:
        second = int(time.time())
        kept = self._kept
        if kept[0] != second:
            kept = self._kept = (second, format_date(datetime.fromtimestamp(second, UTC)))
        return kept[1]


_date_now = _SecondDate()


def _from_header(sender: Address) -> str:
    return encode_addresses("From", [_mailbox(sender)])


def _type_value(type_header: str, type_: str) -> str:
    return encode_text(type_header, check_header_text(type_header, type_))


def _message_id(given: str | None, domain: str) -> str:
    if not given:
        # As email.utils.make_msgid makes one: centiseconds, process id, 64 random bits.
        return f"<{time.time_ns() // 10_000_000}.{os.getpid()}.{random.getrandbits(64)}@{domain}>"
    check_header_text("Message-ID", given)
    message_id = given.strip()
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    if len(message_id) > _MAX_ID or not _MSG_ID.fullmatch(message_id):
        raise HeaderError(
            f"Message-ID {given!r} is not of the form <left@right> in printable ASCII, "
            f"at most {_MAX_ID} characters; leave message_id empty to have one made",
            header="Message-ID",
        )
    return message_id


def _thread_reference(thread_id: str, domain: str) -> str:
    if len(thread_id) <= _CACHED_LENGTH:
        return _reference_cached(thread_id, domain)
    return _reference(thread_id, domain)


def _reference(thread_id: str, domain: str) -> str:
    check_header_value("References", thread_id)
    # Percent-encoding keeps the id stable and one-to-one while making it a valid
    # msg-id; "=" and "?" are encoded too, so it can never look like an encoded word.
    left = quote(thread_id, safe=_THREAD_ID_SAFE)
    if left.startswith(".") or left.endswith(".") or ".." in left:
        left = left.replace(".", "%2E")
    if len(left) > _MAX_ID // 2:
        # Still stable, and short enough for a header line.
        left = "sha256." + hashlib.sha256(thread_id.encode("utf-8")).hexdigest()
    return f"<{left}@{domain}>"


# Pure, so kept for the next message (short inputs only: the keys stay small).
_no_reply_cached = lru_cache(maxsize=1024)(_no_reply)
_reference_cached = lru_cache(maxsize=1024)(_reference)
_from_header_cached = lru_cache(maxsize=1024)(_from_header)
_type_value_cached = lru_cache(maxsize=256)(_type_value)


def _extra_headers(
    extra: Mapping[str, str], headers: list[tuple[str, str]], type_header: str
) -> list[tuple[str, str]]:
    if not extra:
        return []
    taken = {name.lower() for name, _ in headers}
    added: list[tuple[str, str]] = []
    for name, value in extra.items():
        check_header_name(name)
        if len(name) > _MAX_NAME:
            raise HeaderError(
                f"header name {name[:20]}… is {len(name)} characters long; use at most {_MAX_NAME}",
                header=name,
            )
        lower = name.lower()
        allowed = lower in _ALLOWED_LOWER or (lower.startswith("x-") and len(lower) > 2)
        if not allowed or lower.startswith("x-postroom-") or lower == type_header.lower():
            field = _FIELD_FOR_HEADER.get(lower)
            hint = f"; use the message's {field} field" if field else ""
            raise HeaderError(
                f"header {name} cannot be set as an extra header{hint}; allowed: "
                f"{', '.join(_ALLOWED_HEADERS)} and X- names other than X-Postroom-* "
                f"and {type_header}",
                header=name,
            )
        if lower in taken:
            raise HeaderError(
                f"header {name} is given twice (References and In-Reply-To come from "
                "thread_id); give it once",
                header=name,
            )
        taken.add(lower)
        added.append((name, encode_text(name, check_header_text(name, value))))
    return added
