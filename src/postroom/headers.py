"""The header guard: no line break or NUL reaches a header or the SMTP envelope.

Python's ``email`` package before 3.11.10 / 3.12.5 (CVE-2024-6923) writes a newline
that arrives inside an RFC 2047 encoded word (``=?utf-8?q?a=0Ab?=``) out as a real line
break, i.e. a new header. Postroom therefore checks every header value itself, raw
and decoded, before the ``email`` package sees it. This module is pure and sits at
the bottom of the layers so that settings, composing and transports share it.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NoReturn

from postroom.errors import HeaderError

# C0 controls except TAB, DEL, C1 controls (U+0085 is a line end to str.splitlines()),
# the Unicode line and paragraph separators, and lone surrogates (not encodable).
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_FORBIDDEN_BYTES = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
# Everything the email package's parser would decode as an encoded word: it splits
# "=?charset?cte?text?=" on "?", accepts whitespace inside (with a mere defect), and
# when the text starts with "=XX" it runs to the next "?=" or to the end of the value.
# The lookahead finds overlapping candidates too, so none hides behind another.
_ENCODED_WORD = re.compile(r"(?=(=\?([^?]*)\?([QqBb])\?([^?]*)(?:\?=|\Z)))")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
# RFC 5322 field name: printable ASCII except colon and space.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# What an envelope part may not hold: the forbidden characters, space, TAB and <>.
_ENVELOPE_FORBIDDEN = re.compile("[\x00-\x20<>\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _plain_ascii(value: str) -> bool:
    """Printable ASCII (space included, TAB not) without "=?": nothing to check.

    Every forbidden character is a control or non-ASCII, and every encoded word starts
    with "=?", so such a value passes the checks below without running them.
    """
    return value.isascii() and value.isprintable() and "=?" not in value


def _describe(char: str) -> str:
    names = {"\r": "CR", "\n": "LF", "\x00": "NUL"}
    return names.get(char, f"U+{ord(char):04X}")


def _decodings(cte: str, text: str) -> list[bytes]:
    """Every byte string a lenient decoder could make of an encoded word's text."""
    raw = text.encode("utf-8", "surrogateescape")
    if cte in "Qq":
        return [
            _Q_ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode()), raw.replace(b"_", b" "))
        ]
    found = []
    # The email package retries base64 with padding added; try each padding it may add.
    for padding in (b"", b"=", b"==", b"==="):
        try:
            found.append(binascii.a2b_base64(raw + padding))
        except binascii.Error:
            continue
    return found


def encoded_words(value: str) -> list[str]:
    """The RFC 2047 encoded words in ``value``, as a reader's parser would find them."""
    return [match.group(1) for match in _ENCODED_WORD.finditer(value)]


def check_header_value(name: str, value: str) -> str:
    """Return ``value`` unchanged if it is safe in header ``name``, else raise HeaderError.

    Refused: CR, LF, NUL, any other control or line-separator character, lone
    surrogates, and encoded words whose decoded text contains one of those.
    """
    if _plain_ascii(value):
        return value
    if found := _FORBIDDEN.search(value):
        raise HeaderError(
            f"header {name} contains a {_describe(found.group())} character; "
            "remove line breaks and control characters from it",
            header=name,
        )
    if "=?" not in value:  # no encoded word without it
        return value
    for match in _ENCODED_WORD.finditer(value):
        word, charset, cte, text = match.groups()
        for data in _decodings(cte, text):
            if byte := _FORBIDDEN_BYTES.search(data):
                _refuse_encoded(name, word, byte.group().decode("ascii"))
            try:
                decoded = data.decode(charset.partition("*")[0] or "ascii", "replace")
            except LookupError:
                raise HeaderError(
                    f"header {name} contains an encoded word that cannot be decoded: "
                    f"{word!r}; send the text itself, not pre-encoded",
                    header=name,
                ) from None
            if found := _FORBIDDEN.search(decoded):
                _refuse_encoded(name, word, found.group())
    return value


def _refuse_encoded(name: str, word: str, char: str) -> NoReturn:
    raise HeaderError(
        f"header {name} contains an encoded {_describe(char)} character "
        f"in {word!r}; send the text itself, without line breaks",
        header=name,
    )


def check_header_text(name: str, value: str) -> str:
    """Like :func:`check_header_value`, and refuse encoded words altogether.

    For text postroom encodes itself (subject, display names, extra header values): a
    pre-encoded word would reach the reader decoded, i.e. as other text than was given.
    """
    check_header_value(name, value)
    if "=?" in value and (words := encoded_words(value)):
        raise HeaderError(
            f"header {name} contains the RFC 2047 encoded word {words[0]!r}; "
            "send the plain text, postroom encodes it",
            header=name,
        )
    return value


def check_header_name(name: str) -> str:
    """Return ``name`` if it is a valid RFC 5322 field name, else raise HeaderError."""
    if not _FIELD_NAME.fullmatch(name):
        raise HeaderError(
            f"{name!r} is not a valid header name; use letters, digits and '-' only",
            header=name,
        )
    return name


def check_envelope_text(what: str, value: str) -> str:
    """Envelope parts (MAIL FROM, RCPT TO, EHLO name) take no controls and no spaces."""
    if _ENVELOPE_FORBIDDEN.search(value):
        raise HeaderError(
            f"{what} {value!r} contains a space, angle bracket or control character; "
            "give a plain address",
            header=what,
        )
    return value


# -- encoding ---------------------------------------------------------------------------
# Python 3.11's header folder drops the quotes of a long display name when it folds it
# (so "x…x, bob@evil.example" <a@b> becomes two addresses) and loses spaces between
# encoded words. Postroom therefore encodes and folds the values it sets itself; the
# message is written with them as they are (postroom.message.mime).

_LINE = 78  # RFC 5322's recommended length; only a single long token goes past it
_EW_BYTES = 45  # 45 bytes → 60 base64 characters → a 72-character encoded word (max 75)
_LONG_WORD = 900  # a literal word this long could break the 998-character limit
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_ATOMS = re.compile(rf"{_ATEXT}(?: {_ATEXT})*")
_PIECE = re.compile(r"([ \t]*)([^ \t]+[ \t]*$|[^ \t]+)")


def _b_words(text: str) -> list[str]:
    """``text`` as base64 encoded words, split between characters, never inside one."""
    words: list[str] = []
    chunk = b""
    for char in text:
        data = char.encode("utf-8")
        if chunk and len(chunk) + len(data) > _EW_BYTES:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = b""
        chunk += data
    if chunk:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _fold(name: str, tokens: list[tuple[str, str]]) -> str:
    """Join (separator, token) pairs, breaking lines in front of separators.

    A separator is whitespace, so a line break before it unfolds back to the same text.
    """
    used = len(name) + 2
    if used + sum(len(separator) + len(token) for separator, token in tokens) <= _LINE:
        return "".join(separator + token for separator, token in tokens)  # one line
    out: list[str] = []
    for separator, token in tokens:
        if separator and out and used + len(separator) + len(token) > _LINE:
            out.append("\r\n")
            used = 0
        out.append(separator + token)
        used += len(separator) + len(token)
    return "".join(out)


def _plain(word: str) -> bool:
    return word.isascii() and word.isprintable() and "=?" not in word and len(word) < _LONG_WORD


def encode_text(name: str, text: str) -> str:
    """The folded value of header ``name`` holding unstructured ``text``.

    ASCII words stay as they are; runs of other words become encoded words (with their
    inner whitespace inside them), so a reader decodes exactly ``text``.
    """
    check_header_value(name, text)
    if _plain(text) and text[:1] != " " and len(name) + 2 + len(text) <= _LINE:
        return text  # printable ASCII that fits one line: every word stays as it is
    if not text.strip(" \t"):
        return _fold(name, [("", word) for word in _b_words(text)])
    pieces = _PIECE.findall(text)
    tokens: list[tuple[str, str]] = []
    index = 0
    while index < len(pieces):
        space, word = pieces[index]
        # Leading whitespace is lost on unfolding unless it is inside an encoded word.
        if _plain(word) and (index or not space):
            tokens.append((space, word))
            index += 1
            continue
        end = index + 1
        while end < len(pieces) and not _plain(pieces[end][1]):
            end += 1
        run = "".join(s + w for s, w in pieces[index:end])
        # Whitespace before the run stays literal (it separates); at the start, encode it.
        if index:
            run = run[len(space) :]
        else:
            space = ""
        words = _b_words(run)
        tokens.append((space, words[0]))
        tokens.extend((" ", word) for word in words[1:])
        index = end
    return _fold(name, tokens)


def _phrase(display_name: str) -> list[str]:
    if not display_name:
        return []
    if _plain(display_name):  # printable ASCII (spaces included), not too long
        if _ATOMS.fullmatch(display_name):
            return display_name.split(" ")
        escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
        if len(escaped) < _LONG_WORD:  # escaping can double it, past the line limit
            return [f'"{escaped}"']
    return _b_words(display_name)


def encode_addresses(name: str, mailboxes: list[tuple[str, str]]) -> str:
    """The folded value of address header ``name``: (display name, addr-spec) pairs.

    A display name is atoms, a quoted string (kept whole on its line, however long), or
    encoded words. Addr-specs must be checked already.
    """
    parts: list[str] = []
    for display_name, addr_spec in mailboxes:
        if parts:
            parts[-1] += ","
        if len(display_name) < _LONG_WORD:
            parts += _mailbox_parts_cached(name, display_name, addr_spec)
        else:  # not worth keeping
            parts += _mailbox_parts(name, display_name, addr_spec)
    line = " ".join(parts)
    if len(name) + 2 + len(line) <= _LINE:
        return line
    return _fold(name, [(" " if index else "", part) for index, part in enumerate(parts)])


def _mailbox_parts(name: str, display_name: str, addr_spec: str) -> tuple[str, ...]:
    """The words of one mailbox in header ``name``; pure, so mostly kept (below)."""
    check_header_value(name, display_name)
    check_header_value(name, addr_spec)
    words = _phrase(display_name)
    return (*words, f"<{addr_spec}>") if words else (addr_spec,)


_mailbox_parts_cached = lru_cache(maxsize=4096)(_mailbox_parts)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(60))
_NO_OFFSET = timedelta(0)


def format_date(when: datetime) -> str:
    """RFC 5322 date-time, as email.utils.format_datetime writes it, in a third the time.

    A naive ``when`` gets -0000, the offset of a local time that is not known.
    """
    offset = when.utcoffset()
    zone = when.strftime("%z") if offset else "+0000" if offset == _NO_OFFSET else "-0000"
    return (
        f"{_DAYS[when.weekday()]}, {_TWO_DIGITS[when.day]} {_MONTHS[when.month - 1]} "
        f"{when.year:04d} {_TWO_DIGITS[when.hour]}:{_TWO_DIGITS[when.minute]}:"
        f"{_TWO_DIGITS[when.second]} {zone}"
    )
