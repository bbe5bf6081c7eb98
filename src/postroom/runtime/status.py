"""The runtime's ear on its worker: the worker's status row, and other listeners."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import DBAPIError

from postroom.delivery.events import WorkerEvents
from postroom.errors import TransportConfigError
from postroom.store.records import MessageOutcome
from postroom.store.workers import WorkerRegistry

logger = logging.getLogger("postroom.worker")

#: How often a running worker writes that it is alive.
HEARTBEAT = 15.0


class StatusEvents(WorkerEvents):
    """Keeps the worker's row of the ``workers`` table, for ``/healthz`` and the console.
    A database that fails here only costs a status line, never delivery."""

    def __init__(self, registry: WorkerRegistry) -> None:
        self.registry = registry
        self._written = 0.0

    def started(self, worker: str) -> None:
        self._safely(self.registry.started, worker, os.getpid())

    def alive(self, worker: str) -> None:
        now = time.monotonic()
        if now - self._written >= HEARTBEAT:
            self._written = now
            self._safely(self.registry.seen, worker)

    def paused(self, worker: str, error: TransportConfigError, until: float) -> None:
        reason, fix = error.split_fix()
        self._safely(lambda: self.registry.paused(worker, until=until, reason=reason, fix=fix))

    def resumed(self, worker: str) -> None:
        self._safely(self.registry.resumed, worker)

    def stopped(self, worker: str) -> None:
        self._safely(self.registry.stopped, worker)

    @staticmethod
    def _safely(action: Callable[..., object], *args: object) -> None:
        try:
            action(*args)
        except DBAPIError as exc:
            logger.warning("could not write the worker's status: %s", exc.orig or exc)


class AllEvents(WorkerEvents):
    """Several listeners as one; one that raises does not keep the others from hearing."""

    def __init__(self, listeners: Sequence[WorkerEvents]) -> None:
        self.listeners = tuple(listeners)

    def _each(self, name: str, *args: object) -> None:
        for listener in self.listeners:
            try:
                getattr(listener, name)(*args)
            except Exception:
                logger.exception("a worker event listener failed")

    def started(self, worker: str) -> None:
        self._each("started", worker)

    def alive(self, worker: str) -> None:
        self._each("alive", worker)

    def recorded(self, outcomes: list[MessageOutcome]) -> None:
        self._each("recorded", outcomes)

    def paused(self, worker: str, error: TransportConfigError, until: float) -> None:
        self._each("paused", worker, error, until)

    def resumed(self, worker: str) -> None:
        self._each("resumed", worker)

    def stopped(self, worker: str) -> None:
        self._each("stopped", worker)
