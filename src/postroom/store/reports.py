"""SQL of error reports' flood control: a row per fingerprint, read and written in the
caller's transaction (with the report's own message, when one is mailed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from postroom.store.engine import reading
from postroom.store.reports_schema import error_reports
from postroom.store.schema import messages

REPORT_TYPES = ("error_report", "broken_link")


@dataclass(frozen=True, slots=True)
class Seen:
    """Where a fingerprint stands: its last mail, and what happened since."""

    mailed_at: float | None = None
    unsent: int = 0
    unsent_since: float | None = None
    summary_due_at: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorRow:
    fingerprint: str
    kind: str
    title: str
    path: str
    first_at: float
    last_at: float
    total: int
    seen: Seen


def _row(r: Row[Any]) -> ErrorRow:
    seen = Seen(r.mailed_at, r.unsent, r.unsent_since, r.summary_due_at)
    return ErrorRow(r.fingerprint, r.kind, r.title, r.path, r.first_at, r.last_at, r.total, seen)


def load(connection: Connection, fingerprint: str) -> ErrorRow | None:
    query = select(error_reports).where(error_reports.c.fingerprint == fingerprint)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    found = connection.execute(query).first()
    return None if found is None else _row(found)


def first_seen(
    connection: Connection, fingerprint: str, kind: str, title: str, path: str, now: float
) -> ErrorRow | None:
    """Insert the fingerprint's row; None if another process inserted it first (then
    :func:`load` it, locked)."""
    values = {
        "fingerprint": fingerprint,
        "kind": kind,
        "title": title[:2000],
        "path": path[:2000],
        "first_at": now,
        "last_at": now,
        "total": 0,
        "mailed_at": None,
        "unsent": 0,
        "unsent_since": None,
        "summary_due_at": None,
    }
    try:
        with connection.begin_nested():
            connection.execute(insert(error_reports).values(**values))
    except IntegrityError:
        return None
    return load(connection, fingerprint)


def save(connection: Connection, fingerprint: str, seen: Seen, *, now: float, counted: int) -> None:
    connection.execute(
        update(error_reports)
        .where(error_reports.c.fingerprint == fingerprint)
        .values(
            last_at=now,
            total=error_reports.c.total + counted,
            mailed_at=seen.mailed_at,
            unsent=seen.unsent,
            unsent_since=seen.unsent_since,
            summary_due_at=seen.summary_due_at,
        )
    )


def mailed_since(connection: Connection, since: float) -> int:
    """Error reports and broken links committed to the outbox since ``since``."""
    query = select(func.count()).where(
        messages.c.type.in_(REPORT_TYPES), messages.c.created_at >= since
    )
    return int(connection.execute(query).scalar_one())


def due(connection: Connection, now: float, limit: int = 100) -> list[str]:
    rows = connection.execute(
        select(error_reports.c.fingerprint)
        .where(error_reports.c.summary_due_at <= now)
        .order_by(error_reports.c.summary_due_at)
        .limit(limit)
    )
    return [row[0] for row in rows]


def recent(engine: Engine, limit: int = 100) -> list[ErrorRow]:
    with engine.connect() as connection:
        rows = reading(connection).execute(
            select(error_reports).order_by(error_reports.c.last_at.desc()).limit(limit)
        )
        return [_row(row) for row in rows]
