"""What one delivery run counts, and how a thread keeps a batch's outcomes until they
are committed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from postroom.store.records import MessageOutcome

RECORD_EVERY = 100  # results kept in memory before a commit: bounds duplicates after a crash


@dataclass
class RunStats:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    paused: int = 0
    errors: int = 0  # database failures the worker waited out
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcomes: list[MessageOutcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                if outcome.status == "sent":
                    self.sent += 1
                elif outcome.status == "deferred":
                    self.deferred += 1
                elif outcome.status == "failed":
                    self.failed += 1
                else:
                    self.paused += 1


@dataclass
class Feed:
    """Why the messages handed to one ``send_many`` stopped early."""

    waits_for_slot: bool = False  # for the rate limit's next slot: carry on after it


class Results:
    """Outcomes of one batch, committed every RECORD_EVERY messages: a crash can then
    repeat at most that many messages the server had already accepted."""

    def __init__(self, record: Callable[[str, list[MessageOutcome]], None], owner: str) -> None:
        self._record = record
        self._owner = owner
        self._pending: list[MessageOutcome] = []

    def add(self, outcome: MessageOutcome) -> None:
        self._pending.append(outcome)
        if len(self._pending) >= RECORD_EVERY:
            self.flush()

    def flush(self) -> None:
        self._record(self._owner, self._pending)
        self._pending = []
