"""The directory's read paths: users with their groups, groups with their members.

Queries run on connections marked :func:`~postroom.store.engine.reading`. Results are
frozen records whose ``to_json()`` is what ``--json`` prints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from postroom.store.directory_schema import groups, members, users
from postroom.store.engine import reading
from postroom.store.views import iso_time


@dataclass(frozen=True, slots=True)
class User:
    """One user of the directory."""

    id: int
    username: str
    full_name: str
    email: str | None
    admin: bool
    active: bool
    created_at: float
    groups: tuple[str, ...] = ()

    @property
    def shown(self) -> str:
        """``Full Name <address>`` (or the address alone), as ``user list --names`` prints."""
        if not self.email:
            return self.full_name or self.username
        return f"{self.full_name} <{self.email}>" if self.full_name else self.email

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "full_name": self.full_name,
            "email": self.email,
            "admin": self.admin,
            "active": self.active,
            "groups": list(self.groups),
            "created_at": iso_time(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    members: int
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "members": self.members,
            "created_at": iso_time(self.created_at),
        }


USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.full_name,
    users.c.email,
    users.c.admin,
    users.c.active,
    users.c.created_at,
)


def list_users(
    engine: Engine, *, include_inactive: bool = False, group_id: int | None = None
) -> list[User]:
    """Users by id (active ones unless ``include_inactive``), optionally of one group."""
    query = select(*USER_COLUMNS).order_by(users.c.id)
    if not include_inactive:
        query = query.where(users.c.active.is_(True))
    if group_id is not None:
        query = query.where(
            users.c.id.in_(select(members.c.user_id).where(members.c.group_id == group_id))
        )
    with engine.connect() as connection:
        connection = reading(connection)
        rows = connection.execute(query).all()
        names: dict[int, list[str]] = defaultdict(list)
        membership = (
            select(members.c.user_id, groups.c.name)
            .join(groups, groups.c.id == members.c.group_id)
            .order_by(groups.c.name)
        )
        for user_id, name in connection.execute(membership):
            names[user_id].append(name)
    return [user_from_row(row, names.get(row.id, ())) for row in rows]


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as connection:
        connection = reading(connection)
        row = connection.execute(select(*USER_COLUMNS).where(users.c.id == user_id)).first()
        if row is None:
            return None
        names = connection.execute(
            select(groups.c.name)
            .join(members, members.c.group_id == groups.c.id)
            .where(members.c.user_id == user_id)
            .order_by(groups.c.name)
        ).scalars()
        return user_from_row(row, tuple(names))


def list_groups(engine: Engine) -> list[Group]:
    counts = (
        select(members.c.group_id, func.count().label("n")).group_by(members.c.group_id).subquery()
    )
    query = (
        select(groups.c.id, groups.c.name, func.coalesce(counts.c.n, 0), groups.c.created_at)
        .outerjoin(counts, counts.c.group_id == groups.c.id)
        .order_by(groups.c.name)
    )
    with engine.connect() as connection:
        rows = reading(connection).execute(query).all()
    return [Group(row[0], row[1], int(row[2]), row[3]) for row in rows]


def group_name(engine: Engine, group_id: int) -> str | None:
    with engine.connect() as connection:
        found = reading(connection).execute(select(groups.c.name).where(groups.c.id == group_id))
        return found.scalar_one_or_none()


def user_from_row(row: Any, group_names: Sequence[str]) -> User:
    return User(
        id=row.id,
        username=row.username,
        full_name=row.full_name,
        email=row.email,
        admin=bool(row.admin),
        active=bool(row.active),
        created_at=row.created_at,
        groups=tuple(group_names),
    )
