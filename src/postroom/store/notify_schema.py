"""Tables of event notifications (DESIGN §6).

``notification_optouts`` holds the types each user has switched off. ``pending_notifications``
holds what waits for a window to close (a digest, a throttled login.failed) so that a
crash loses none of it. ``thread_participants`` remembers who commented on an object, so
that later comments reach earlier commenters. ``heartbeats`` is the watchdog's record of
host apps that beat. ``signing_keys`` holds the key of unsubscribe links, shared by every
process that reads this database.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text

from postroom.store.schema import metadata

notification_optouts = Table(
    "notification_optouts",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("type", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
)

pending_notifications = Table(
    "pending_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    # Items with the same key and due time become one mail (one recipient, one window).
    Column("group_key", String(400), nullable=False),
    Column("due_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("item", Text, nullable=False),  # JSON: the event and its recipient
    Index("ix_pending_notifications_due_at", "due_at"),
    Index("ix_pending_notifications_group_key", "group_key"),
)

thread_participants = Table(
    "thread_participants",
    metadata,
    Column("thread", String(255), primary_key=True),  # kind/id of the object
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", Float, nullable=False),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("every", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("down_at", Float, nullable=True),  # when server.down was sent for the silence
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

__all__ = [
    "heartbeats",
    "notification_optouts",
    "pending_notifications",
    "signing_keys",
    "thread_participants",
]
