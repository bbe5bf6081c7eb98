"""Tables of the outbox and the mail record (and, later, the directory).

One row per message with its composed bytes (composed once, at enqueue, so that what
an admin sees in ``outbox show`` is exactly what goes out), one row per recipient with
its own state, and an audit row per delivery attempt. The mail record (``captured``)
keeps every message the capture server accepted or recording mode stored, with its
SMTP envelope.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Message states (DESIGN §4); recipients use queued/sent/deferred/failed.
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"
HELD = "held"
MESSAGE_STATES = (QUEUED, SENDING, SENT, DEFERRED, FAILED, HELD)
#: The outcome of a sent message that some recipients refused for good: it reached
#: the others, so it is not failed (failed means it reached nobody).
PARTIAL = "partial"

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("status", String(16), nullable=False),
    # What "sent" meant: delivered over the network, only logged, recorded, or
    # delivered to some recipients while others refused it (partial).
    Column("outcome", String(16), nullable=True),
    Column("type", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("from_header", Text, nullable=False),
    Column("envelope_from", String(320), nullable=False),
    Column("smtputf8", Boolean, nullable=False, default=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Start of the current delivery effort: delivery.max_age counts from here, and an
    # admin's retry starts a new effort.
    Column("queued_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_messages_due", "status", "next_attempt_at"),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_pk", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(320), nullable=False),
    Column("kind", String(8), nullable=False),  # to, cc, bcc, redirect
    Column("status", String(16), nullable=False),
    Column("code", Integer, nullable=True),
    Column("reply", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
    Index("ix_recipients_message_pk", "message_pk"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_pk", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("worker", String(128), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("outcome", String(16), nullable=False),  # sent, deferred, failed, paused, partial
    Column("detail", Text, nullable=False),  # per-recipient codes and replies, or the error
    Index("ix_attempts_message_pk", "message_pk"),
)

# Where a captured message came from: `postroom catch` or mail.transport=capture.
SOURCE_SMTP = "smtp"
SOURCE_TRANSPORT = "transport"

captured = Table(
    "captured",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("source", String(16), nullable=False),
    Column("mail_from", String(320), nullable=False),
    Column("rcpt_tos", Text, nullable=False),  # JSON array of the envelope recipients
    Column("subject", Text, nullable=False),
    Column("from_header", Text, nullable=False),
    Column("to_header", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("peer", String(128), nullable=True),
    Column("helo", String(255), nullable=True),
    Column("tls", Boolean, nullable=False, default=False),
    Column("auth_user", String(255), nullable=True),
    # No index but the primary key: every commit of the capture server writes each
    # index again, and listings read at most capture.max_messages rows.
    sqlite_autoincrement=True,  # ids are never reused after pruning or clearing
)

# The shared send rate (delivery.rate_limit): one row per limit, holding the time of
# the next free sending slot; every worker on every machine reserves slots from it.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_free_at", Float, nullable=False),
)

__all__ = ["attempts", "captured", "messages", "metadata", "rate_limits", "recipients"]
