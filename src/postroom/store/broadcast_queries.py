"""Broadcast jobs' read paths: listings with delivery counts, one job in full.

Counts come from the outbox: the states of the messages the job's recipients are
linked to (a message counted once, however many cc addresses share it). A job whose
fan-out is over and none of whose messages is pending shows as ``done``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from postroom.store.directory_schema import (
    BROADCAST_QUEUED,
    DONE,
    broadcast_recipients,
    broadcasts,
    users,
)
from postroom.store.engine import reading
from postroom.store.schema import DEFERRED, FAILED, HELD, QUEUED, SENDING, SENT, messages
from postroom.store.views import iso_time

COUNTED = (QUEUED, SENDING, SENT, DEFERRED, FAILED, HELD)


@dataclass(frozen=True, slots=True)
class BroadcastSummary:
    id: int
    subject: str
    status: str  # fanning-out, queued, done, cancelled
    html: bool
    rate: str | None
    idempotency_key: str | None
    created_at: float
    created_by: str
    updated_at: float
    fanned_out_at: float | None
    total: int  # users selected so far
    queued: int  # messages to users
    skipped: int  # users without a message
    copies: int  # messages for --cc / --bcc
    counts: dict[str, int] = field(default_factory=dict)  # messages by outbox state

    @property
    def pending(self) -> int:
        return sum(self.counts.get(s, 0) for s in (QUEUED, SENDING, DEFERRED))

    @property
    def finished(self) -> int:
        return self.counts.get(SENT, 0) + self.counts.get(FAILED, 0)

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "status": self.status,
            "html": self.html,
            "rate": self.rate,
            "idempotency_key": self.idempotency_key,
            "created_at": iso_time(self.created_at),
            "created_by": self.created_by,
            "updated_at": iso_time(self.updated_at),
            "fanned_out_at": iso_time(self.fanned_out_at),
            "total": self.total,
            "queued": self.queued,
            "skipped": self.skipped,
            "copies": self.copies,
            "counts": {state: self.counts.get(state, 0) for state in COUNTED},
        }


@dataclass(frozen=True, slots=True)
class SkippedUser:
    user_id: int | None
    username: str
    reason: str  # no-address, invalid, duplicate, inactive
    address: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "reason": self.reason,
            "address": self.address,
        }


@dataclass(frozen=True, slots=True)
class BroadcastDetail:
    summary: BroadcastSummary
    body: str
    audience: dict[str, Any]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    skipped: tuple[SkippedUser, ...]

    def by_reason(self, reason: str) -> list[SkippedUser]:
        return [s for s in self.skipped if s.reason == reason]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "body": self.body,
            "audience": self.audience,
            "cc": list(self.cc),
            "bcc": list(self.bcc),
            "skipped_users": [s.to_json() for s in self.skipped],
        }


_COLUMNS = (
    broadcasts.c.id,
    broadcasts.c.subject,
    broadcasts.c.status,
    broadcasts.c.html,
    broadcasts.c.rate,
    broadcasts.c.idempotency_key,
    broadcasts.c.created_at,
    broadcasts.c.created_by,
    broadcasts.c.updated_at,
    broadcasts.c.fanned_out_at,
    broadcasts.c.total,
    broadcasts.c.queued,
    broadcasts.c.skipped,
    broadcasts.c.copies,
)


def list_broadcasts(engine: Engine, *, limit: int = 50) -> list[BroadcastSummary]:
    """The newest jobs first, each with its messages counted by state."""
    with engine.connect() as connection:
        connection = reading(connection)
        rows = connection.execute(
            select(*_COLUMNS).order_by(broadcasts.c.id.desc()).limit(limit)
        ).all()
        counts = _counts(connection, [row.id for row in rows])
    return [_summary(row, counts.get(row.id, {})) for row in rows]


def get_broadcast(engine: Engine, broadcast_id: int) -> BroadcastDetail | None:
    with engine.connect() as connection:
        connection = reading(connection)
        row = connection.execute(
            select(
                *_COLUMNS,
                broadcasts.c.body,
                broadcasts.c.audience,
                broadcasts.c.cc,
                broadcasts.c.bcc,
            ).where(broadcasts.c.id == broadcast_id)
        ).first()
        if row is None:
            return None
        counts = _counts(connection, [broadcast_id])
        skipped = connection.execute(
            select(
                broadcast_recipients.c.user_id,
                func.coalesce(users.c.username, ""),
                broadcast_recipients.c.skipped,
                broadcast_recipients.c.address,
            )
            .outerjoin(users, users.c.id == broadcast_recipients.c.user_id)
            .where(
                broadcast_recipients.c.broadcast_id == broadcast_id,
                broadcast_recipients.c.skipped.is_not(None),
            )
            .order_by(broadcast_recipients.c.skipped, users.c.username)
        ).all()
    return BroadcastDetail(
        summary=_summary(row, counts.get(broadcast_id, {})),
        body=row.body,
        audience=json.loads(row.audience),
        cc=tuple(json.loads(row.cc)),
        bcc=tuple(json.loads(row.bcc)),
        skipped=tuple(SkippedUser(*item) for item in skipped),
    )


def message_ids(engine: Engine, broadcast_id: int) -> list[int]:
    """The outbox ids of a job's messages, in the order they were queued."""
    with engine.connect() as connection:
        rows = reading(connection).execute(
            select(broadcast_recipients.c.message_pk)
            .where(
                broadcast_recipients.c.broadcast_id == broadcast_id,
                broadcast_recipients.c.message_pk.is_not(None),
            )
            .distinct()
            .order_by(broadcast_recipients.c.message_pk)
        )
        return [int(row[0]) for row in rows]


def _counts(connection: Any, ids: Sequence[int]) -> dict[int, dict[str, int]]:
    if not ids:
        return {}
    link = broadcast_recipients
    rows = connection.execute(
        select(link.c.broadcast_id, messages.c.status, func.count(func.distinct(messages.c.id)))
        .join(messages, messages.c.id == link.c.message_pk)
        .where(link.c.broadcast_id.in_(list(ids)))
        .group_by(link.c.broadcast_id, messages.c.status)
    )
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for broadcast_id, status, count in rows:
        found[broadcast_id][status] = int(count)
    return found


def _summary(row: Any, counts: dict[str, int]) -> BroadcastSummary:
    status = row.status
    pending = sum(counts.get(s, 0) for s in (QUEUED, SENDING, DEFERRED))
    if status == BROADCAST_QUEUED and not pending:
        status = DONE
    return BroadcastSummary(
        id=row.id,
        subject=row.subject,
        status=status,
        html=bool(row.html),
        rate=row.rate,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        fanned_out_at=row.fanned_out_at,
        total=row.total,
        queued=row.queued,
        skipped=row.skipped,
        copies=row.copies,
        counts=dict(counts),
    )
