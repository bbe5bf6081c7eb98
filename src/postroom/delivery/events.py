"""What a delivery worker tells the rest of its process, as it happens.

The worker only delivers; whoever runs it decides what to do with its news (the
runtime writes the worker's status row for ``/healthz`` and counts metrics). Every
hook here does nothing, so a subclass overrides only what it needs. Hooks run on
delivery threads and must not raise.
"""

from __future__ import annotations

from postroom.errors import TransportConfigError
from postroom.store.records import MessageOutcome


class WorkerEvents:
    def started(self, worker: str) -> None:
        """The worker ``worker`` (its lease owner name) starts delivering."""

    def alive(self, worker: str) -> None:
        """Called now and then (each housekeeping round) while the worker runs."""

    def recorded(self, outcomes: list[MessageOutcome]) -> None:
        """These outcomes were committed to the outbox."""

    def paused(self, worker: str, error: TransportConfigError, until: float) -> None:
        """A configuration fault paused delivery until ``until`` (epoch seconds)."""

    def resumed(self, worker: str) -> None:
        """The transport works again after a pause."""

    def stopped(self, worker: str) -> None:
        """The worker returns from ``run``."""
