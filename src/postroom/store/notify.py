"""SQL of event notifications. Every function takes the caller's connection, so an
emit can run inside a host application's own transaction."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from postroom.store.directory_queries import USER_COLUMNS, User, user_from_row
from postroom.store.directory_schema import users
from postroom.store.notify_schema import (
    heartbeats,
    notification_optouts,
    pending_notifications,
    signing_keys,
    thread_participants,
)

# Built once: SQLAlchemy then reuses their compiled form (emit runs them every call).
_USERS_NAMED = select(*USER_COLUMNS).where(users.c.username.in_(bindparam("names", expanding=True)))
_OPTED_OUT = select(notification_optouts.c.user_id).where(
    notification_optouts.c.type == bindparam("type"),
    notification_optouts.c.user_id.in_(bindparam("ids", expanding=True)),
)


def users_named(connection: Connection, names: Iterable[str | None]) -> dict[str, User]:
    wanted = sorted({n for n in names if n})
    if not wanted:
        return {}
    rows = connection.execute(_USERS_NAMED, {"names": wanted})
    return {row.username: user_from_row(row, ()) for row in rows}


def user_by_id(connection: Connection, user_id: int) -> User | None:
    row = connection.execute(select(*USER_COLUMNS).where(users.c.id == user_id)).first()
    return None if row is None else user_from_row(row, ())


def user_with_email(connection: Connection, address: str) -> User | None:
    row = connection.execute(
        select(*USER_COLUMNS)
        .where(func.lower(users.c.email) == address.strip().lower())
        .order_by(users.c.active.desc(), users.c.id)
    ).first()
    return None if row is None else user_from_row(row, ())


def admin_users(connection: Connection) -> list[User]:
    rows = connection.execute(
        select(*USER_COLUMNS).where(users.c.admin.is_(True)).order_by(users.c.id)
    )
    return [user_from_row(row, ()) for row in rows]


# -- threads -------------------------------------------------------------------------


def participants(connection: Connection, thread: str) -> list[User]:
    rows = connection.execute(
        select(*USER_COLUMNS)
        .join(thread_participants, thread_participants.c.user_id == users.c.id)
        .where(thread_participants.c.thread == thread)
        .order_by(thread_participants.c.created_at, users.c.id)
    )
    return [user_from_row(row, ()) for row in rows]


def add_participant(connection: Connection, thread: str, user_id: int, now: float) -> None:
    known = connection.execute(
        select(thread_participants.c.user_id).where(
            thread_participants.c.thread == thread, thread_participants.c.user_id == user_id
        )
    ).first()
    if known is None:
        connection.execute(
            insert(thread_participants).values(thread=thread, user_id=user_id, created_at=now)
        )


# -- preferences ---------------------------------------------------------------------


def opted_out(connection: Connection, user_ids: Sequence[int], event: str) -> set[int]:
    if not user_ids:
        return set()
    rows = connection.execute(_OPTED_OUT, {"type": event, "ids": sorted(set(user_ids))})
    return {row[0] for row in rows}


def optouts_of(engine: Engine, user_id: int) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(notification_optouts.c.type)
            .where(notification_optouts.c.user_id == user_id)
            .order_by(notification_optouts.c.type)
        )
        return [row[0] for row in rows]


def set_optouts(
    connection: Connection, user_id: int, *, off: Iterable[str] = (), on: Iterable[str] = ()
) -> None:
    now = time.time()
    on = list(on)
    if on:
        connection.execute(
            delete(notification_optouts).where(
                notification_optouts.c.user_id == user_id, notification_optouts.c.type.in_(on)
            )
        )
    already = set(opted_out_types(connection, user_id))
    for event in sorted(set(off) - already):
        connection.execute(
            insert(notification_optouts).values(user_id=user_id, type=event, created_at=now)
        )


def opted_out_types(connection: Connection, user_id: int) -> list[str]:
    rows = connection.execute(
        select(notification_optouts.c.type).where(notification_optouts.c.user_id == user_id)
    )
    return sorted(row[0] for row in rows)


# -- pending items (digests, throttles) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingItem:
    id: int
    type: str
    group_key: str
    due_at: float
    created_at: float
    item: dict[str, Any]


def add_pending(
    connection: Connection, rows: Sequence[tuple[str, str, float, dict[str, Any]]], now: float
) -> None:
    """Store (type, group_key, due_at, item) rows."""
    if rows:
        connection.execute(
            insert(pending_notifications),
            [
                {
                    "type": event,
                    "group_key": key,
                    "due_at": due,
                    "created_at": now,
                    "item": json.dumps(item, separators=(",", ":")),
                }
                for event, key, due, item in rows
            ],
        )


def due_groups(connection: Connection, now: float, limit: int = 100) -> list[str]:
    rows = connection.execute(
        select(pending_notifications.c.group_key)
        .where(pending_notifications.c.due_at <= now)
        .group_by(pending_notifications.c.group_key)
        .order_by(func.min(pending_notifications.c.due_at))
        .limit(limit)
    )
    return [row[0] for row in rows]


def take_group(connection: Connection, group_key: str) -> list[PendingItem]:
    """Remove and return a group's items (all of them: windows missed while no worker
    ran go out together). Another process that took them first leaves this one none."""
    query = (
        select(pending_notifications)
        .where(pending_notifications.c.group_key == group_key)
        .order_by(pending_notifications.c.id)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = connection.execute(query).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    deleted = connection.execute(
        delete(pending_notifications).where(pending_notifications.c.id.in_(ids))
    ).rowcount
    if deleted != len(ids):
        return []
    return [
        PendingItem(
            row.id, row.type, row.group_key, row.due_at, row.created_at, json.loads(row.item)
        )
        for row in rows
    ]


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(pending_notifications)).scalar_one()
        )


# -- heartbeats ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    name: str
    every: float
    last_seen: float
    down_at: float | None


def beat(connection: Connection, name: str, every: float, now: float) -> Heartbeat | None:
    """Record a beat; return the earlier record (None for a first beat)."""
    row = connection.execute(select(heartbeats).where(heartbeats.c.name == name)).first()
    if row is None:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(heartbeats).values(name=name, every=every, last_seen=now, down_at=None)
                )
            return None
        except IntegrityError:  # a beat from elsewhere at the same moment
            row = connection.execute(select(heartbeats).where(heartbeats.c.name == name)).one()
    connection.execute(
        update(heartbeats)
        .where(heartbeats.c.name == name)
        .values(every=every, last_seen=now, down_at=None)
    )
    return Heartbeat(row.name, row.every, row.last_seen, row.down_at)


def silent_since(connection: Connection, now: float, missed: int) -> list[Heartbeat]:
    rows = connection.execute(
        select(heartbeats).where(
            heartbeats.c.down_at.is_(None),
            heartbeats.c.last_seen + heartbeats.c.every * missed < now,
        )
    )
    return [Heartbeat(r.name, r.every, r.last_seen, r.down_at) for r in rows]


def mark_down(connection: Connection, name: str, last_seen: float, now: float) -> bool:
    """Claim the server.down of one silence; False if another process claimed it."""
    result = connection.execute(
        update(heartbeats)
        .where(
            heartbeats.c.name == name,
            heartbeats.c.down_at.is_(None),
            heartbeats.c.last_seen == last_seen,
        )
        .values(down_at=now)
    )
    return bool(result.rowcount == 1)


def forget_heartbeat(engine: Engine, name: str) -> bool:
    """A host app stopped on purpose: no watchdog mail for its silence. False if unknown."""
    with engine.begin() as connection:
        gone = connection.execute(delete(heartbeats).where(heartbeats.c.name == name)).rowcount
    return bool(gone)


def list_heartbeats(engine: Engine) -> list[Heartbeat]:
    with engine.connect() as connection:
        rows = connection.execute(select(heartbeats).order_by(heartbeats.c.name))
        return [Heartbeat(r.name, r.every, r.last_seen, r.down_at) for r in rows]


# -- signing keys --------------------------------------------------------------------


def signing_key(connection: Connection, name: str) -> bytes:
    """The secret named ``name``, made on first use and shared through the database by
    every process and machine that uses it."""
    query = select(signing_keys.c.secret).where(signing_keys.c.name == name)
    found = connection.execute(query).scalar_one_or_none()
    if found is None:
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(signing_keys).values(
                        name=name, secret=secrets.token_hex(32), created_at=time.time()
                    )
                )
        except IntegrityError:
            pass  # made by another process at the same moment: use theirs
        found = connection.execute(query).scalar_one()
    return bytes.fromhex(found)
