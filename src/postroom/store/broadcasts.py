"""Broadcast jobs' write paths: create, lease, fan out in chunks, finish, cancel.

A job row is committed first (``fanning-out``, leased to the process that made it);
then each chunk commits its messages, their ``broadcast_recipients`` links and the
job's counters in one transaction, and only while the process still holds the lease.
A process that dies leaves a lease that expires; whoever takes the job over next
(``broadcast resume``, a worker) skips the users already linked, and the unique
``(broadcast_id, user_id)`` makes a second message for anyone impossible.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from postroom.store.directory_schema import (
    BROADCAST_QUEUED,
    CANCELLED,
    DONE,
    FANNING_OUT,
    broadcast_recipients,
    broadcasts,
    members,
    users,
)
from postroom.store.engine import reading
from postroom.store.outbox import Outbox
from postroom.store.records import NewMessage
from postroom.store.schema import DEFERRED, HELD, QUEUED, SENDING, messages

PENDING = (QUEUED, SENDING, DEFERRED)


@dataclass(frozen=True, slots=True)
class NewBroadcast:
    subject: str
    body: str
    html: bool
    type: str
    audience: str  # JSON
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    rate: str | None
    idempotency_key: str | None
    created_by: str


@dataclass(frozen=True, slots=True)
class Link:
    """One broadcast_recipients row: a user (or a cc/bcc address) and its message."""

    user_id: int | None
    kind: str  # user, cc, bcc
    address: str | None
    skipped: str | None = None  # why no message; None: the next message of the chunk


@dataclass(frozen=True, slots=True)
class JobRow:
    """A broadcast as its fan-out needs it."""

    id: int
    subject: str
    body: str
    html: bool
    type: str
    audience: str
    rate: str | None
    status: str
    created_at: float
    queued: int
    lease_owner: str | None
    lease_expires_at: float | None


@dataclass(frozen=True, slots=True)
class CandidateRow:
    user_id: int
    username: str
    email: str | None
    active: bool
    in_group: bool
    done: bool


class BroadcastStore:
    """SQL of broadcast jobs; methods commit before they return."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- create ----------------------------------------------------------------------

    def create(
        self,
        job: NewBroadcast,
        copies: Sequence[tuple[NewMessage, Sequence[Link]]],
        *,
        owner: str,
        lease: float,
        now: float,
    ) -> tuple[int, bool]:
        """Commit the job (leased to ``owner``) with its cc/bcc copies; returns (id,
        created). A known idempotency key returns the first job instead."""
        try:
            return self._create(job, copies, owner=owner, lease=lease, now=now)
        except IntegrityError:
            # Another process committed the same key between our check and our insert.
            return self._create(job, copies, owner=owner, lease=lease, now=now)

    def _create(
        self,
        job: NewBroadcast,
        copies: Sequence[tuple[NewMessage, Sequence[Link]]],
        *,
        owner: str,
        lease: float,
        now: float,
    ) -> tuple[int, bool]:
        with self.engine.begin() as connection:
            if job.idempotency_key is not None:
                known = connection.execute(
                    select(broadcasts.c.id).where(
                        broadcasts.c.idempotency_key == job.idempotency_key
                    )
                ).scalar_one_or_none()
                if known is not None:
                    return int(known), False
            broadcast_id = int(
                connection.execute(
                    insert(broadcasts).returning(broadcasts.c.id),
                    {
                        "subject": job.subject,
                        "body": job.body,
                        "html": job.html,
                        "type": job.type,
                        "audience": job.audience,
                        "cc": json.dumps(list(job.cc)),
                        "bcc": json.dumps(list(job.bcc)),
                        "status": FANNING_OUT,
                        "idempotency_key": job.idempotency_key,
                        "rate": job.rate,
                        "created_at": now,
                        "created_by": job.created_by,
                        "updated_at": now,
                        "fanned_out_at": None,
                        "total": 0,
                        "queued": 0,
                        "skipped": 0,
                        "copies": len(copies),
                        "lease_owner": owner,
                        "lease_expires_at": now + lease,
                    },
                ).scalar_one()
            )
            if copies:
                pks = Outbox.insert(connection, [message for message, _ in copies], now=now)
                _insert_links(
                    connection,
                    broadcast_id,
                    [
                        (link, pk)
                        for (_, links), pk in zip(copies, pks, strict=True)
                        for link in links
                    ],
                )
        return broadcast_id, True

    # -- lease and fan-out -----------------------------------------------------------

    def load(self, broadcast_id: int) -> JobRow | None:
        with self.engine.connect() as connection:
            row = (
                reading(connection)
                .execute(
                    select(
                        broadcasts.c.id,
                        broadcasts.c.subject,
                        broadcasts.c.body,
                        broadcasts.c.html,
                        broadcasts.c.type,
                        broadcasts.c.audience,
                        broadcasts.c.rate,
                        broadcasts.c.status,
                        broadcasts.c.created_at,
                        broadcasts.c.queued,
                        broadcasts.c.lease_owner,
                        broadcasts.c.lease_expires_at,
                    ).where(broadcasts.c.id == broadcast_id)
                )
                .first()
            )
        return None if row is None else JobRow(**row._asdict())

    def take(
        self, broadcast_id: int, owner: str, *, lease: float, now: float, force: bool = False
    ) -> bool:
        """Lease a job that is fanning out to ``owner``: when the lease is free or has
        expired, or with ``force`` (an admin who knows the holder is gone)."""
        condition = and_(broadcasts.c.id == broadcast_id, broadcasts.c.status == FANNING_OUT)
        if not force:
            condition = and_(
                condition,
                or_(
                    broadcasts.c.lease_owner.is_(None),
                    broadcasts.c.lease_owner == owner,
                    broadcasts.c.lease_expires_at < now,
                ),
            )
        with self.engine.begin() as connection:
            result = connection.execute(
                update(broadcasts)
                .where(condition)
                .values(lease_owner=owner, lease_expires_at=now + lease, updated_at=now)
            )
        return bool(result.rowcount)

    def candidates(
        self,
        connection: Connection,
        broadcast_id: int,
        *,
        group_ids: Sequence[int],
        user_ids: Sequence[int],
        everyone: bool,
        cutoff: float,
    ) -> Generator[CandidateRow, None, None]:
        """Users that existed at ``cutoff``, by address (any case; none last) then id,
        each marked ``done`` when the job already has its row (the address is then the
        one it was handled with). Streamed: memory does not grow with the users."""
        in_group = (
            exists()
            .where(members.c.user_id == users.c.id, members.c.group_id.in_(list(group_ids)))
            .correlate(users)
            if group_ids
            else literal(False)
        )
        link = broadcast_recipients
        query = (
            select(
                users.c.id,
                users.c.username,
                users.c.email,
                users.c.active,
                in_group.label("in_group"),
                link.c.id.is_not(None).label("done"),
                link.c.address,
            )
            .outerjoin(
                link, and_(link.c.broadcast_id == broadcast_id, link.c.user_id == users.c.id)
            )
            .where(users.c.created_at <= cutoff)
            .order_by(users.c.email.is_(None), func.lower(users.c.email), users.c.id)
        )
        if not everyone:
            query = query.where(or_(users.c.id.in_(list(user_ids)), in_group))
        rows = connection.execution_options(yield_per=1000).execute(query)
        try:
            for user_id, username, email, active, grouped, done, linked in rows:
                yield CandidateRow(
                    user_id,
                    username,
                    linked if done else email,
                    bool(active),
                    bool(grouped),
                    bool(done),
                )
        finally:
            rows.close()  # a server-side cursor on PostgreSQL, even when left early

    def write_chunk(
        self,
        broadcast_id: int,
        owner: str,
        *,
        lease: float,
        now: float,
        links: Sequence[Link],
        messages_: Sequence[NewMessage],
        due: Sequence[float],
    ) -> bool:
        """Commit one chunk: its messages, every link, the job's counters; only while
        ``owner`` holds the lease of a job still fanning out (else nothing, False)."""
        queued = len(messages_)
        with self.engine.begin() as connection:
            held = connection.execute(
                update(broadcasts)
                .where(_fanning_out_for(broadcast_id, owner))
                .values(
                    total=broadcasts.c.total + len(links),
                    queued=broadcasts.c.queued + queued,
                    skipped=broadcasts.c.skipped + (len(links) - queued),
                    lease_expires_at=now + lease,
                    updated_at=now,
                )
            ).rowcount
            if not held:
                return False
            pks = iter(Outbox.insert(connection, messages_, now=now, due=due))
            _insert_links(
                connection,
                broadcast_id,
                [(link, None if link.skipped else next(pks)) for link in links],
            )
        return True

    def finish(self, broadcast_id: int, owner: str, *, now: float) -> bool:
        """The fan-out is complete: the job is queued (if ``owner`` still holds it)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(broadcasts)
                .where(_fanning_out_for(broadcast_id, owner))
                .values(
                    status=BROADCAST_QUEUED,
                    fanned_out_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
        return bool(result.rowcount)

    # -- admin and housekeeping ------------------------------------------------------

    def cancel(self, broadcast_id: int, *, now: float) -> int | None:
        """Mark the job cancelled and hold its messages not sent yet (a worker finishes
        those it is sending). Returns how many were held; None if nothing to cancel."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(broadcasts)
                .where(
                    broadcasts.c.id == broadcast_id,
                    broadcasts.c.status.in_((FANNING_OUT, BROADCAST_QUEUED)),
                )
                .values(status=CANCELLED, lease_owner=None, lease_expires_at=None, updated_at=now)
            )
            if not result.rowcount:
                return None
            linked = select(broadcast_recipients.c.message_pk).where(
                broadcast_recipients.c.broadcast_id == broadcast_id,
                broadcast_recipients.c.message_pk.is_not(None),
            )
            held = connection.execute(
                update(messages)
                .where(messages.c.id.in_(linked), messages.c.status.in_((QUEUED, DEFERRED)))
                .values(status=HELD, updated_at=now)
            ).rowcount
        return int(held)

    def stalled(self, *, now: float) -> list[int]:
        """Jobs still fanning out whose lease has expired (their process is gone)."""
        with self.engine.connect() as connection:
            rows = reading(connection).execute(
                select(broadcasts.c.id)
                .where(
                    broadcasts.c.status == FANNING_OUT,
                    or_(
                        broadcasts.c.lease_expires_at.is_(None), broadcasts.c.lease_expires_at < now
                    ),
                )
                .order_by(broadcasts.c.id)
            )
            return [int(row[0]) for row in rows]

    def mark_done(self, *, now: float) -> int:
        """Queued jobs none of whose messages is still pending become done."""
        pending = (
            select(literal(1))
            .select_from(
                broadcast_recipients.join(
                    messages, messages.c.id == broadcast_recipients.c.message_pk
                )
            )
            .where(
                broadcast_recipients.c.broadcast_id == broadcasts.c.id,
                messages.c.status.in_(PENDING),
            )
            .exists()
        )
        with self.engine.begin() as connection:
            result = connection.execute(
                update(broadcasts)
                .where(broadcasts.c.status == BROADCAST_QUEUED, ~pending)
                .values(status=DONE, updated_at=now)
            )
        return int(result.rowcount)


def _insert_links(
    connection: Connection, broadcast_id: int, links: Sequence[tuple[Link, int | None]]
) -> None:
    if not links:
        return
    rows: list[dict[str, Any]] = [
        {
            "broadcast_id": broadcast_id,
            "user_id": link.user_id,
            "kind": link.kind,
            "address": link.address,
            "message_pk": pk,
            "skipped": link.skipped,
        }
        for link, pk in links
    ]
    connection.execute(insert(broadcast_recipients), rows)


def _fanning_out_for(broadcast_id: int, owner: str) -> ColumnElement[bool]:
    """The job is still fanning out and ``owner`` still holds its lease."""
    return and_(
        broadcasts.c.id == broadcast_id,
        broadcasts.c.status == FANNING_OUT,
        broadcasts.c.lease_owner == owner,
    )
