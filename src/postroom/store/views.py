"""What the outbox's read paths return: frozen records whose ``to_json()`` is the JSON
of DESIGN §4 (``--json`` listings, the HTTP API), and the helpers that make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from postroom.store.schema import DEFERRED, QUEUED, SENDING, SENT

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
        """Sent over the network (to some recipients at least), not logged or recorded."""
        return self.status == SENT and self.outcome in (None, "sent", "partial")

    @property
    def refused(self) -> int:
        """Recipients whose server refused the message for good."""
        return sum(1 for r in self.recipients if r.status == "failed")

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
            "failed_recipients": self.refused,
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


def body_text(parsed: EmailMessage, subtype: str) -> str | None:
    try:
        part = parsed.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content = part.get_content()
    except (LookupError, ValueError, AttributeError):  # malformed or unknown charset
        return None
    return content.replace("\r\n", "\n") if isinstance(content, str) else None
