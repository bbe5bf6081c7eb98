"""``Users``: the directory as the CLI and host applications use it.

Users are referred to by username or id (a number is always an id: usernames never
are). Every value is checked by :mod:`postroom.users.rules` before the store sees it,
so an address in the directory is always a valid, normalised one or none at all.
Batch writes (``sync``, ``import_csv``) commit everything or nothing.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from sqlalchemy import Connection, Engine

from postroom.errors import DirectoryError, NameTakenError, NotFoundError, UserImportError
from postroom.store import directory_queries as queries
from postroom.store.directory import Directory, UpsertCounts, UserValues
from postroom.store.directory_queries import Group, User
from postroom.store.directory_schema import ROOT_ID
from postroom.users.csvimport import Problem, Row, read_users
from postroom.users.passwords import check_password, hash_password, needs_rehash, verify_password
from postroom.users.rules import (
    check_email,
    check_full_name,
    check_group_name,
    check_username,
    parse_bool,
    parse_updates,
    split_groups,
)

BATCH = 1000
SHOWN_PROBLEMS = 20  # problems named in the error's text; all are on the error


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import or sync did (or, dry, would do)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    groups_created: tuple[str, ...] = ()
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deactivated": self.deactivated,
            "groups_created": list(self.groups_created),
            "dry_run": self.dry_run,
        }


@dataclass
class _Tally:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    groups_created: list[str] = field(default_factory=list)

    def add(self, counts: UpsertCounts, rows: int) -> None:
        self.rows += rows
        self.created += counts.created
        self.updated += counts.updated
        self.unchanged += counts.unchanged
        self.groups_created += counts.groups_created


class Users:
    """The directory of users and groups."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = Directory(engine)

    # -- reading ---------------------------------------------------------------------

    def get(self, user: str | int) -> User:
        found = queries.get_user(self.engine, self.user_id(user))
        assert found is not None
        return found

    def list(
        self, *, include_inactive: bool = False, group: str | int | None = None
    ) -> builtins.list[User]:
        group_id = None if group is None else self.group_id(group)
        return queries.list_users(self.engine, include_inactive=include_inactive, group_id=group_id)

    def groups(self) -> builtins.list[Group]:
        return queries.list_groups(self.engine)

    def user_id(self, user: str | int) -> int:
        return self.user_ids([user])[0]

    def user_ids(self, refs: Sequence[str | int]) -> builtins.list[int]:
        """Ids of users given by username or id; unknown ones are one error naming all."""
        with self.engine.connect() as connection:
            found, unknown = Directory.user_ids(connection, refs)
        if unknown:
            raise NotFoundError(
                f"no user {', '.join(unknown)}; see `postroom user list --all`",
                names=tuple(unknown),
            )
        return [found[str(ref).strip()] for ref in refs]

    def group_id(self, group: str | int) -> int:
        return self.group_ids([group])[0]

    def group_ids(self, refs: Sequence[str | int]) -> builtins.list[int]:
        with self.engine.connect() as connection:
            found, unknown = Directory.group_ids(connection, refs)
        if unknown:
            raise NotFoundError(
                f"no group {', '.join(unknown)}; see `postroom group list`",
                names=tuple(unknown),
            )
        return [found[str(ref).strip()] for ref in refs]

    # -- one user --------------------------------------------------------------------

    def add(
        self,
        username: str,
        *,
        full_name: str = "",
        email: str | None = None,
        admin: bool = False,
        groups: Sequence[str | int] = (),
    ) -> User:
        """Add a user; the groups must exist (``add_group``)."""
        name = check_username(username)
        values = (check_full_name(full_name), check_email(email))
        group_ids = self.group_ids(groups) if groups else []
        user_id = self.store.add_user(
            name, full_name=values[0], email=values[1], admin=admin, group_ids=group_ids
        )
        if user_id is None:
            raise NameTakenError(
                f"user {name!r} exists already; change it with `postroom user update {name} "
                "KEY=VALUE`",
                names=(name,),
            )
        return self.get(user_id)

    def update(self, user: str | int, **changes: Any) -> User:
        """Change ``full_name``, ``email`` (None removes it), ``admin`` or ``active``."""
        return self.update_items(user, [f"{key}={_text(value)}" for key, value in changes.items()])

    def update_items(self, user: str | int, items: Iterable[str]) -> User:
        """``user update USER key=value...``: name/full_name, email, admin, active."""
        user_id = self.user_id(user)
        values = parse_updates(items)
        if user_id == ROOT_ID and (values.get("admin") is False or values.get("active") is False):
            raise DirectoryError(
                "root stays an active admin; give another user admin=true and leave root be",
                names=("root",),
            )
        self.store.update_user(user_id, values)
        return self.get(user_id)

    # -- console passwords -----------------------------------------------------------

    def set_password(self, user: str | int, password: str | None) -> User:
        """Set (or with None, remove) the user's console password; only active admins
        can log in with one."""
        found = self.get(user)
        if password is None:
            self.store.set_password_hash(found.id, None)
        else:
            check_password(password, username=found.username)
            self.store.set_password_hash(found.id, hash_password(password))
        return found

    def console_admins(self) -> int:
        """How many active admins have a console password."""
        return self.store.admins_with_password()

    def has_password(self, user: str | int) -> bool:
        found = self.store.login_of(self.get(user).username)
        return found is not None and found[2] is not None

    def login(self, username: str, password: str) -> User | None:
        """The active admin ``username`` if ``password`` is theirs, else None (the same
        work either way). A hash made with older parameters is replaced."""
        found = self.store.login_of(username.strip())
        stored = found[2] if found is not None else None
        if not verify_password(stored, password) or found is None or not found[1]:
            return None
        if stored is not None and needs_rehash(stored):
            self.store.set_password_hash(found[0], hash_password(password))
        return self.get(found[0])

    def activate(self, user: str | int) -> User:
        return self.update_items(user, ["active=true"])

    def deactivate(self, user: str | int) -> User:
        return self.update_items(user, ["active=false"])

    def upsert(
        self,
        username: str,
        *,
        full_name: str | None = None,
        email: str | None = None,
        admin: bool | None = None,
        active: bool | None = None,
        groups: Sequence[str] = (),
    ) -> User:
        """Create the user or update it; arguments left ``None`` keep what is stored.
        Groups named are joined (and created when missing), never left."""
        spec = {"username": username, "full_name": full_name, "admin": admin, "active": active}
        spec = {k: v for k, v in spec.items() if v is not None}
        if email is not None:
            spec["email"] = email
        self.sync([{**spec, "groups": list(groups)}])
        return self.get(check_username(username))

    # -- batches ---------------------------------------------------------------------

    def sync(
        self, people: Iterable[Mapping[str, Any]], *, deactivate_missing: bool = False
    ) -> ImportReport:
        """Push the host application's users: each mapping has ``username`` and any of
        ``full_name`` (or ``name``), ``email`` (None or "" removes it), ``admin``,
        ``active``, ``groups`` (a list, or names separated by ; or |). With
        ``deactivate_missing``, active users not given are deactivated (never root).
        Nothing is stored if any entry is refused."""
        rows = (_from_mapping(index, person) for index, person in enumerate(people, start=1))
        return self._write(rows, what="entry", deactivate_missing=deactivate_missing)

    def import_csv(
        self, stream: TextIO, *, update_existing: bool = True, dry_run: bool = False
    ) -> ImportReport:
        """Import users from CSV (see :mod:`postroom.users.csvimport`). Existing usernames
        are updated, or with ``update_existing=False`` refused as bad rows. Nothing is
        stored if any row is bad, or with ``dry_run``."""
        return self._write(
            read_users(stream), what="line", update_existing=update_existing, dry_run=dry_run
        )

    def _write(
        self,
        rows: Iterable[Row | Problem],
        *,
        what: str,
        update_existing: bool = True,
        deactivate_missing: bool = False,
        dry_run: bool = False,
    ) -> ImportReport:
        now = time.time()
        problems: list[tuple[int, str]] = []
        tally = _Tally()
        cache: dict[str, int] = {}
        seen: set[str] = set()
        deactivated = 0
        with self.engine.connect() as connection, connection.begin() as transaction:
            for batch in _batches(rows, problems, what):
                if not update_existing:
                    problems += _existing(connection, batch)
                if deactivate_missing:
                    seen.update(row.values.username for row in batch)
                if problems:
                    continue  # keep reading to report every bad row; write no more
                counts = self.store.upsert(
                    connection, [row.values for row in batch], group_cache=cache, now=now
                )
                tally.add(counts, len(batch))
            if deactivate_missing and not problems:
                deactivated = self.store.deactivate_others(
                    connection, seen, protected=(ROOT_ID,), now=now
                )
            if problems or dry_run:
                transaction.rollback()
        if problems:
            raise _import_error(problems, what)
        return ImportReport(
            rows=tally.rows,
            created=tally.created,
            updated=tally.updated,
            unchanged=tally.unchanged,
            deactivated=deactivated,
            groups_created=tuple(tally.groups_created),
            dry_run=dry_run,
        )

    # -- groups ----------------------------------------------------------------------

    def add_group(self, name: str) -> Group:
        checked = check_group_name(name)
        if self.store.add_group(checked) is None:
            raise NameTakenError(f"group {checked!r} exists already", names=(checked,))
        return next(g for g in self.groups() if g.name == checked)

    def members(
        self,
        group: str | int,
        *,
        add: Sequence[str | int] = (),
        remove: Sequence[str | int] = (),
    ) -> tuple[str, builtins.list[User]]:
        """Change a group's members; returns its name and its members (inactive too)."""
        group_id = self.group_id(group)
        to_add = self.user_ids(add) if add else []
        to_remove = self.user_ids(remove) if remove else []
        if to_add or to_remove:
            self.store.change_members(group_id, add=to_add, remove=to_remove)
        name = queries.group_name(self.engine, group_id) or str(group)
        return name, queries.list_users(self.engine, include_inactive=True, group_id=group_id)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_mapping(index: int, person: Mapping[str, Any]) -> Row | Problem:
    known = {"username", "full_name", "name", "email", "admin", "active", "groups"}
    unknown = sorted(set(person) - known)
    try:
        if unknown:
            raise DirectoryError(f"unknown field(s) {', '.join(unknown)}; use {sorted(known)}")
        if "username" not in person:
            raise DirectoryError("no username")
        full_name = person.get("full_name", person.get("name"))
        groups = person.get("groups") or ()
        group_text = groups if isinstance(groups, str) else ";".join(str(g) for g in groups)
        email = person.get("email", ...)
        values = UserValues(
            username=check_username(str(person["username"])),
            full_name=None if full_name is None else check_full_name(str(full_name)),
            email=None if email is ... else check_email(email),
            clear_email=email is not ... and not email,
            admin=None if person.get("admin") is None else parse_bool("admin", person["admin"]),
            active=None if person.get("active") is None else parse_bool("active", person["active"]),
            groups=split_groups(group_text),
        )
    except DirectoryError as exc:
        return Problem(index, str(exc))
    return Row(index, values)


def _batches(
    rows: Iterable[Row | Problem], problems: list[tuple[int, str]], what: str
) -> Iterator[list[Row]]:
    """Good rows in batches (repeated usernames refused); problems collected aside."""
    batch: list[Row] = []
    first_line: dict[str, int] = {}
    for item in rows:
        if isinstance(item, Problem):
            problems.append((item.line, item.text))
            continue
        line = first_line.setdefault(item.values.username, item.line)
        if line != item.line:
            problems.append(
                (item.line, f"username {item.values.username!r} is already on {what} {line}")
            )
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _existing(connection: Connection, batch: list[Row]) -> list[tuple[int, str]]:
    found, _ = Directory.user_ids(connection, [row.values.username for row in batch])
    return [
        (row.line, f"user {row.values.username!r} exists already (and existing users are refused)")
        for row in batch
        if row.values.username in found
    ]


def _import_error(problems: list[tuple[int, str]], what: str) -> UserImportError:
    problems.sort()
    shown = [f"{what} {line}: {text}" for line, text in problems[:SHOWN_PROBLEMS]]
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more")
    return UserImportError(
        f"{len(problems)} bad {what}(s), nothing imported:\n  " + "\n  ".join(shown),
        problems=tuple(problems),
    )
