"""MIME written directly as bytes: the checked header block and a 7-bit body, CRLF ends.

Text parts are 7bit when they are printable ASCII in lines of at most 998 bytes, else
quoted-printable; attachments are base64 in 76-character lines. Nothing is 8bit, so
no server needs 8BITMIME. Pure: values in, bytes (or a Part: MIME headers, already
folded and ASCII, and body bytes) out.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple, NoReturn
from urllib.parse import quote

from postroom.errors import HeaderError, MessageError
from postroom.headers import check_header_text
from postroom.message.model import Attachment, OutgoingMessage, safe_filename

_MAX_LINE = 998  # RFC 5322's hard limit of a line, CRLF not counted
# What a header block holds besides UTF-8 (SMTPUTF8): TAB, CR, LF, printable ASCII.
_HEAD_ASCII = bytes([9, 10, 13, *range(0x20, 0x7F)])
# Characters some reader splits a line at (str.splitlines() in the stdlib's parser).
_HEAD_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_FOLDED = re.compile(r"[^\r\n]*(?:\r\n[ \t][^\r\n]*)*")
_LINE = 78
# What a 7bit part may hold: TAB, LF (CRLF once sent) and printable ASCII.
_SEVEN_BIT = bytes([9, 10, *range(0x20, 0x7F)])
_BASE64_LINE = 76
# RFC 2231 attribute-char besides letters and digits (which quote() keeps anyway).
_ATTRIBUTE_CHARS = "!#$&+-.^_`|~"
_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}|.")


class Part(NamedTuple):
    """One MIME entity: its headers (name, folded value) and its encoded body.

    ``opaque`` is true when the body is quoted-printable or base64, which can never
    hold "=_" and so never a boundary made by :func:`_random_boundary`.
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes
    opaque: bool

    def as_bytes(self) -> bytes:
        head = "".join([f"{name}: {value}\r\n" for name, value in self.headers])
        return head.encode("ascii") + b"\r\n" + self.body


def head(headers: list[tuple[str, str]]) -> bytes:
    """A message's header block, checked to hold exactly the header lines that were set.

    Defence in depth behind the guard and the encoder of :mod:`postroom.headers`: a line
    break only as CRLF + whitespace (folding), no other character a reader splits lines
    at, no line over SMTP's limit. (The property tests parse the output to show it.)
    """
    lines = []
    for name, value in headers:
        if ("\r" in value or "\n" in value) and not _FOLDED.fullmatch(value):
            _refuse_head()
        lines.append(f"{name}: {value}\r\n")
    text = "".join(lines)
    data = text.encode("utf-8")  # ASCII unless an address needs SMTPUTF8
    # What is left after deleting printable ASCII, TAB and CRLF is UTF-8 or a control.
    if data.translate(None, _HEAD_ASCII) and _HEAD_FORBIDDEN.search(text):
        _refuse_head()
    if len(data) > _MAX_LINE and max(map(len, data.split(b"\r\n"))) > _MAX_LINE:
        raise HeaderError(
            f"a header line is over {_MAX_LINE} characters, which SMTP refuses; "
            "shorten the subject, names or extra headers",
            header="(several)",
        )
    return data


def _refuse_head() -> NoReturn:
    raise HeaderError(
        "a header value would have made other headers than were set; "
        "remove unusual characters from the subject, names and extra headers",
        header="(several)",
    )


def body(message: OutgoingMessage, *, boundary: Callable[[], str] | None = None) -> Part:
    """The MIME structure of ``message``: text, text+HTML alternative, attachments.

    ``boundary`` makes a fresh multipart boundary (tests pass their own).
    """
    make = boundary or _random_boundary
    part = text_part("plain", message.text, "text")
    if message.html is not None:
        html = text_part("html", message.html, "html")
        part = multipart("alternative", (part, html), make)
    if message.attachments:
        attached = tuple(attachment_part(attachment) for attachment in message.attachments)
        part = multipart("mixed", (part, *attached), make)
    return part


def text_part(subtype: str, text: str, what: str) -> Part:
    """A text/``subtype`` part in UTF-8: 7bit if it can be, else quoted-printable.

    Line ends become CRLF, and the text gets a final line end if it has none.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise MessageError(
            f"the {what} part holds characters that are not valid Unicode text "
            "(lone surrogates); send it as UTF-8 text"
        ) from None
    # LF line ends first, and one at the end.
    if b"\r" in data:
        data = b"\n".join(data.splitlines()) + b"\n"  # bytes: CRLF, CR and LF only
    elif not data.endswith(b"\n"):
        data += b"\n"
    # What is left after deleting TAB, LF and printable ASCII needs encoding.
    if not data.translate(None, _SEVEN_BIT) and (
        len(data) <= _MAX_LINE or max(map(len, data.split(b"\n"))) <= _MAX_LINE
    ):
        cte, encoded, opaque = "7bit", data.replace(b"\n", b"\r\n"), False
    else:
        # b2a_qp keeps LF as the line end and soft-breaks with "=" LF; no CR is left.
        qp = binascii.b2a_qp(data, istext=True)
        cte, encoded, opaque = "quoted-printable", qp.replace(b"\n", b"\r\n"), True
    headers = (
        ("Content-Type", f'text/{subtype}; charset="utf-8"'),
        ("Content-Transfer-Encoding", cte),
    )
    return Part(headers, encoded, opaque)


def attachment_part(attachment: Attachment) -> Part:
    """An attachment: base64, with its safe file name in Content-Disposition."""
    filename = check_header_text("attachment filename", safe_filename(attachment.filename))
    maintype, subtype = attachment.maintype, attachment.subtype
    if maintype in ("multipart", "message"):
        # These types need a parsed MIME body; sent as bytes they would be malformed.
        maintype, subtype = "application", "octet-stream"
    headers = (
        ("Content-Type", f"{maintype}/{subtype}"),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", _disposition(filename)),
    )
    return Part(headers, _base64(attachment.content), opaque=True)


def multipart(subtype: str, parts: Sequence[Part], boundary: Callable[[], str]) -> Part:
    """A multipart/``subtype`` entity of ``parts``, with a boundary none of them holds."""
    bodies = [part.as_bytes() for part in parts]
    # QP and base64 bodies cannot hold the boundary; 7bit text and nested parts might.
    readable = [data for part, data in zip(parts, bodies, strict=True) if not part.opaque]
    marker = boundary()
    delimiter = b"--" + marker.encode("ascii")
    while any(delimiter in data for data in readable):
        marker = boundary()
        delimiter = b"--" + marker.encode("ascii")
    # Each body ends with CRLF; the CRLF before a delimiter belongs to the delimiter.
    between = b"\r\n" + delimiter + b"\r\n"
    data = delimiter + b"\r\n" + between.join(bodies) + b"\r\n" + delimiter + b"--\r\n"
    headers = (("Content-Type", f'multipart/{subtype}; boundary="{marker}"'),)
    return Part(headers, data, opaque=False)


def _random_boundary() -> str:
    # "=_" is in no quoted-printable or base64 text; the rest is unguessable.
    return f"=_{os.urandom(12).hex()}"


def _base64(content: bytes) -> bytes:
    encoded = binascii.b2a_base64(content, newline=False)
    lines = [encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE)]
    return b"\r\n".join(lines) + b"\r\n"


def _disposition(filename: str) -> str:
    """``attachment; filename=…``: a quoted string if ASCII, else RFC 2231 UTF-8."""
    if filename.isascii():
        escaped = filename.replace("\\", "\\\\").replace('"', '\\"')
        param = f'filename="{escaped}"'
        if len("Content-Disposition: attachment; ") + len(param) <= _LINE:
            return f"attachment; {param}"
        return f"attachment;\r\n {param}"  # up to ~210 characters, far below 998
    encoded = "utf-8''" + quote(filename.encode("utf-8"), safe=_ATTRIBUTE_CHARS)
    if len("Content-Disposition: attachment; filename*=") + len(encoded) <= _LINE:
        return f"attachment; filename*={encoded}"
    # RFC 2231 continuations, each on its own line, never splitting a %XX escape.
    sections: list[str] = []
    current = ""
    for piece in _PERCENT_ESCAPE.findall(encoded):
        if len(current) + len(piece) > _LINE - len(" filename*00*=;"):
            sections.append(current)
            current = ""
        current += piece
    sections.append(current)
    params = ";\r\n".join(f" filename*{index}*={text}" for index, text in enumerate(sections))
    return f"attachment;\r\n{params}"
