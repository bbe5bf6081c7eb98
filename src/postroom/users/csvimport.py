"""Reading a user import: CSV with a header row of username,name,email,admin,groups.

Pure: a text stream in, checked rows or problems (each with its line number) out.
A column present sets that value for every row, empty included (an empty email
removes the address, an empty admin is false); a column left out of the header leaves
what is stored alone. Groups are joined, never left; ``;`` or ``|`` separate them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from postroom.errors import DirectoryError
from postroom.store.directory import UserValues
from postroom.users.rules import (
    check_email,
    check_full_name,
    check_username,
    parse_bool,
    split_groups,
)

COLUMNS = ("username", "name", "email", "admin", "groups", "active")
_ALIASES = {"full_name": "name", "fullname": "name", "group": "groups", "mail": "email"}


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: UserValues


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    text: str


def read_users(stream: TextIO) -> Iterator[Row | Problem]:
    """Every data row of the CSV in ``stream`` as a Row, or a Problem naming its line.

    A header that is missing or names unknown columns is a Problem on line 1 and ends
    the reading.
    """
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield Problem(1, f"not CSV: {exc}")
        return
    if header is None:
        yield Problem(
            1, "the file is empty; the first line names the columns: " + ",".join(COLUMNS)
        )
        return
    names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    unknown = [h for h in names if h not in COLUMNS]
    if "username" not in names or unknown or len(set(names)) != len(names):
        why = (
            f"unknown column(s) {', '.join(unknown)}"
            if unknown
            else "a column is named twice"
            if len(set(names)) != len(names)
            else "no username column"
        )
        yield Problem(1, f"{why}; the first line names the columns, from: {', '.join(COLUMNS)}")
        return
    previous = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Problem(reader.line_num, f"not CSV: {exc}")
            return
        line, previous = previous + 1, reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(names):
            yield Problem(line, f"{len(fields)} fields, the header names {len(names)}")
            continue
        try:
            values = _values(dict(zip(names, fields, strict=True)))
        except DirectoryError as exc:
            yield Problem(line, str(exc))
            continue
        yield Row(line, values)


def _values(row: dict[str, str]) -> UserValues:
    email = row.get("email")
    active = row.get("active")
    return UserValues(
        username=check_username(row["username"]),
        full_name=None if "name" not in row else check_full_name(row["name"]),
        email=None if email is None else check_email(email),
        clear_email=email is not None and not email.strip(),
        admin=None if "admin" not in row else parse_bool("admin", row["admin"]),
        active=None if active is None else parse_bool("active", active or "true"),
        groups=split_groups(row.get("groups", "")),
    )
