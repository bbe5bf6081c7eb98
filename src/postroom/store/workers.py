"""Where delivery workers say they are alive and whether delivery is paused.

Each worker keeps one row, named as its leases are, written when it starts, now and
then while it runs (``seen_at``), when a configuration fault pauses delivery and when
it works again, and removed when it stops. ``/healthz`` and the console read them: a
worker on another machine counts as much as the one in the service's own process.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select, update

from postroom.store.engine import reading
from postroom.store.service_schema import workers
from postroom.store.views import iso_time

#: A worker not heard from for this long is taken for gone (it writes every 15 s).
SILENT_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class WorkerState:
    name: str
    host: str
    pid: int
    started_at: float
    seen_at: float
    paused_until: float | None
    pause_reason: str | None
    pause_fix: str | None

    def paused(self, now: float) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def alive(self, now: float) -> bool:
        """Heard from lately; a paused worker sleeps through its pause, so it counts
        until the pause ends."""
        return now - self.seen_at < SILENT_AFTER or self.paused(now)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "started_at": iso_time(self.started_at),
            "seen_at": iso_time(self.seen_at),
            "paused": self.paused(now),
            "paused_until": iso_time(self.paused_until) if self.paused(now) else None,
            "reason": self.pause_reason if self.paused(now) else None,
            "fix": self.pause_fix if self.paused(now) else None,
        }


class WorkerRegistry:
    """SQL of the ``workers`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def started(self, name: str, pid: int, *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.engine.begin() as connection:
            connection.execute(delete(workers).where(workers.c.name == name))
            connection.execute(
                workers.insert().values(
                    name=name,
                    host=socket.gethostname(),
                    pid=pid,
                    started_at=now,
                    seen_at=now,
                )
            )

    def seen(self, name: str, *, now: float | None = None) -> None:
        self._set(name, seen_at=time.time() if now is None else now)

    def paused(self, name: str, *, until: float, reason: str, fix: str | None) -> None:
        self._set(name, seen_at=time.time(), paused_until=until, pause_reason=reason, pause_fix=fix)

    def resumed(self, name: str) -> None:
        self._set(name, seen_at=time.time(), paused_until=None, pause_reason=None, pause_fix=None)

    def stopped(self, name: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(workers).where(workers.c.name == name))

    def _set(self, name: str, **values: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(workers).where(workers.c.name == name).values(**values))

    def all(self, *, now: float | None = None) -> list[WorkerState]:
        """Workers heard from lately; silent ones are left out (see :meth:`forget_silent`)."""
        now = time.time() if now is None else now
        with reading(self.engine.connect()) as connection, connection.begin():
            rows = connection.execute(select(workers).order_by(workers.c.started_at)).all()
        found = [WorkerState(*row) for row in rows]
        return [state for state in found if state.alive(now)]

    def forget_silent(self, *, now: float | None = None) -> int:
        """Drop the rows of workers gone for long (killed, their machine gone)."""
        now = time.time() if now is None else now
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(workers).where(
                    workers.c.seen_at < now - 10 * SILENT_AFTER,
                    (workers.c.paused_until.is_(None)) | (workers.c.paused_until < now),
                )
            )
        return int(result.rowcount)
