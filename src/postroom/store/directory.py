"""The directory's write paths: users, groups and members (SQL only).

Values arrive checked by :mod:`postroom.users.rules`; this module only reads and writes.
Batch writes (:meth:`Directory.upsert`) take a connection so that an import of many
chunks commits once, or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from postroom.store.directory_schema import groups, members, users

_insert_user = insert(users).returning(users.c.id, sort_by_parameter_order=True)
_update_user = (
    update(users)
    .where(users.c.id == bindparam("u_id"))
    .values(
        full_name=bindparam("u_full_name"),
        email=bindparam("u_email"),
        admin=bindparam("u_admin"),
        active=bindparam("u_active"),
        updated_at=bindparam("u_now"),
    )
)


@dataclass(frozen=True, slots=True)
class UserValues:
    """A user as a batch write sets it; ``None`` leaves a stored value as it is (a new
    user gets the default: no name, no address, not admin, active)."""

    username: str
    full_name: str | None = None
    email: str | None = None
    clear_email: bool = False  # email=None and this: remove the address
    admin: bool | None = None
    active: bool | None = None
    groups: tuple[str, ...] = ()  # joined (created when missing); never left


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    groups_created: tuple[str, ...] = ()


def is_id(reference: str | int) -> bool:
    """A reference is an id when it is a number (usernames never are)."""
    return isinstance(reference, int) or reference.isdigit()


class Directory:
    """SQL of users and groups; each method without a connection commits on return."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- lookups ---------------------------------------------------------------------

    @staticmethod
    def user_ids(
        connection: Connection, references: Iterable[str | int]
    ) -> tuple[dict[str, int], list[str]]:
        """Map each reference (username or id) to a user id; also the unknown ones."""
        return _resolve(connection, references, users.c.id, users.c.username)

    @staticmethod
    def group_ids(
        connection: Connection, references: Iterable[str | int]
    ) -> tuple[dict[str, int], list[str]]:
        """Map each reference (group name or id) to a group id; also the unknown ones."""
        return _resolve(connection, references, groups.c.id, groups.c.name)

    # -- single changes ----------------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        full_name: str,
        email: str | None,
        admin: bool,
        group_ids: Sequence[int] = (),
    ) -> int | None:
        """Insert a user and its memberships; None when the username is taken."""
        now = time.time()
        with self.engine.begin() as connection:
            if connection.execute(select(users.c.id).where(users.c.username == username)).first():
                return None
            user_id = int(
                connection.execute(
                    insert(users).returning(users.c.id),
                    {
                        "username": username,
                        "full_name": full_name,
                        "email": email,
                        "admin": admin,
                        "active": True,
                        "created_at": now,
                        "updated_at": now,
                    },
                ).scalar_one()
            )
            if group_ids:
                connection.execute(
                    insert(members), [{"user_id": user_id, "group_id": g} for g in group_ids]
                )
        return user_id

    def update_user(self, user_id: int, values: dict[str, object]) -> bool:
        """Set columns (full_name, email, admin, active) of one user; False if unknown."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(users).where(users.c.id == user_id).values(**values, updated_at=time.time())
            )
        return bool(result.rowcount)

    def set_password_hash(self, user_id: int, password_hash: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=password_hash, updated_at=time.time())
            )

    def admins_with_password(self) -> int:
        """Active admins who can log in to the console."""
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).where(
                        users.c.admin.is_(True),
                        users.c.active.is_(True),
                        users.c.password_hash.is_not(None),
                    )
                ).scalar_one()
            )

    def login_of(self, username: str) -> tuple[int, bool, str | None] | None:
        """(id, whether an active admin, password hash) of a user, by exact username."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(users.c.id, users.c.admin, users.c.active, users.c.password_hash).where(
                    users.c.username == username
                )
            ).first()
        if row is None:
            return None
        return int(row.id), bool(row.admin and row.active), row.password_hash

    def add_group(self, name: str) -> int | None:
        """Insert a group; None when the name is taken."""
        with self.engine.begin() as connection:
            if connection.execute(select(groups.c.id).where(groups.c.name == name)).first():
                return None
            return int(
                connection.execute(
                    insert(groups).returning(groups.c.id),
                    {"name": name, "created_at": time.time()},
                ).scalar_one()
            )

    def change_members(
        self, group_id: int, *, add: Sequence[int] = (), remove: Sequence[int] = ()
    ) -> tuple[int, int]:
        """Add and remove members of one group; returns (added, removed)."""
        with self.engine.begin() as connection:
            present = {
                row[0]
                for row in connection.execute(
                    select(members.c.user_id).where(members.c.group_id == group_id)
                )
            }
            new = [u for u in dict.fromkeys(add) if u not in present]
            if new:
                connection.execute(
                    insert(members), [{"user_id": u, "group_id": group_id} for u in new]
                )
            gone = [u for u in dict.fromkeys(remove) if u in present]
            if gone:
                connection.execute(
                    delete(members).where(
                        and_(members.c.group_id == group_id, members.c.user_id.in_(gone))
                    )
                )
        return len(new), len(gone)

    # -- batches ---------------------------------------------------------------------

    def upsert(
        self,
        connection: Connection,
        batch: Sequence[UserValues],
        *,
        group_cache: dict[str, int],
        now: float,
    ) -> UpsertCounts:
        """Create or update ``batch`` (distinct usernames) in ``connection``'s transaction.

        ``group_cache`` maps group names to ids across the batches of one import; groups
        named and missing are created.
        """
        names = [item.username for item in batch]
        existing = {
            row.username: row
            for row in connection.execute(
                select(
                    users.c.id,
                    users.c.username,
                    users.c.full_name,
                    users.c.email,
                    users.c.admin,
                    users.c.active,
                ).where(users.c.username.in_(names))
            )
        }
        new_items = [item for item in batch if item.username not in existing]
        ids: dict[str, int] = {name: row.id for name, row in existing.items()}
        if new_items:
            created_ids = connection.execute(
                _insert_user,
                [
                    {
                        "username": item.username,
                        "full_name": item.full_name or "",
                        "email": item.email,
                        "admin": bool(item.admin),
                        "active": True if item.active is None else item.active,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for item in new_items
                ],
            ).scalars()
            ids.update(zip((i.username for i in new_items), created_ids, strict=True))
        changes = []
        for item in batch:
            row = existing.get(item.username)
            if row is None:
                continue
            merged = {
                "u_id": row.id,
                "u_full_name": row.full_name if item.full_name is None else item.full_name,
                "u_email": None if item.clear_email else (item.email or row.email),
                "u_admin": row.admin if item.admin is None else item.admin,
                "u_active": row.active if item.active is None else item.active,
                "u_now": now,
            }
            before = (row.full_name, row.email, bool(row.admin), bool(row.active))
            after = (
                merged["u_full_name"],
                merged["u_email"],
                bool(merged["u_admin"]),
                bool(merged["u_active"]),
            )
            if before != after:
                changes.append(merged)
        if changes:
            connection.execute(_update_user, changes)
        created_groups = self._ensure_groups(
            connection, {g for item in batch for g in item.groups}, group_cache, now
        )
        self._join(connection, batch, ids, group_cache)
        return UpsertCounts(
            created=len(new_items),
            updated=len(changes),
            unchanged=len(batch) - len(new_items) - len(changes),
            groups_created=created_groups,
        )

    @staticmethod
    def _ensure_groups(
        connection: Connection, wanted: set[str], cache: dict[str, int], now: float
    ) -> tuple[str, ...]:
        unknown = sorted(wanted - cache.keys())
        if not unknown:
            return ()
        for name, group_id in connection.execute(
            select(groups.c.name, groups.c.id).where(groups.c.name.in_(unknown))
        ):
            cache[name] = group_id
        missing = [name for name in unknown if name not in cache]
        if missing:
            created = connection.execute(
                insert(groups).returning(groups.c.id, sort_by_parameter_order=True),
                [{"name": name, "created_at": now} for name in missing],
            ).scalars()
            cache.update(zip(missing, created, strict=True))
        return tuple(missing)

    @staticmethod
    def _join(
        connection: Connection,
        batch: Sequence[UserValues],
        ids: dict[str, int],
        cache: dict[str, int],
    ) -> None:
        wanted = {(ids[item.username], cache[g]) for item in batch for g in item.groups}
        if not wanted:
            return
        user_ids = sorted({user_id for user_id, _ in wanted})
        query = select(members.c.user_id, members.c.group_id).where(members.c.user_id.in_(user_ids))
        present = {(int(user), int(group)) for user, group in connection.execute(query)}
        new = sorted(wanted - present)
        if new:
            connection.execute(insert(members), [{"user_id": u, "group_id": g} for u, g in new])

    def deactivate_others(
        self, connection: Connection, keep: set[str], *, protected: Iterable[int], now: float
    ) -> int:
        """Deactivate every active user whose username is not in ``keep`` (host sync)."""
        rows = connection.execute(
            select(users.c.id, users.c.username).where(users.c.active.is_(True))
        ).all()
        spared = set(protected)
        gone = [row.id for row in rows if row.username not in keep and row.id not in spared]
        for start in range(0, len(gone), 500):
            connection.execute(
                update(users)
                .where(users.c.id.in_(gone[start : start + 500]))
                .values(active=False, updated_at=now)
            )
        return len(gone)


def _resolve(
    connection: Connection,
    references: Iterable[str | int],
    id_column: Column[Any],
    name_column: Column[Any],
) -> tuple[dict[str, int], list[str]]:
    refs = [str(r).strip() for r in references]
    by_id = sorted({int(r) for r in refs if is_id(r)})
    by_name = sorted({r for r in refs if not is_id(r)})
    found_ids: set[int] = set()
    names: dict[str, int] = {}
    if by_id:
        found_ids = {
            row[0] for row in connection.execute(select(id_column).where(id_column.in_(by_id)))
        }
    if by_name:
        names = {
            row[0]: row[1]
            for row in connection.execute(
                select(name_column, id_column).where(name_column.in_(by_name))
            )
        }
    resolved: dict[str, int] = {}
    unknown: list[str] = []
    for ref in refs:
        if is_id(ref) and int(ref) in found_ids:
            resolved[ref] = int(ref)
        elif not is_id(ref) and ref in names:
            resolved[ref] = names[ref]
        elif ref not in unknown:
            unknown.append(ref)
    return resolved, unknown
