"""The outbox's write paths: enqueue (written by :mod:`postroom.store.enqueue`), claim
under a lease, record attempts, admin actions.

Every method runs in its own transaction and commits before it returns, so a message
accepted by :meth:`Outbox.enqueue` is on disk when the call returns.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import (
    Engine,
    Float,
    Select,
    String,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from postroom.store import enqueue as enqueuing
from postroom.store.bulk import BulkStatement
from postroom.store.engine import database_clock, is_sqlite
from postroom.store.enqueue import WAKE_CHANNEL as WAKE_CHANNEL  # where listeners import it
from postroom.store.enqueue import chunks, tell_listeners
from postroom.store.group_commit import GroupCommit
from postroom.store.records import (
    ClaimedMessage,
    ClaimedRecipient,
    Enqueued,
    MessageOutcome,
    NewMessage,
)
from postroom.store.schema import (
    DEFERRED,
    FAILED,
    HELD,
    PARTIAL,
    QUEUED,
    SENDING,
    SENT,
    attempts,
    messages,
    recipients,
)

PENDING_RECIPIENT = (QUEUED, DEFERRED)

_update_recipient = BulkStatement(
    update(recipients)
    .where(recipients.c.id == bindparam("r_pk"))
    .values(
        status=bindparam("r_status"),
        code=bindparam("r_code"),
        reply=bindparam("r_reply"),
        attempts=recipients.c.attempts + bindparam("r_counted"),
        updated_at=bindparam("r_now"),
    )
)
_update_message = BulkStatement(
    update(messages)
    .where(and_(messages.c.id == bindparam("m_pk"), messages.c.lease_owner == bindparam("m_owner")))
    .values(
        status=bindparam("m_status"),
        attempts=messages.c.attempts + bindparam("m_counted"),
        next_attempt_at=bindparam("m_next"),
        last_error=bindparam("m_error"),
        outcome=bindparam("m_outcome"),
        updated_at=bindparam("m_now"),
        lease_owner=None,
        lease_expires_at=None,
    )
)
_insert_attempt = BulkStatement(
    insert(attempts).values(
        message_pk=bindparam("a_message"),
        number=bindparam("a_number"),
        worker=bindparam("a_worker"),
        started_at=bindparam("a_started"),
        finished_at=bindparam("a_finished"),
        outcome=bindparam("a_outcome"),
        detail=bindparam("a_detail"),
    )
)


class Outbox:
    """SQL of the outbox; the worker orchestrates, this module only reads and writes."""

    def __init__(self, engine: Engine, *, on_due: Callable[[], None] | None = None) -> None:
        """``on_due`` is called after a commit that made mail due (enqueue, retry,
        release): the process's idle workers wake on it."""
        self.engine = engine
        self._skip_locked = not is_sqlite(engine)
        self._clock = database_clock(engine)
        self._claims: dict[int, Update] = {}
        self._on_due = on_due
        # Enqueues from threads at once share a transaction (see store.group_commit).
        self._group: GroupCommit[NewMessage, Enqueued] = GroupCommit(
            lambda items: self._commit(items, time.time())
        )

    def made_due(self) -> None:
        if self._on_due is not None:
            self._on_due()

    # -- enqueue ---------------------------------------------------------------------

    def enqueue(self, items: Sequence[NewMessage], *, now: float | None = None) -> list[Enqueued]:
        """Commit ``items`` in one transaction and return their ids, in order.

        An item whose idempotency key is already known returns the earlier message
        instead of creating a second one (also within ``items``). Calls from several
        threads at once may share one transaction (group commit); each still returns
        only when its items are committed.
        """
        results = self._commit(items, now) if now is not None else self._group.submit(items)
        if any(result.created for result in results):
            self.made_due()
        return results

    def _commit(self, items: Sequence[NewMessage], now: float) -> list[Enqueued]:
        return enqueuing.enqueue(self.engine, items, now)

    #: Insert messages in the caller's transaction, without an idempotency check (see
    #: :func:`postroom.store.enqueue.insert`).
    insert = staticmethod(enqueuing.insert)

    # -- claim and record ------------------------------------------------------------

    def claim(
        self, owner: str, *, limit: int, lease_seconds: float, now: float | None = None
    ) -> list[ClaimedMessage]:
        """Lease up to ``limit`` due messages to ``owner`` and return them with the
        recipients still to deliver. Expired leases of dead workers count as due."""
        now = time.time() if now is None else now
        statement = self._claims.get(limit)
        if statement is None:
            statement = self._claims[limit] = self._claim_statement(limit)
        with self.engine.begin() as connection:
            rows = connection.execute(
                statement, {"c_now": now, "c_owner": owner, "c_lease": lease_seconds}
            ).all()
            if not rows:
                return []
            pending: dict[int, list[ClaimedRecipient]] = defaultdict(list)
            failed_before: dict[int, int] = defaultdict(int)
            sent_before: dict[int, int] = defaultdict(int)
            for pk, message_pk, address, status in connection.execute(
                select(
                    recipients.c.id,
                    recipients.c.message_pk,
                    recipients.c.address,
                    recipients.c.status,
                )
                .where(recipients.c.message_pk.in_([row[0] for row in rows]))
                .order_by(recipients.c.id)
            ):
                if status in PENDING_RECIPIENT:
                    pending[message_pk].append(ClaimedRecipient(pk, address))
                elif status == FAILED:
                    failed_before[message_pk] += 1
                elif status == SENT:
                    sent_before[message_pk] += 1
        claimed = [
            ClaimedMessage(
                pk=row[0],
                message_id=row[1],
                envelope_from=row[2],
                smtputf8=bool(row[3]),
                raw=bytes(row[4]),
                attempts=row[5],
                queued_at=row[6],
                recipients=tuple(pending[row[0]]),
                failed_before=failed_before[row[0]],
                sent_before=sent_before[row[0]],
            )
            for row in rows
        ]
        claimed.sort(key=lambda m: m.pk)
        return claimed

    def _claim_statement(self, limit: int) -> Update:
        """The claim for ``limit`` messages, built once: a worker claims many times a
        second, and building the statement cost as much as running it."""
        now = bindparam("c_now", type_=Float)
        return (
            update(messages)
            .where(messages.c.id.in_(self._due(now, limit).scalar_subquery()))
            .values(
                status=SENDING,
                lease_owner=bindparam("c_owner", type_=String),
                lease_expires_at=self._clock + bindparam("c_lease", type_=Float),
                updated_at=now,
            )
            .returning(
                messages.c.id,
                messages.c.message_id,
                messages.c.envelope_from,
                messages.c.smtputf8,
                messages.c.raw,
                messages.c.attempts,
                messages.c.queued_at,
            )
        )

    def _due(self, now: BindParameter[float], limit: int) -> Select[tuple[int]]:
        """Ids of the ``limit`` messages due first.

        PostgreSQL: one query with SKIP LOCKED, so concurrent workers never wait for or
        take each other's rows. SQLite (one writer at a time anyway): one index-ordered
        branch per state, so a claim reads ~``limit`` rows instead of sorting every
        due row of a large queue (5 ms → 2.7 ms at 20k queued, 27 ms → 2.9 ms at 200k).
        """
        if self._skip_locked:
            return (
                select(messages.c.id)
                .where(
                    or_(
                        and_(
                            messages.c.status.in_((QUEUED, DEFERRED)),
                            messages.c.next_attempt_at <= now,
                        ),
                        and_(
                            messages.c.status == SENDING, messages.c.lease_expires_at < self._clock
                        ),
                    )
                )
                .order_by(messages.c.next_attempt_at, messages.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        branches = [
            select(messages.c.id, messages.c.next_attempt_at)
            .where(messages.c.status == status, messages.c.next_attempt_at <= now)
            .order_by(messages.c.next_attempt_at, messages.c.id)
            .limit(limit)
            .subquery()
            for status in (QUEUED, DEFERRED)
        ]
        branches.append(
            select(messages.c.id, messages.c.next_attempt_at)
            .where(messages.c.status == SENDING, messages.c.lease_expires_at < self._clock)
            .limit(limit)
            .subquery()
        )
        candidates = union_all(*(select(branch) for branch in branches)).subquery()
        return (
            select(candidates.c.id)
            .order_by(candidates.c.next_attempt_at, candidates.c.id)
            .limit(limit)
        )

    def record(self, owner: str, outcomes: Iterable[MessageOutcome], *, worker: str) -> int:
        """Store the results of one batch in one transaction; returns messages updated.

        A message whose lease ``owner`` no longer holds (it expired and another worker
        took it) is left alone: that worker's result wins.
        """
        outcomes = list(outcomes)
        if not outcomes:
            return 0
        now = time.time()
        with self.engine.begin() as connection:
            updated = _update_message.execute(
                connection,
                [
                    {
                        "m_pk": o.pk,
                        "m_owner": owner,
                        "m_status": o.status,
                        "m_counted": 1 if o.counted else 0,
                        "m_next": o.next_attempt_at,
                        "m_error": o.last_error,
                        "m_outcome": o.outcome,
                        "m_now": now,
                    }
                    for o in outcomes
                ],
            )
            recipient_rows = [
                {
                    "r_pk": r.pk,
                    "r_status": r.status,
                    "r_code": r.code,
                    "r_reply": r.reply,
                    "r_counted": 1 if o.counted else 0,
                    "r_now": now,
                }
                for o in outcomes
                for r in o.recipients
            ]
            _update_recipient.execute(connection, recipient_rows)
            attempt_rows = [
                {
                    "a_message": o.pk,
                    "a_number": o.attempt_number,
                    "a_worker": worker,
                    "a_started": o.started_at,
                    "a_finished": o.finished_at,
                    "a_outcome": o.attempt_outcome,
                    "a_detail": o.detail,
                }
                for o in outcomes
            ]
            _insert_attempt.execute(connection, attempt_rows)
        return updated

    def waiting(self, pks: Sequence[int]) -> bool:
        """Whether any of ``pks`` has not yet had a delivery attempt (queued or sending)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(messages.c.id)
                .where(messages.c.id.in_(list(pks)), messages.c.status.in_((QUEUED, SENDING)))
                .limit(1)
            ).first()
        return found is not None

    def release(self, owner: str, pks: Iterable[int] | None = None) -> int:
        """Give leased messages back to the queue without counting an attempt."""
        condition: ColumnElement[bool] = and_(
            messages.c.lease_owner == owner, messages.c.status == SENDING
        )
        if pks is not None:
            condition = and_(condition, messages.c.id.in_(list(pks)))
        with self.engine.begin() as connection:
            result = connection.execute(
                update(messages)
                .where(condition)
                .values(
                    status=QUEUED, lease_owner=None, lease_expires_at=None, updated_at=time.time()
                )
            )
        return int(result.rowcount)

    # -- admin actions ---------------------------------------------------------------

    def retry(self, pks: Iterable[int] | None = None, *, statuses: Sequence[str] = ()) -> int:
        """Make messages due now; failed recipients get another chance, sent ones never."""
        now = time.time()
        wanted = statuses or (DEFERRED, FAILED, QUEUED, PARTIAL)
        condition: ColumnElement[bool] = messages.c.status.in_(
            [status for status in wanted if status != PARTIAL]
        )
        if PARTIAL in wanted:  # sent to some: its refused recipients get another try
            condition = or_(
                condition, and_(messages.c.status == SENT, messages.c.outcome == PARTIAL)
            )
        if pks is not None:
            condition = and_(condition, messages.c.id.in_(list(pks)))
        with self.engine.begin() as connection:
            chosen = [row[0] for row in connection.execute(select(messages.c.id).where(condition))]
            if not chosen:
                return 0
            for chunk in chunks(chosen):
                connection.execute(
                    update(recipients)
                    .where(recipients.c.message_pk.in_(chunk), recipients.c.status == FAILED)
                    .values(status=QUEUED, updated_at=now)
                )
                connection.execute(
                    update(messages)
                    .where(messages.c.id.in_(chunk))
                    .values(
                        status=QUEUED,
                        next_attempt_at=now,
                        queued_at=now,
                        outcome=None,
                        attempts=0,
                        updated_at=now,
                    )
                )
            tell_listeners(connection)
        self.made_due()
        return len(chosen)

    def hold(self, pk: int) -> bool:
        return self._move(pk, (QUEUED, DEFERRED, FAILED), HELD)

    def release_held(self, pk: int) -> bool:
        return self._move(pk, (HELD,), QUEUED)

    def _move(self, pk: int, from_states: Sequence[str], to_state: str) -> bool:
        now = time.time()
        with self.engine.begin() as connection:
            result = connection.execute(
                update(messages)
                .where(messages.c.id == pk, messages.c.status.in_(from_states))
                .values(status=to_state, next_attempt_at=now, updated_at=now)
            )
            moved = bool(result.rowcount)
            if moved and to_state == QUEUED:
                tell_listeners(connection)
        if moved and to_state == QUEUED:
            self.made_due()
        return moved

    def purge(self, *, older_than: float, statuses: Sequence[str] = (SENT,)) -> int:
        """Delete finished messages last changed before ``older_than`` (epoch seconds)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(messages).where(
                    messages.c.status.in_(statuses), messages.c.updated_at < older_than
                )
            )
        return int(result.rowcount)
