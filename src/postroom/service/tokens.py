"""Who is calling: API tokens checked against the database, briefly cached, and each
token's request rate.

A token's check is remembered for a few seconds (by the SHA-256 of the whole token,
so the cache never holds one), which keeps a busy client from costing a database read
per request; a revoked token stops working within that time. ``last_used_at`` is
written at most once a minute per token.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from postroom.settings import RateLimit
from postroom.store.service_schema import SCOPE_ADMIN
from postroom.store.tokens import TokenInfo, Tokens

CACHE_SECONDS = 5.0
TOUCH_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Caller:
    """The token a request came with."""

    token_id: int
    name: str
    scope: str

    @property
    def admin(self) -> bool:
        return self.scope == SCOPE_ADMIN


class TokenChecker:
    def __init__(self, engine: Engine) -> None:
        self.tokens = Tokens(engine)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._touched: dict[int, float] = {}

    def remembered(self, token: str) -> tuple[bool, Caller | None]:
        """(known, caller) from the last few seconds' checks, without any I/O: when
        ``known`` is false, :meth:`check` must ask the database."""
        hit = self._cache.get(_digest(token))
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        return False, None

    def due_for_touch(self, caller: Caller) -> bool:
        """Whether ``last_used_at`` should be written now (at most once a minute)."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(caller.token_id, -TOUCH_EVERY) < TOUCH_EVERY:
                return False
            self._touched[caller.token_id] = now
        return True

    def check(self, token: str) -> Caller | None:
        """The caller ``token`` belongs to, or None. Blocking: database I/O."""
        known, caller = self.remembered(token)
        if not known:
            info = self.tokens.verify(token)
            caller = None if info is None else _caller(info)
            with self._lock:
                if len(self._cache) > 10_000:  # a flood of made-up tokens
                    self._cache.clear()
                self._cache[_digest(token)] = (time.monotonic(), caller)
        if caller is not None and self.due_for_touch(caller):
            self.tokens.touch(caller.token_id)
        return caller


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _caller(info: TokenInfo) -> Caller:
    return Caller(info.id, info.name, info.scope)


class RateLimiter:
    """A token bucket per token: ``limit.count`` per ``limit.per_seconds``, bursts up to
    one such period. In memory: each service process counts its own requests."""

    def __init__(self, limit: RateLimit | None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}  # token id → (tokens, at)

    def wait_time(self, token_id: int, *, now: float | None = None) -> float:
        """0 when the request may go now (and it is counted), else seconds to wait."""
        if self.limit is None:
            return 0.0
        now = time.monotonic() if now is None else now
        capacity = float(self.limit.count)
        rate = self.limit.per_second
        with self._lock:
            tokens, at = self._buckets.get(token_id, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[token_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[token_id] = (tokens, now)
            return (1.0 - tokens) / rate
