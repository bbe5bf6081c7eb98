"""What the directory accepts: usernames, group names, full names, addresses, flags.

Pure functions: a value in, the checked (normalised) value out, or a DirectoryError
whose one line names the value and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from postroom.addresses import parse_address
from postroom.errors import DirectoryError, MessageError
from postroom.headers import check_header_value

MAX_NAME = 64
MAX_FULL_NAME = 255
# Letters, digits and . _ @ + -; not starting with a dot or dash. A username is never
# all digits, so that a number given where a user is expected is always an id.
_USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]*")
# Separators of a list of groups on one line (CSV import): never in a group name.
GROUP_SEPARATORS = ";|"
_GROUP_FORBIDDEN = set(GROUP_SEPARATORS + ",")
_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off", ""}
#: Keys of ``user update USER key=value``, and the column each one sets.
UPDATE_KEYS = {
    "name": "full_name",
    "full_name": "full_name",
    "email": "email",
    "admin": "admin",
    "active": "active",
}


def check_username(text: str) -> str:
    name = text.strip()
    if not name:
        raise DirectoryError("a username cannot be empty; give one such as ada or a.lovelace")
    if len(name) > MAX_NAME:
        raise DirectoryError(
            f"username {name[:20]!r}… is {len(name)} characters long; use at most {MAX_NAME}",
            names=(name,),
        )
    if name.isdigit():
        raise DirectoryError(
            f"username {name!r} is a number, and numbers name users by id; "
            "add a letter (e.g. u" + name + ")",
            names=(name,),
        )
    if not _USERNAME.fullmatch(name):
        raise DirectoryError(
            f"username {name!r} may hold only letters, digits and . _ @ + - "
            "(and not start with . or -)",
            names=(name,),
        )
    return name


def check_group_name(text: str) -> str:
    name = " ".join(text.split())
    if not name:
        raise DirectoryError("a group name cannot be empty; give one such as lab-admins")
    if len(name) > MAX_NAME:
        raise DirectoryError(
            f"group name {name[:20]!r}… is {len(name)} characters long; use at most {MAX_NAME}",
            names=(name,),
        )
    if name.isdigit():
        raise DirectoryError(
            f"group name {name!r} is a number, and numbers name groups by id; add a letter",
            names=(name,),
        )
    bad = sorted(_GROUP_FORBIDDEN.intersection(name))
    if bad or not name.isprintable():
        shown = " ".join(bad) if bad else "control characters"
        raise DirectoryError(
            f"group name {name!r} cannot hold {shown} (they separate groups in imports)",
            names=(name,),
        )
    return name


def check_full_name(text: str) -> str:
    name = " ".join(text.split())
    if len(name) > MAX_FULL_NAME:
        raise DirectoryError(
            f"full name {name[:20]!r}… is {len(name)} characters long; use at most {MAX_FULL_NAME}"
        )
    try:
        return check_header_value("full name", name)
    except MessageError as exc:
        raise DirectoryError(f"full name {name!r}: {exc}") from None


def check_email(text: str | None) -> str | None:
    """The normalised address (IDN domains as punycode), or None for no address."""
    if text is None or not text.strip():
        return None
    try:
        return parse_address(text.strip(), allow_name=False).addr_spec
    except MessageError as exc:
        raise DirectoryError(str(exc), names=(text,)) from None


def parse_bool(key: str, text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DirectoryError(f"{key}={text!r} is not true or false; write {key}=true or {key}=false")


def split_groups(text: str) -> tuple[str, ...]:
    """``lab; imaging|admins`` → the checked group names, without repeats."""
    pieces = re.split(f"[{re.escape(GROUP_SEPARATORS)}]", text)
    return tuple(dict.fromkeys(check_group_name(p) for p in pieces if p.strip()))


def parse_updates(items: Iterable[str]) -> dict[str, object]:
    """``["email=root@university.example", "admin=true"]`` → checked column values."""
    values: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in UPDATE_KEYS:
            raise DirectoryError(
                f"{item!r} is not KEY=VALUE with a known key; use "
                f"{', '.join(sorted(UPDATE_KEYS))} (e.g. email=root@university.example)"
            )
        column = UPDATE_KEYS[key]
        if column in values:
            raise DirectoryError(f"{key} is given twice; give each key once")
        if column == "full_name":
            values[column] = check_full_name(raw)
        elif column == "email":
            values[column] = check_email(raw)
        else:
            values[column] = parse_bool(key, raw)
    if not values:
        raise DirectoryError(
            "nothing to update; give KEY=VALUE, e.g. email=root@university.example"
        )
    return values
