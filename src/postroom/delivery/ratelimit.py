"""delivery.rate_limit: one send rate shared by every worker through the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from postroom.settings import RateLimit

#: Reserved slots this far in the past are dropped, not sent in a catch-up burst.
STALE_AFTER = 1.0
#: At most this many slots are reserved at once (about a second's worth, at least one).
MOST_PER_BLOCK = 100

#: ``reserve(count, interval, now)`` → (time of the first of ``count`` reserved slots,
#: end of the reservation as stored).
Reserve = Callable[[int, float, float], tuple[float, float]]
#: ``give_back(end, count, interval)`` → whether the last ``count`` slots went back.
GiveBack = Callable[[float, int, float], bool]


class SharedPace:
    """One delivery thread's share of the rate: it reserves blocks of slots from the
    shared store and sends one message per slot, at the slot's time.

    Slots are spaced evenly (``per_seconds / count`` apart), so there are no bursts,
    which providers punish. Uses wall-clock time, since the slots are shared with
    other machines (their clocks should be in sync, as NTP keeps them).
    """

    def __init__(
        self,
        rate: RateLimit,
        reserve: Reserve,
        give_back: GiveBack | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = rate.per_seconds / rate.count
        self.block = max(1, min(MOST_PER_BLOCK, int(rate.per_second)))
        self._reserve = reserve
        self._give_back = give_back
        self._clock = clock
        self._next = 0.0
        self._end = 0.0
        self._left = 0

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for this thread's next slot (True), or until ``stop`` is set (False)."""
        if stop.is_set():
            return False
        delay = self.wait_time()
        if delay > 0 and stop.wait(delay):
            return False
        self._next += self.interval
        self._left -= 1
        return True

    def wait_time(self) -> float:
        """Seconds until this thread's next slot (reserving slots if it has none left)."""
        now = self._clock()
        if self._left and now - self._next > STALE_AFTER:
            self._left = 0
        if not self._left:
            self._next, self._end = self._reserve(self.block, self.interval, now)
            self._left = self.block
        return max(0.0, self._next - now)

    def close(self) -> None:
        """Give unused slots back, so other workers need not wait through them."""
        if self._left and self._give_back is not None:
            self._give_back(self._end, self._left, self.interval)
        self._left = 0
