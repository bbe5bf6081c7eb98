"""Tables of the HTTP service and of delivery status (DESIGN §9).

``api_tokens`` holds API tokens by a public lookup part and a SHA-256 of the secret
part, never a token itself. ``web_sessions`` holds console sessions by the SHA-256 of
the cookie's value. ``idempotency_keys`` remembers the first successful answer to a
POST sent with an ``Idempotency-Key``, per token. ``workers`` is where every delivery
worker, on any machine, says that it is alive and whether delivery is paused (and why),
for ``/healthz`` and the console's banner.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from postroom.store.schema import metadata

#: Token scopes: ``send`` may enqueue mail; ``admin`` may do everything.
SCOPE_SEND = "send"
SCOPE_ADMIN = "admin"
TOKEN_SCOPES = (SCOPE_SEND, SCOPE_ADMIN)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("scope", String(8), nullable=False),
    Column("lookup", String(16), nullable=False, unique=True),  # public part of the token
    Column("secret_hash", String(64), nullable=False),  # SHA-256 hex of the secret part
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 hex of the cookie's value
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_web_sessions_expires_at", "expires_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(64), nullable=False),  # whose key: a hash of the token's lookup
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),  # method, path and body
    Column("status", Integer, nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("scope", "key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

workers = Table(
    "workers",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("paused_until", Float, nullable=True),
    Column("pause_reason", Text, nullable=True),
    Column("pause_fix", Text, nullable=True),
)

__all__ = ["api_tokens", "idempotency_keys", "web_sessions", "workers"]
