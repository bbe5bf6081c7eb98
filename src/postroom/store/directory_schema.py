"""Tables of the directory (users, groups, members) and of broadcasts (DESIGN §5).

They live on the same :data:`~postroom.store.schema.metadata` as the outbox; the store
package imports this module, so any import of the schema sees every table.

A broadcast is a job: its row is written first (status ``fanning-out``), then one
``broadcast_recipients`` row per user it reaches, committed together with that user's
message. ``UNIQUE(broadcast_id, user_id)`` is what makes a resumed fan-out unable to
mail anyone twice. Users skipped (no address, an invalid one, an address another user
already gets) have a row too, with the reason and no message.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from postroom.store.schema import metadata

#: The user that exists from the start, as in OMERO: id 0, admin, no address.
ROOT_ID = 0
ROOT_USERNAME = "root"

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("full_name", String(255), nullable=False, default=""),
    Column("email", String(320), nullable=True),  # normalised addr-spec, or no address
    Column("admin", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # argon2 hash of the console password (admins only); none: cannot log in.
    Column("password_hash", String(255), nullable=True),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("user_id", "group_id"),
    Index("ix_members_group_id", "group_id"),
)

# Broadcast states: the fan-out is running (or was interrupted), every message is in
# the outbox, every message is finished, or an admin cancelled it.
FANNING_OUT = "fanning-out"
BROADCAST_QUEUED = "queued"
DONE = "done"
CANCELLED = "cancelled"
BROADCAST_STATES = (FANNING_OUT, BROADCAST_QUEUED, DONE, CANCELLED)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("html", Boolean, nullable=False, default=False),
    Column("type", String(64), nullable=False),
    Column("audience", Text, nullable=False),  # JSON: everyone, group and user ids, inactive
    Column("cc", Text, nullable=False),  # JSON array of addresses
    Column("bcc", Text, nullable=False),  # JSON array of addresses
    Column("status", String(16), nullable=False),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("rate", String(32), nullable=True),  # as given: 50/min
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("fanned_out_at", Float, nullable=True),
    # Users selected so far, their messages, those skipped; copies for --cc/--bcc.
    Column("total", Integer, nullable=False, default=0),
    Column("queued", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("copies", Integer, nullable=False, default=0),
    # Who runs the fan-out, until when: another process takes over once it expires.
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Index("ix_broadcasts_status", "status"),
)

broadcast_recipients = Table(
    "broadcast_recipients",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "broadcast_id", Integer, ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False
    ),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=True),  # none for cc/bcc
    Column("kind", String(8), nullable=False),  # user, cc, bcc
    Column("address", String(320), nullable=True),
    Column("message_pk", Integer, ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
    Column("skipped", String(16), nullable=True),  # why no message: no-address, invalid...
    UniqueConstraint("broadcast_id", "user_id"),
    Index("ix_broadcast_recipients_message_pk", "message_pk"),
)

__all__ = ["broadcast_recipients", "broadcasts", "groups", "members", "users"]
