"""What one delivery run counts, and how a thread keeps a batch's outcomes until they
are committed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from postroom.delivery.journal import Journal
from postroom.store.records import MessageOutcome

RECORD_EVERY = 100  # results kept in memory (and in the journal) before a commit


@dataclass
class RunStats:
    """Messages by what their attempt decided (a message sent to some recipients and
    refused by others counts as sent, and in ``partial``), and recipients by theirs."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    paused: int = 0
    partial: int = 0  # of the sent: some recipients refused it for good
    errors: int = 0  # database failures the worker waited out
    recipients: dict[str, int] = field(default_factory=dict)  # sent, deferred, failed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, outcomes: list[MessageOutcome]) -> None:
        """Add a committed group's outcomes (with ``list.count``: it runs for every
        message delivered)."""
        statuses = [o.status for o in outcomes]
        sent, deferred, failed = (statuses.count(s) for s in ("sent", "deferred", "failed"))
        partial = [o.outcome for o in outcomes if o.status == "sent"].count("partial")
        of_recipients = [r.status for o in outcomes for r in o.recipients]
        with self._lock:
            self.sent += sent
            self.partial += partial
            self.deferred += deferred
            self.failed += failed
            self.paused += len(statuses) - sent - deferred - failed
            for status in set(of_recipients):
                count = of_recipients.count(status)
                self.recipients[status] = self.recipients.get(status, 0) + count

    def summary(self) -> str:
        """``delivered 2 (1 partly), deferred 0, failed 0; recipients: 5 sent, 1 refused``"""
        partly = f" ({self.partial} partly)" if self.partial else ""
        line = f"delivered {self.sent}{partly}, deferred {self.deferred}, failed {self.failed}"
        if self.recipients:
            got = self.recipients
            line += (
                f"; recipients: {got.get('sent', 0)} sent, {got.get('deferred', 0)} deferred, "
                f"{got.get('failed', 0)} refused"
            )
        if self.paused:
            line += f"; paused {self.paused} time(s)"
        if self.errors:
            line += f"; {self.errors} database error(s)"
        return line


@dataclass
class Feed:
    """Why the messages handed to one ``send_many`` stopped early."""

    waits_for_slot: bool = False  # for the rate limit's next slot: carry on after it


class Results:
    """Outcomes of one batch, each journaled as it comes and committed every
    RECORD_EVERY messages: a crash repeats none of those the journal holds."""

    def __init__(
        self,
        record: Callable[[str, list[MessageOutcome]], None],
        owner: str,
        journal: Journal | None = None,
    ) -> None:
        self._record = record
        self._owner = owner
        self._journal = journal
        self._pending: list[MessageOutcome] = []

    def add(self, outcome: MessageOutcome) -> None:
        if self._journal is not None:
            self._journal.write(outcome)
        self._pending.append(outcome)
        if len(self._pending) >= RECORD_EVERY:
            self.flush()

    def flush(self) -> None:
        self._record(self._owner, self._pending)  # kept until it is committed
        self._pending = []

    @property
    def unrecorded(self) -> list[MessageOutcome]:
        """Outcomes not yet committed (the database failed): the worker keeps them."""
        return list(self._pending)
