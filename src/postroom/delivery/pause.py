"""A worker's pause on a configuration fault (docs/outbox.md, "Configuration faults
pause delivery"): a refused login or a TLS failure is not the message's fault, so no
thread sends anything until the pause ends. The first pause lasts 5 s, each next one
twice as long up to delivery.backoff_max; the fault is logged once, and so is the end
of it, when a connection works again."""

from __future__ import annotations

import logging
import threading
import time

from postroom.delivery.events import WorkerEvents
from postroom.delivery.results import RunStats
from postroom.errors import TransportConfigError

logger = logging.getLogger("postroom.worker")

FIRST_PAUSE = 5.0


class Pause:
    def __init__(self, worker: str, events: WorkerEvents, stats: RunStats, longest: float) -> None:
        self.worker = worker
        self.events = events
        self.stats = stats
        self.longest = longest
        #: Until when (``time.monotonic()``) nothing is sent; read without the lock.
        self.until = 0.0
        self._lock = threading.Lock()
        self._delay = FIRST_PAUSE
        self._reported: set[str] = set()

    def fault(self, exc: TransportConfigError) -> None:
        """A connection failed on ``exc``: pause (unless already paused), say so once."""
        with self._lock:
            now = time.monotonic()
            if self.until <= now:
                self.until = now + self._delay
                self._delay = min(self._delay * 2, self.longest)
                self.events.paused(self.worker, exc, time.time() + (self.until - now))
            key = f"{type(exc).__name__}: {exc}"
            if key not in self._reported:
                self._reported.add(key)
                logger.error(
                    "mail delivery paused, messages stay queued: %s "
                    "(check with `postroom test-email`)",
                    exc,
                )
            self.stats.paused += 1

    def works(self) -> None:
        """A connection opened: the next fault pauses 5 s again."""
        with self._lock:
            if self._reported:
                logger.warning("mail delivery resumed")
                self.events.resumed(self.worker)
            self._delay = FIRST_PAUSE
            self._reported.clear()

    def end(self) -> None:
        """End the pause now (the configuration changed) and forget what was said."""
        with self._lock:
            self.until = 0.0
            self._delay = FIRST_PAUSE
            self._reported.clear()

    def wait_out(self, once: bool, stop: threading.Event) -> bool:
        """Sleep through the pause; True when the caller should end instead (``once``,
        or ``stop`` set meanwhile)."""
        remaining = self.until - time.monotonic()
        if remaining <= 0:
            return False
        if once:
            return True
        stop.wait(remaining)
        return stop.is_set()
