"""API tokens: created once, kept only as a hash, looked up by their public part.

A token reads ``pr_<lookup>_<secret>``: ``lookup`` (12 characters) finds the row, and
the SHA-256 of ``secret`` (43 characters, 256 random bits) is compared in constant
time with the stored one. Such a secret needs no slow hash: nobody can guess it, so a
leaked table gives nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from postroom.errors import TokenError
from postroom.store.engine import reading
from postroom.store.service_schema import TOKEN_SCOPES, api_tokens
from postroom.store.views import iso_time

PREFIX = "pr_"
_TOKEN = re.compile(r"^pr_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listings show it: never its secret."""

    id: int
    name: str
    scope: str
    lookup: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def shown(self) -> str:
        """What identifies the token to a person: its start, as it appears in configs."""
        return f"{PREFIX}{self.lookup}_…"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "token": self.shown,
            "created_at": iso_time(self.created_at),
            "last_used_at": iso_time(self.last_used_at),
            "revoked_at": iso_time(self.revoked_at),
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lookup_code() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def parse_token(token: str) -> tuple[str, str] | None:
    """(lookup, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


_columns = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.scope,
    api_tokens.c.lookup,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
)


class Tokens:
    """SQL of the API tokens."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, *, scope: str) -> tuple[TokenInfo, str]:
        """Store a new token; return it with the token itself (shown this once)."""
        if not _NAME.match(name):
            raise TokenError(
                f"token name {name!r} is not allowed; use letters, digits and . _ @ + - "
                "(at most 64), e.g. omero-server"
            )
        if scope not in TOKEN_SCOPES:
            raise TokenError(f"scope {scope!r} is not one of {', '.join(TOKEN_SCOPES)}")
        lookup, secret = _lookup_code(), secrets.token_urlsafe(32)
        now = time.time()
        try:
            with self.engine.begin() as connection:
                pk = connection.execute(
                    api_tokens.insert()
                    .values(
                        name=name,
                        scope=scope,
                        lookup=lookup,
                        secret_hash=_digest(secret),
                        created_at=now,
                    )
                    .returning(api_tokens.c.id)
                ).scalar_one()
        except IntegrityError:
            raise TokenError(
                f"a token named {name!r} exists already; pick another name, or revoke it "
                f"first with `postroom token revoke {name}`"
            ) from None
        info = TokenInfo(int(pk), name, scope, lookup, now, None, None)
        return info, f"{PREFIX}{lookup}_{secret}"

    def list(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        query = select(*_columns).order_by(api_tokens.c.id)
        if not include_revoked:
            query = query.where(api_tokens.c.revoked_at.is_(None))
        with reading(self.engine.connect()) as connection, connection.begin():
            return [TokenInfo(*row) for row in connection.execute(query)]

    def revoke(self, name: str) -> TokenInfo:
        now = time.time()
        with self.engine.begin() as connection:
            row = connection.execute(
                select(*_columns).where(api_tokens.c.name == name)
            ).one_or_none()
            if row is None:
                raise TokenError(f"no token named {name!r}; see `postroom token list`")
            if row.revoked_at is None:
                connection.execute(
                    update(api_tokens).where(api_tokens.c.id == row.id).values(revoked_at=now)
                )
        info = TokenInfo(*row)
        return info if info.revoked_at is not None else _with_revoked(info, now)

    def verify(self, token: str) -> TokenInfo | None:
        """The active token ``token`` is, or None (unknown, malformed or revoked)."""
        parts = parse_token(token)
        if parts is None:
            return None
        lookup, secret = parts
        with reading(self.engine.connect()) as connection, connection.begin():
            row = connection.execute(
                select(*_columns, api_tokens.c.secret_hash).where(api_tokens.c.lookup == lookup)
            ).one_or_none()
        if row is None:
            _digest(secret)  # the same work whether the lookup part exists or not
            return None
        if not hmac.compare_digest(_digest(secret), row.secret_hash):
            return None
        info = TokenInfo(*row[:-1])
        return info if info.active else None

    def touch(self, token_id: int, *, now: float | None = None) -> None:
        """Note that the token was used (callers do this at most once a minute)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(last_used_at=time.time() if now is None else now)
            )


def _with_revoked(info: TokenInfo, now: float) -> TokenInfo:
    return TokenInfo(
        info.id, info.name, info.scope, info.lookup, info.created_at, info.last_used_at, now
    )
