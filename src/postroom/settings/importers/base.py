"""What an import plan holds, and the file readers every importer shares.

An importer reads a peer's file and says, key by key, what it maps onto ours and
what it leaves out and why. It never parses our values nor writes anything: the
plan holds raw strings, and applying it goes through the normal parsers and one
atomic ``update_file``, so a bad value or a conflict leaves postroom.toml as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from postroom.errors import ConfigImportError
from postroom.settings.values import MASK


@dataclass(frozen=True, slots=True)
class Mapped:
    """A peer key whose value becomes one of our settings."""

    source_key: str
    key: str
    raw_value: str
    secret: bool = False
    #: Why the mapping is not one-to-one (unit change, which key won), for the admin.
    note: str = ""

    @property
    def shown(self) -> str:
        """The value as a person may see it: secrets masked."""
        return MASK if self.secret and self.raw_value else self.raw_value


@dataclass(frozen=True, slots=True)
class Ignored:
    """A peer key left out, with the reason the admin needs to act (or not)."""

    source_key: str
    reason: str


#: Why a key that has nothing to do with mail is not imported.
NOT_MAIL = ("not a mail setting", "not mail settings")


@dataclass
class ImportPlan:
    """Everything an importer found in one file: what maps onto ours and what does not."""

    kind: str
    path: Path
    mapped: list[Mapped] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    #: Our key -> how to fix it in the peer's own terms, used when applying fails.
    hints: dict[str, str] = field(default_factory=dict)

    def map(
        self, source_key: str, key: str, raw_value: str, *, secret: bool = False, note: str = ""
    ) -> None:
        self.mapped.append(Mapped(source_key, key, raw_value, secret, note))

    def ignore(self, source_key: str, reason: str) -> None:
        self.ignored.append(Ignored(source_key, reason))

    def unusable_mail_settings(self) -> list[Ignored]:
        """The ignored keys that are mail settings of this peer (not unrelated keys)."""
        return [i for i in self.ignored if i.reason not in NOT_MAIL]

    def has(self, key: str) -> bool:
        return any(m.key == key for m in self.mapped)

    def values(self) -> dict[str, str]:
        """Our key -> raw value, ready for ``update_file``; one peer key per setting."""
        values: dict[str, str] = {}
        for item in self.mapped:
            if item.key in values:
                raise AssertionError(f"{item.key} mapped twice in the {self.kind} import")
            values[item.key] = item.raw_value
        return values

    def error(self, message: str, *, line: int | None = None) -> ConfigImportError:
        return ConfigImportError(message, path=str(self.path), line=line)


def read_text(path: Path) -> str:
    """The file as text: UTF-8, else Latin-1 (what Java's Properties.load assumes)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigImportError(
            "no such file; give the path of the peer's file", path=str(path)
        ) from None
    except IsADirectoryError:
        raise ConfigImportError(
            "is a folder; give the path of the file in it", path=str(path)
        ) from None
    except OSError as exc:
        raise ConfigImportError(
            f"cannot read it ({exc.strerror}); check its permissions", path=str(path)
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# -- Java .properties ------------------------------------------------------------------

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _ends_in_escape(line: str) -> bool:
    """An odd number of trailing backslashes continues the line; an even one is literal."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _unescape(text: str, line: int, path: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(text):
            break
        code = text[i + 1]
        if code == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ConfigImportError(
                    f"malformed \\u escape {text[i : i + 6]!r}; write \\u and four hex digits",
                    path=path,
                    line=line,
                )
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(_ESCAPES.get(code, code))
            i += 2
    # \uD83D\uDE00 is one character in Java's UTF-16; join such pairs as Java would.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _split(logical: str) -> tuple[str, str]:
    """Key ends at the first unescaped ``=``, ``:`` or blank; one separator is skipped."""
    i = 0
    while i < len(logical):
        if logical[i] == "\\":
            i += 2
            continue
        if logical[i] in "=:" or logical[i] in _WHITESPACE:
            break
        i += 1
    key, j = logical[:i], i
    while j < len(logical) and logical[j] in _WHITESPACE:
        j += 1
    if j < len(logical) and logical[j] in "=:":
        j += 1
    while j < len(logical) and logical[j] in _WHITESPACE:
        j += 1
    return key, logical[j:]


def parse_properties(text: str, *, path: str = "<text>") -> dict[str, str]:
    """Parse Java ``.properties`` text as ``java.util.Properties.load`` does.

    ``key=value``, ``key: value`` and ``key value``; ``#`` and ``!`` comment lines; a
    trailing backslash continues the line (the next line's leading blanks dropped);
    ``\\u`` + four hex digits and ``\\t``-style escapes. A later duplicate wins, as in Java.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        number = index + 1
        logical = lines[index].lstrip(_WHITESPACE)
        index += 1
        if not logical or logical[0] in "#!":
            continue
        while _ends_in_escape(logical):
            logical = logical[:-1]
            if index >= len(lines):
                break
            logical += lines[index].lstrip(_WHITESPACE)
            index += 1
        raw_key, raw_value = _split(logical)
        found[_unescape(raw_key, number, path)] = _unescape(raw_value, number, path)
    return found


def read_properties(path: Path) -> dict[str, str]:
    """A ``.properties`` file (or ``omero config get`` output) as key -> value."""
    return parse_properties(read_text(path), path=str(path))


# -- helpers shared by the importers ---------------------------------------------------

_MAIL_LOOKING = re.compile(r"mail|smtp", re.IGNORECASE)


def looks_mail_related(key: str) -> bool:
    return bool(_MAIL_LOOKING.search(key))


def ignore_unrelated(plan: ImportPlan, keys: Iterable[str], *, reason: str) -> None:
    """List keys that look like mail settings one by one; count the rest in one line.

    A production file holds hundreds of keys that have nothing to do with mail; listing
    them all would bury the few lines the admin must read.
    """
    others: list[str] = []
    for key in keys:
        if looks_mail_related(key):
            plan.ignore(key, reason)
        else:
            others.append(key)
    if len(others) <= 3:
        for key in others:
            plan.ignore(key, NOT_MAIL[0])
    else:
        plan.ignore(f"({len(others)} other keys)", NOT_MAIL[1])


def parse_peer_bool(plan: ImportPlan, key: str, value: str) -> bool:
    """A yes/no the way Python peers (TurboGears asbool, Django) read one."""
    text = value.strip().lower()
    if text in {"true", "yes", "on", "y", "t", "1"}:
        return True
    if text in {"false", "no", "off", "n", "f", "0", ""}:
        return False
    raise plan.error(f"{key} = {value.strip()!r} is not true or false; write true or false")


def format_seconds(milliseconds: int) -> str:
    """``60000`` -> ``60``, ``1500`` -> ``1.5``: exact, no float rounding."""
    whole, rest = divmod(milliseconds, 1000)
    return str(whole) if not rest else f"{whole}.{rest:03d}".rstrip("0")


def mailbox(name: str, address: str) -> str:
    """``Name <addr>``, quoting the name when it holds characters special in headers."""
    name, address = name.strip(), address.strip()
    if not name:
        return address
    if re.search(r'[()<>\[\]:;@\\,."]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"
