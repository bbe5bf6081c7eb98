"""A token bucket shared by a worker's connections (delivery.rate_limit)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from postroom.settings import RateLimit


class TokenBucket:
    """Lets ``rate.count`` messages through per ``rate.per_seconds``, smoothly.

    The bucket holds at most one second's worth of tokens (at least one), so a
    quiet period does not turn into a burst that a provider would punish.
    """

    def __init__(self, rate: RateLimit, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = rate.per_second
        self._capacity = max(1.0, self._per_second)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Take a token if one is there (returns 0), else say how long to wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._per_second)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._per_second

    def acquire(self, stop: threading.Event) -> bool:
        """Block until a token is taken (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            delay = self.wait_time()
            if delay == 0:
                return True
            stop.wait(delay)
        return False
