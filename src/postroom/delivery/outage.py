"""A database outage seen by one worker: the results it holds, and the waiting.

Results of messages the server already accepted are never dropped when the database
cannot take them: each delivery thread keeps its own, sends nothing new, and commits
them first when the database answers again. A message is then sent twice only if its
lease ran out meanwhile and another worker took it (an outage longer than
``delivery.lease``). A worker that stops before the database is back leaves them in
its journal (delivery/journal.py) for the next worker on the same HOME.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from postroom.delivery.results import RunStats
from postroom.store.records import MessageOutcome

logger = logging.getLogger("postroom.worker")
LONGEST_WAIT = 30.0  # seconds between tries, at most


class DatabaseOutage:
    def __init__(
        self,
        record: Callable[[str, list[MessageOutcome]], None],
        stop: threading.Event,
        poll_interval: float,
        stats: RunStats,
    ) -> None:
        self._record = record
        self._stop = stop
        self._poll_interval = poll_interval
        self._stats = stats
        self._lock = threading.Lock()
        self._kept: dict[str, list[MessageOutcome]] = {}  # per delivery thread
        self._failures = 0

    def keep(self, owner: str, outcomes: list[MessageOutcome]) -> None:
        with self._lock:
            self._kept[owner] = self._kept.get(owner, []) + outcomes

    def holds(self, owner: str) -> bool:
        return bool(self._kept.get(owner))

    def record_kept(self, owner: str) -> None:
        """Commit what ``owner`` kept; raises DBAPIError while the database is down."""
        kept = self._kept.get(owner, [])
        self._record(owner, kept)
        with self._lock:
            self._kept.pop(owner, None)
        logger.warning("the database is back: %d result(s) kept meanwhile are recorded", len(kept))
        self.back()

    def last_record(self, owner: str) -> None:
        """Stopping with results still kept: one last try, else say what it means."""
        if not self.holds(owner):
            return
        try:
            self.record_kept(owner)
        except DBAPIError:
            logger.error(
                "%d result(s) could not be recorded (the database is down): they stay in "
                "the journal, for the next worker on this HOME to record",
                len(self._kept.get(owner, [])),
            )

    def trouble(self, exc: DBAPIError, once: bool) -> bool:
        """Log a database failure (once per outage) and wait, twice as long each time up
        to 30 s; True when the loop should end."""
        with self._lock:
            self._stats.errors += 1
            self._failures += 1
            failures = self._failures
        if failures == 1:
            logger.error("database error, delivery waits and retries: %s", exc.orig or exc)
        else:
            logger.debug("database still failing (%d): %s", failures, exc.orig or exc)
        if once:
            return True
        wait = min(LONGEST_WAIT, max(1.0, self._poll_interval) * 2 ** min(failures - 1, 5))
        self._stop.wait(wait)
        return False

    def back(self) -> None:
        with self._lock:
            was, self._failures = self._failures, 0
        if was:
            logger.warning("the database answers again; delivery goes on")
