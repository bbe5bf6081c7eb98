"""Plain records that cross the store's boundary (no SQLAlchemy objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postroom.message import ComposedMessage


@dataclass(frozen=True, slots=True)
class NewRecipient:
    address: str
    kind: str  # to, cc, bcc, redirect


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A composed message ready to be committed to the outbox."""

    message_id: str
    type: str
    subject: str
    from_header: str
    envelope_from: str
    raw: bytes
    recipients: tuple[NewRecipient, ...]
    smtputf8: bool = False
    idempotency_key: str | None = None
    held: bool = False

    @classmethod
    def from_composed(
        cls,
        composed: ComposedMessage,
        *,
        type: str,
        idempotency_key: str | None = None,
        held: bool = False,
    ) -> NewMessage:
        return cls(
            message_id=composed.message_id,
            type=type,
            subject=composed.subject,
            from_header=composed.from_header,
            envelope_from=composed.envelope.sender,
            raw=composed.as_bytes(),
            recipients=tuple(NewRecipient(a, kind) for a, kind in composed.recipient_kinds),
            smtputf8=composed.envelope.smtputf8,
            idempotency_key=idempotency_key,
            held=held,
        )


@dataclass(frozen=True, slots=True)
class Enqueued:
    id: int
    message_id: str
    created: bool  # False when an idempotency key matched an earlier message


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    pk: int
    address: str


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message leased to one worker, with the recipients still to be delivered."""

    pk: int
    message_id: str
    envelope_from: str
    smtputf8: bool
    raw: bytes
    attempts: int
    queued_at: float
    recipients: tuple[ClaimedRecipient, ...]
    failed_before: int = 0  # recipients that already failed for good in earlier attempts
    sent_before: int = 0  # recipients an earlier attempt delivered to


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    pk: int
    status: str  # sent, deferred, failed
    code: int | None
    reply: str


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """What one delivery attempt decided for one message (see delivery.policy)."""

    pk: int
    status: str  # sent, deferred, failed, queued (released without an attempt)
    counted: bool  # whether this was a delivery attempt (a paused transport's is not)
    next_attempt_at: float
    last_error: str | None
    outcome: str | None  # sent, logged, recorded, partial (what "sent" meant)
    attempt_outcome: str
    detail: str
    started_at: float
    finished_at: float
    recipients: tuple[RecipientOutcome, ...] = field(default=())
    attempt_number: int = 0  # 1 for the first delivery attempt; a paused one repeats it
    queued_at: float = 0.0  # start of the delivery effort: latency counts from here
