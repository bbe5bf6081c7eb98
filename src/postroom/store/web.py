"""Console sessions and remembered idempotent answers: the service's own state.

Both live in the database so that a restart, or a second ``postroom serve`` behind the
same load balancer, sees the same logins and the same remembered answers.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from postroom.store.directory_schema import users
from postroom.store.engine import reading
from postroom.store.service_schema import idempotency_keys, web_sessions


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live console session and the admin it belongs to."""

    user_id: int
    username: str
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class RememberedAnswer:
    request_hash: str
    status: int
    content_type: str
    body: bytes


class Sessions:
    """SQL of console sessions, kept by the SHA-256 of the cookie's value."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, user_id: int, *, lifetime: float) -> tuple[str, SessionInfo]:
        """A new session; returns the cookie's value (kept nowhere else) and the session."""
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as connection:
            connection.execute(
                insert(web_sessions).values(
                    id_hash=_digest(cookie),
                    user_id=user_id,
                    csrf=csrf,
                    created_at=now,
                    seen_at=now,
                    expires_at=now + lifetime,
                )
            )
            username = connection.execute(
                select(users.c.username).where(users.c.id == user_id)
            ).scalar_one()
        return cookie, SessionInfo(user_id, username, csrf, now + lifetime)

    def get(self, cookie: str, *, now: float | None = None) -> SessionInfo | None:
        """The session of a cookie while it lasts and its user is an active admin."""
        now = time.time() if now is None else now
        with reading(self.engine.connect()) as connection, connection.begin():
            row = connection.execute(
                select(
                    web_sessions.c.user_id,
                    users.c.username,
                    web_sessions.c.csrf,
                    web_sessions.c.expires_at,
                )
                .select_from(web_sessions.join(users, users.c.id == web_sessions.c.user_id))
                .where(
                    web_sessions.c.id_hash == _digest(cookie),
                    web_sessions.c.expires_at > now,
                    users.c.admin.is_(True),
                    users.c.active.is_(True),
                )
            ).one_or_none()
        return None if row is None else SessionInfo(*row)

    def extend(self, cookie: str, *, lifetime: float, now: float | None = None) -> None:
        """Slide the expiry of an active session (callers do it now and then, not per hit)."""
        now = time.time() if now is None else now
        with self.engine.begin() as connection:
            connection.execute(
                update(web_sessions)
                .where(web_sessions.c.id_hash == _digest(cookie))
                .values(seen_at=now, expires_at=now + lifetime)
            )

    def end(self, cookie: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                delete(web_sessions).where(web_sessions.c.id_hash == _digest(cookie))
            )

    def end_all_of(self, user_id: int) -> int:
        """Log a user out everywhere (their password changed, say)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(web_sessions).where(web_sessions.c.user_id == user_id)
            )
        return int(result.rowcount)

    def purge(self, *, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(web_sessions).where(web_sessions.c.expires_at <= now)
            )
        return int(result.rowcount)


class IdempotentAnswers:
    """The first successful answer to each (token, Idempotency-Key)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, scope: str, key: str) -> RememberedAnswer | None:
        with reading(self.engine.connect()) as connection, connection.begin():
            row = connection.execute(
                select(
                    idempotency_keys.c.request_hash,
                    idempotency_keys.c.status,
                    idempotency_keys.c.content_type,
                    idempotency_keys.c.body,
                ).where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
            ).one_or_none()
        if row is None:
            return None
        return RememberedAnswer(row[0], int(row[1]), row[2], bytes(row[3]))

    def remember(self, scope: str, key: str, answer: RememberedAnswer) -> RememberedAnswer:
        """Keep ``answer``; when another request with the key got there first, return
        that one's (the first answer is the one every repeat gets)."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(idempotency_keys).values(
                        scope=scope,
                        key=key,
                        request_hash=answer.request_hash,
                        status=answer.status,
                        content_type=answer.content_type,
                        body=answer.body,
                        created_at=time.time(),
                    )
                )
        except IntegrityError:
            return self.get(scope, key) or answer
        return answer

    def purge(self, *, older_than: float) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < older_than)
            )
        return int(result.rowcount)
