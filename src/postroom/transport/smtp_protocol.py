"""The pure half of the SMTP client: replies, capabilities, commands, data, AUTH.

Nothing here touches a socket, so all of it is tested without I/O. The client in
:mod:`postroom.transport.smtp_client` does the reading and writing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from postroom.errors import TransportError

#: What a secret is replaced with in a transcript.
REDACTED = "********"

#: Mechanisms in the order ``mail.auth = auto`` prefers them (as smtplib does).
AUTH_PREFERENCE = ("CRAM-MD5", "PLAIN", "LOGIN")


E = TypeVar("E", bound=TransportError)


def with_fix(error: E, fix: str) -> E:
    """``error`` with its likely fix set apart (diagnostics show it on its own line)."""
    error.fix = fix
    return error


class Reply(NamedTuple):
    """One SMTP reply: its code and the text of each line (without code or CRLF)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        lines = self.lines
        if len(lines) == 1:
            return lines[0]
        return " ".join(line for line in lines if line)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def __str__(self) -> str:
        return f"{self.code} {self.text}".rstrip()


class ReplyLine(NamedTuple):
    code: int
    last: bool
    text: str


def parse_reply_line(raw: bytes) -> ReplyLine:
    """Parse one reply line (CR/LF already removed): ``250-text`` or ``250 text``.

    Raises ValueError if the line is not an SMTP reply (wrong port, a TLS server, ...).
    """
    if len(raw) < 3 or not raw[:3].isdigit() or raw[:1] not in b"2345":
        raise ValueError(f"not an SMTP reply: {raw[:80]!r}")
    separator = raw[3:4]
    if separator not in (b"", b" ", b"-"):
        raise ValueError(f"not an SMTP reply: {raw[:80]!r}")
    return ReplyLine(int(raw[:3]), separator != b"-", raw[4:].decode("utf-8", "replace").strip())


# -- EHLO ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server offered in its EHLO reply (keywords upper-cased)."""

    name: str = ""
    keywords: Mapping[str, str] = field(default_factory=dict)
    extended: bool = True

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.keywords

    @property
    def starttls(self) -> bool:
        return "STARTTLS" in self.keywords

    @property
    def smtputf8(self) -> bool:
        return "SMTPUTF8" in self.keywords

    @property
    def eightbitmime(self) -> bool:
        return "8BITMIME" in self.keywords

    @property
    def has_size(self) -> bool:
        return "SIZE" in self.keywords

    @property
    def size_limit(self) -> int | None:
        """The largest message the server takes, or None when it names no limit."""
        value = self.keywords.get("SIZE", "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else None

    @property
    def auth(self) -> tuple[str, ...]:
        return tuple(self.keywords.get("AUTH", "").upper().split())

    def summary(self) -> dict[str, object]:
        """The capabilities people ask about, for diagnostics."""
        return {
            "size": self.size_limit,
            "auth": list(self.auth),
            "starttls": self.starttls,
            "smtputf8": self.smtputf8,
            "pipelining": self.pipelining,
            "8bitmime": self.eightbitmime,
        }


def parse_ehlo(reply: Reply) -> Capabilities:
    """Capabilities from a 250 EHLO reply; the first line names the server."""
    name = reply.lines[0].split(" ", 1)[0] if reply.lines else ""
    keywords: dict[str, str] = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword.upper().startswith("AUTH="):  # old servers: "AUTH=LOGIN PLAIN"
            keyword, params = "AUTH", keyword[5:] + " " + params
        if keyword:
            upper = keyword.upper()
            if upper == "AUTH" and "AUTH" in keywords:
                params = keywords["AUTH"] + " " + params
            keywords[upper] = params.strip()
    return Capabilities(name=name, keywords=keywords)


# -- commands -----------------------------------------------------------------------------


def mail_command(sender: str, *, size: int | None, smtputf8: bool, eight_bit: bool) -> bytes:
    """``MAIL FROM:<sender>`` with SIZE, SMTPUTF8 and BODY parameters as asked."""
    params = b""
    if size is not None:
        params += b" SIZE=%d" % size
    if eight_bit:
        params += b" BODY=8BITMIME"
    if smtputf8:
        params += b" SMTPUTF8"
    address = sender.encode("utf-8" if smtputf8 else "ascii")
    return b"MAIL FROM:<" + address + b">" + params + b"\r\n"


def rcpt_command(recipient: str, *, smtputf8: bool) -> bytes:
    return b"RCPT TO:<" + recipient.encode("utf-8" if smtputf8 else "ascii") + b">\r\n"


# -- message data -------------------------------------------------------------------------

_LINE_END = re.compile(rb"\r\n|\r|\n")


def encode_data(data: bytes) -> bytes:
    """The message as it goes after DATA: CRLF line ends, leading dots doubled.

    A message that already has only CRLF line ends and no line starting with a dot
    (the usual case) is returned as is, without a copy.
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _LINE_END.sub(b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
        if data.startswith(b"."):
            data = b"." + data
    return data


def end_of_data(encoded: bytes) -> bytes:
    """What follows the encoded message: the final ``.`` line, after a CRLF if needed."""
    return b".\r\n" if not encoded or encoded.endswith(b"\r\n") else b"\r\n.\r\n"


def decode_data(encoded: bytes) -> bytes:
    """The inverse of :func:`encode_data` (without the final dot): for tests and tools."""
    undotted = encoded.replace(b"\r\n..", b"\r\n.")
    return undotted[1:] if undotted.startswith(b"..") else undotted


# -- AUTH ---------------------------------------------------------------------------------


def choose_mechanism(configured: str, offered: tuple[str, ...]) -> str | None:
    """The mechanism to use: the configured one if offered, else (auto) the best offered."""
    if configured != "auto":
        wanted = configured.upper()
        return wanted if wanted in offered else None
    return next((m for m in AUTH_PREFERENCE if m in offered), None)


def b64(data: str | bytes) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw)


def plain_response(username: str, password: str) -> bytes:
    """RFC 4616: base64 of ``NUL user NUL password``."""
    return b64("\0" + username + "\0" + password)


def cram_md5_response(username: str, password: str, challenge_b64: str) -> bytes:
    """RFC 2195: base64 of ``user`` SP hex HMAC-MD5 of the challenge, keyed by the password."""
    challenge = base64.b64decode(challenge_b64.encode("ascii"), validate=True)
    digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
    return b64(f"{username} {digest}")


def redact(command: str, *, in_auth: bool) -> str:
    """A client line as a transcript may show it: AUTH data is masked.

    ``in_auth`` is true for lines sent in answer to a 334 challenge (LOGIN user and
    password, the CRAM-MD5 response): those are masked whole.
    """
    if in_auth:
        return REDACTED
    if command[:5].upper() == "AUTH ":
        parts = command.split(" ", 2)
        return f"AUTH {parts[1]} {REDACTED}" if len(parts) == 3 else command
    return command
