"""The outbox's read paths: listings, one message in full, and queue statistics.

Every query runs on a connection marked :func:`~postroom.store.engine.reading`, so on
SQLite an admin looking at the queue never takes the write lock from the workers.
The results are frozen records whose ``to_json()`` is the JSON of DESIGN §4.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select

from postroom.store.engine import reading
from postroom.store.schema import (
    DEFERRED,
    MESSAGE_STATES,
    QUEUED,
    SENDING,
    SENT,
    attempts,
    messages,
    recipients,
)

#: Messages still on their way (not finished, not held by an admin).
PENDING_MESSAGE = (QUEUED, SENDING, DEFERRED)
#: Recipients still to be delivered.
PENDING_RECIPIENT = (QUEUED, DEFERRED)
#: Upper bounds of the age buckets, in minutes, as Postfix's qshape draws them.
BUCKET_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
AGE_BUCKETS = (
    *(f"{low}-{high}m" for low, high in zip((0, *BUCKET_MINUTES), BUCKET_MINUTES, strict=False)),
    f"{BUCKET_MINUTES[-1]}m+",
)


def iso_time(epoch: float | None) -> str | None:
    """ISO 8601 in UTC, to the second: ``2024-05-01T12:00:00Z``."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientState:
    address: str
    kind: str  # to, cc, bcc, redirect
    status: str  # queued, sent, deferred, failed
    code: int | None
    reply: str | None
    attempts: int
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": self.kind,
            "status": self.status,
            "code": self.code,
            "reply": self.reply,
            "attempts": self.attempts,
            "updated_at": iso_time(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    number: int  # 1 for the first attempt of the message
    worker: str
    started_at: float
    finished_at: float
    outcome: str  # sent, deferred, failed, paused, partial
    detail: str  # per-recipient codes and replies (JSON), or the error

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "worker": self.worker,
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """One message as listings show it, with every recipient's own state."""

    id: int
    message_id: str
    status: str
    outcome: str | None  # sent, logged, recorded: what "sent" meant
    type: str
    subject: str
    from_header: str
    recipients: tuple[RecipientState, ...]
    attempts: int
    size: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None  # only while the message waits for a try
    last_error: str | None

    @property
    def delivered(self) -> bool:
        """Sent over the network, not only logged or recorded."""
        return self.status == SENT and self.outcome in (None, "sent")

    @property
    def last_reply(self) -> str | None:
        """The error that holds the message back, else the newest recipient reply."""
        if self.last_error:
            return self.last_error
        answered = [r for r in self.recipients if r.reply]
        if not answered:
            return None
        latest = max(answered, key=lambda r: r.updated_at)
        return f"{latest.code} {latest.reply}" if latest.code else latest.reply

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "outcome": self.outcome,
            "type": self.type,
            "subject": self.subject,
            "from": self.from_header,
            "recipients": [r.to_json() for r in self.recipients],
            "attempts": self.attempts,
            "message_id": self.message_id,
            "size": self.size,
            "created_at": iso_time(self.created_at),
            "updated_at": iso_time(self.updated_at),
            "next_attempt_at": iso_time(self.next_attempt_at),
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """Everything about one message, down to the bytes that go (or went) out."""

    summary: MessageSummary
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    attempt_log: tuple[AttemptRecord, ...]
    raw: bytes

    @property
    def raw_text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "headers": [{"name": name, "value": value} for name, value in self.headers],
            "text": self.text,
            "html": self.html,
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in self.attachments
            ],
            "attempt_log": [a.to_json() for a in self.attempt_log],
            "raw": self.raw_text,
        }


@dataclass(frozen=True, slots=True)
class DomainAges:
    """One row of the age histogram: pending recipients of a domain per age bucket."""

    domain: str
    buckets: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.buckets)

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "total": self.total, "buckets": list(self.buckets)}


@dataclass(frozen=True, slots=True)
class OutboxStats:
    counts: dict[str, int]  # every state of MESSAGE_STATES, zeros included
    oldest_pending_seconds: float | None  # None when nothing is pending
    domains: tuple[DomainAges, ...]  # most pending recipients first
    total: DomainAges  # the TOTAL row

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "oldest_pending_seconds": self.oldest_pending_seconds,
            "age_buckets": list(AGE_BUCKETS),
            "domains": [d.to_json() for d in self.domains],
            "total": self.total.to_json(),
        }


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


def list_messages(
    engine: Engine, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[MessageSummary]:
    """Messages newest first, optionally only those in ``status``."""
    query = select(*_summary_columns).order_by(messages.c.created_at.desc(), messages.c.id.desc())
    if status is not None:
        query = query.where(messages.c.status == check_status(status))
    query = query.limit(limit).offset(offset)
    with reading(engine.connect()) as connection, connection.begin():
        rows = connection.execute(query).all()
        by_message = _recipients_of(connection, [row.id for row in rows])
    return [_summary(row, by_message.get(row.id, ())) for row in rows]


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


def stats(engine: Engine, now: float) -> OutboxStats:
    """Counts by state, the oldest pending message's age, and qshape's age histogram of
    pending recipients by domain (held messages are left out, as Postfix's hold queue)."""
    cutoffs = [(messages.c.created_at > now - m * 60, i) for i, m in enumerate(BUCKET_MINUTES)]
    bucket = case(*cutoffs, else_=len(BUCKET_MINUTES))
    address = func.lower(recipients.c.address)
    with reading(engine.connect()) as connection, connection.begin():
        counts = dict.fromkeys(MESSAGE_STATES, 0)
        for status, count in connection.execute(
            select(messages.c.status, func.count()).group_by(messages.c.status)
        ):
            counts[status] = int(count)
        oldest = connection.execute(
            select(func.min(messages.c.created_at)).where(messages.c.status.in_(PENDING_MESSAGE))
        ).scalar_one_or_none()
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
        oldest_pending_seconds=None if oldest is None else round(max(0.0, now - oldest), 3),
        domains=tuple(domains),
        total=DomainAges("TOTAL", total or (0,) * len(AGE_BUCKETS)),
    )


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


def body_text(parsed: EmailMessage, subtype: str) -> str | None:
    try:
        part = parsed.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content = part.get_content()
    except (LookupError, ValueError, AttributeError):  # malformed or unknown charset
        return None
    return content.replace("\r\n", "\n") if isinstance(content, str) else None
