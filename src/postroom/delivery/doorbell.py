"""The doorbell: how new mail wakes an idle delivery thread at once.

An idle thread used to sleep a whole ``delivery.poll_interval`` before it looked
again, so mail accepted over HTTP waited up to a second. Now it waits on the doorbell
instead, with the poll interval only as the longest wait. Whoever commits new or newly
due mail in this process rings it; on PostgreSQL a listener rings it for mail
committed anywhere else (``NOTIFY``). Rings are counted, so a ring that comes between
a thread's look at the queue and its wait is not lost.
"""

from __future__ import annotations

import threading


class Doorbell:
    def __init__(self) -> None:
        self._rung = 0
        self._condition = threading.Condition()

    @property
    def rings(self) -> int:
        """How often it has rung: read before looking at the queue, pass to :meth:`wait`."""
        with self._condition:
            return self._rung

    def ring(self) -> None:
        with self._condition:
            self._rung += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait until it rings after ``seen`` rings, or ``timeout`` seconds; True if rung."""
        with self._condition:
            return self._condition.wait_for(lambda: self._rung != seen, timeout)
