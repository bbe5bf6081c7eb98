"""The outbox's read paths: listings, one message in full, and queue statistics.

Every query runs on a connection marked :func:`~postroom.store.engine.reading`, so on
SQLite an admin looking at the queue never takes the write lock from the workers.
The results are the frozen records of :mod:`postroom.store.views`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Connection, Engine, Select, case, func, select

from postroom.store.engine import reading
from postroom.store.schema import (
    DEFERRED,
    MESSAGE_STATES,
    QUEUED,
    attempts,
    messages,
    recipients,
)
from postroom.store.views import (
    AGE_BUCKETS,
    BUCKET_MINUTES,
    PENDING_MESSAGE,
    PENDING_RECIPIENT,
    Attachment,
    AttemptRecord,
    DomainAges,
    MessageDetail,
    MessageSummary,
    OutboxStats,
    RecipientState,
    body_text,
)

__all__ = [
    "AGE_BUCKETS",
    "count_messages",
    "get_message",
    "is_full_address",
    "like_escape",
    "list_messages",
    "message_status",
    "queue_summary",
    "stats",
    "throughput",
]

# -- queries ---------------------------------------------------------------------------

_summary_columns = (
    messages.c.id,
    messages.c.message_id,
    messages.c.status,
    messages.c.outcome,
    messages.c.type,
    messages.c.subject,
    messages.c.from_header,
    messages.c.attempts,
    messages.c.size,
    messages.c.created_at,
    messages.c.updated_at,
    messages.c.next_attempt_at,
    messages.c.last_error,
)


def check_status(status: str) -> str:
    if status not in MESSAGE_STATES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(MESSAGE_STATES)}")
    return status


def _matching(
    query: Select[Any], *, status: str | None, to: str | None, type: str | None
) -> Select[Any]:
    if status is not None:
        query = query.where(messages.c.status == check_status(status))
    if type:
        query = query.where(messages.c.type == type)
    if to and to.strip():
        wanted = to.strip().lower()
        address = func.lower(recipients.c.address)
        match = (
            address == wanted
            if is_full_address(wanted)
            else address.like("%" + like_escape(wanted) + "%", escape="\\")
        )
        query = query.where(
            messages.c.id.in_(select(recipients.c.message_pk).where(match).scalar_subquery())
        )
    return query


def list_messages(
    engine: Engine,
    *,
    status: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
    to: str | None = None,
    type: str | None = None,
    before_id: int | None = None,
) -> list[MessageSummary]:
    """Messages newest first (by id), optionally only those in ``status``, of ``type``,
    to a recipient (a whole address exactly, any case, or a part of one), or older
    than message ``before_id`` (the next page after it). ``limit`` None: all."""
    query = _matching(
        select(*_summary_columns).order_by(messages.c.id.desc()), status=status, to=to, type=type
    )
    if before_id is not None:
        query = query.where(messages.c.id < before_id)
    query = query.limit(limit).offset(offset)
    with reading(engine.connect()) as connection, connection.begin():
        rows = connection.execute(query).all()
        by_message = _recipients_of(connection, [row.id for row in rows])
    return [_summary(row, by_message.get(row.id, ())) for row in rows]


def count_messages(
    engine: Engine, *, status: str | None = None, to: str | None = None, type: str | None = None
) -> int:
    """How many messages :func:`list_messages` with these filters would find in all."""
    query = _matching(select(func.count()).select_from(messages), status=status, to=to, type=type)
    with reading(engine.connect()) as connection, connection.begin():
        return int(connection.execute(query).scalar_one())


def message_status(engine: Engine, pk: int) -> str | None:
    """The state of message ``pk``, or None if there is no such message."""
    with reading(engine.connect()) as connection, connection.begin():
        found = connection.execute(
            select(messages.c.status).where(messages.c.id == pk)
        ).scalar_one_or_none()
    return None if found is None else str(found)


def get_message(engine: Engine, pk: int) -> MessageDetail | None:
    """One message in full, or None if there is no message ``pk``."""
    with reading(engine.connect()) as connection, connection.begin():
        row = connection.execute(
            select(*_summary_columns, messages.c.raw).where(messages.c.id == pk)
        ).one_or_none()
        if row is None:
            return None
        by_message = _recipients_of(connection, [pk])
        log = connection.execute(
            select(
                attempts.c.worker,
                attempts.c.started_at,
                attempts.c.finished_at,
                attempts.c.outcome,
                attempts.c.detail,
            )
            .where(attempts.c.message_pk == pk)
            .order_by(attempts.c.started_at, attempts.c.id)
        ).all()
    raw = bytes(row.raw)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)  # policy.default builds EmailMessage
    return MessageDetail(
        summary=_summary(row, by_message.get(pk, ())),
        headers=tuple((name, str(value)) for name, value in parsed.items()),
        text=body_text(parsed, "plain"),
        html=body_text(parsed, "html"),
        attachments=tuple(
            Attachment(
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                size=len(part.get_payload(decode=True) or b""),
            )
            for part in parsed.iter_attachments()
            if isinstance(part, EmailMessage)
        ),
        attempt_log=tuple(
            AttemptRecord(number, *attempt) for number, attempt in enumerate(log, start=1)
        ),
        raw=raw,
    )


def queue_summary(engine: Engine, now: float) -> tuple[dict[str, int], float | None]:
    """Messages by state (every state, zeros too) and the oldest pending one's age in
    seconds (None when nothing is pending): ``/healthz``, metrics, the dashboard."""
    with reading(engine.connect()) as connection, connection.begin():
        counts, oldest = _counts_and_oldest(connection)
    return counts, _age(oldest, now)


def _counts_and_oldest(connection: Connection) -> tuple[dict[str, int], float | None]:
    counts = dict.fromkeys(MESSAGE_STATES, 0)
    for status, count in connection.execute(
        select(messages.c.status, func.count()).group_by(messages.c.status)
    ):
        counts[status] = int(count)
    oldest = connection.execute(
        select(func.min(messages.c.created_at)).where(messages.c.status.in_(PENDING_MESSAGE))
    ).scalar_one_or_none()
    return counts, oldest


def _age(since: float | None, now: float) -> float | None:
    return None if since is None else round(max(0.0, now - since), 3)


def throughput(engine: Engine, *, since: float, bucket: float = 60.0) -> list[tuple[float, int]]:
    """Messages delivered (attempts that reached at least one recipient) per ``bucket``
    seconds from ``since`` on: (bucket start, count), empty buckets included."""
    start = since - since % bucket
    index = func.floor((attempts.c.finished_at - start) / bucket)
    with reading(engine.connect()) as connection, connection.begin():
        rows = connection.execute(
            select(index, func.count())
            .where(attempts.c.finished_at >= start, attempts.c.outcome.in_(("sent", "partial")))
            .group_by(index)
        ).all()
    found = {int(i): int(n) for i, n in rows}
    buckets = max(found, default=-1) + 1
    return [(start + i * bucket, found.get(i, 0)) for i in range(buckets)]


def stats(engine: Engine, now: float) -> OutboxStats:
    """Counts by state, the oldest pending message's age, and qshape's age histogram of
    pending recipients by domain (held messages are left out, as Postfix's hold queue)."""
    cutoffs = [(messages.c.created_at > now - m * 60, i) for i, m in enumerate(BUCKET_MINUTES)]
    bucket = case(*cutoffs, else_=len(BUCKET_MINUTES))
    address = func.lower(recipients.c.address)
    with reading(engine.connect()) as connection, connection.begin():
        counts, oldest = _counts_and_oldest(connection)
        pending = (
            select(address.label("address"), bucket.label("bucket"))
            .select_from(recipients.join(messages, recipients.c.message_pk == messages.c.id))
            .where(
                messages.c.status.in_(PENDING_MESSAGE),
                recipients.c.status.in_(PENDING_RECIPIENT),
            )
            .subquery()
        )
        # Grouped outside the subquery: PostgreSQL would not match the CASE's bound
        # parameters in GROUP BY with those in the select list.
        histogram = connection.execute(
            select(pending.c.address, pending.c.bucket, func.count()).group_by(
                pending.c.address, pending.c.bucket
            )
        ).all()
    per_domain: dict[str, list[int]] = defaultdict(lambda: [0] * len(AGE_BUCKETS))
    for addr, index, count in histogram:
        per_domain[str(addr).rpartition("@")[2]][int(index)] += int(count)
    domains = sorted(
        (DomainAges(domain, tuple(row)) for domain, row in per_domain.items()),
        key=lambda d: (-d.total, d.domain),
    )
    total = tuple(sum(column) for column in zip(*(d.buckets for d in domains), strict=True))
    return OutboxStats(
        counts=counts,
        oldest_pending_seconds=_age(oldest, now),
        domains=tuple(domains),
        total=DomainAges("TOTAL", total or (0,) * len(AGE_BUCKETS)),
    )


def is_full_address(text: str) -> bool:
    """``ada@example.org`` is matched exactly; ``example.org`` or ``ada`` as a part."""
    local, at, domain = text.strip().rpartition("@")
    return bool(at and local and domain)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- helpers ---------------------------------------------------------------------------


def _recipients_of(
    connection: Connection, pks: Sequence[int]
) -> dict[int, tuple[RecipientState, ...]]:
    found: dict[int, list[RecipientState]] = defaultdict(list)
    for start in range(0, len(pks), 500):
        for row in connection.execute(
            select(
                recipients.c.message_pk,
                recipients.c.address,
                recipients.c.kind,
                recipients.c.status,
                recipients.c.code,
                recipients.c.reply,
                recipients.c.attempts,
                recipients.c.updated_at,
            )
            .where(recipients.c.message_pk.in_(pks[start : start + 500]))
            .order_by(recipients.c.id)
        ):
            found[row.message_pk].append(RecipientState(*row[1:]))
    return {pk: tuple(rows) for pk, rows in found.items()}


def _summary(row: Any, found: tuple[RecipientState, ...]) -> MessageSummary:
    waiting = row.status in (QUEUED, DEFERRED)
    return MessageSummary(
        id=row.id,
        message_id=row.message_id,
        status=row.status,
        outcome=row.outcome,
        type=row.type,
        subject=row.subject,
        from_header=row.from_header,
        recipients=found,
        attempts=row.attempts,
        size=row.size,
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_attempt_at=row.next_attempt_at if waiting else None,
        last_error=row.last_error,
    )
