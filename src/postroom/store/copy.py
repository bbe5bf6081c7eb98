"""Copying everything postroom keeps from one database to another (``postroom db copy``):
the outbox, the directory, broadcasts, notifications, error reports, the service's
tokens and sessions, and the mail record.

Tables go in dependency order, a chunk per transaction, each chunk written as an
upsert on the primary key: a copy that stopped half-way runs again from where it
stopped (tables keyed by an integer id start after the highest id already there),
and a row the target's migration seeded (the root user) takes the source's values.
The source is only read. Counts are compared table by table at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Integer, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from postroom.store.engine import is_sqlite
from postroom.store.schema import metadata

CHUNK = 1000
Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in the source


@dataclass(frozen=True, slots=True)
class CopiedTable:
    name: str
    source: int
    target: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        count = select(func.count())
        return {
            table.name: int(connection.execute(count.select_from(table)).scalar_one())
            for table in metadata.sorted_tables
        }


def copy_all(
    source: Engine, target: Engine, *, progress: Progress | None = None
) -> list[CopiedTable]:
    """Copy every table of ``source`` into ``target`` (both at the current schema)."""
    totals = row_counts(source)
    for table in metadata.sorted_tables:
        _copy_table(source, target, table, totals[table.name], progress)
    if not is_sqlite(target):
        _advance_sequences(target)
    copied = row_counts(target)
    return [CopiedTable(name, totals[name], copied[name]) for name in totals]


def _copy_table(
    source: Engine, target: Engine, table: Table, total: int, progress: Progress | None
) -> None:
    keys = list(table.primary_key.columns)
    query = select(table).order_by(*keys)
    done = 0
    if len(keys) == 1 and isinstance(keys[0].type, Integer):
        with target.connect() as connection:
            highest = connection.execute(select(func.max(keys[0]))).scalar_one()
        if highest is not None:  # resuming: what is there was copied in key order
            query = query.where(keys[0] > highest)
            with source.connect() as connection:
                done = int(
                    connection.execute(
                        select(func.count()).select_from(table).where(keys[0] <= highest)
                    ).scalar_one()
                )
    if progress is not None:
        progress(table.name, done, total)
    statement = _upsert(target, table)
    with source.connect() as reading:
        result = reading.execution_options(yield_per=CHUNK).execute(query)
        for rows in result.partitions(CHUNK):
            batch: Sequence[Mapping[str, Any]] = [dict(row._mapping) for row in rows]
            with target.begin() as writing:
                writing.execute(statement, batch)
            done += len(batch)
            if progress is not None:
                progress(table.name, done, total)


def _upsert(target: Engine, table: Table) -> Insert:
    keys = [column.name for column in table.primary_key.columns]
    if is_sqlite(target):
        on_sqlite = sqlite.insert(table)
        others = {c.name: on_sqlite.excluded[c.name] for c in table.columns if not c.primary_key}
        if not others:
            return on_sqlite.on_conflict_do_nothing(index_elements=keys)
        return on_sqlite.on_conflict_do_update(index_elements=keys, set_=others)
    on_pg = postgresql.insert(table)
    others = {c.name: on_pg.excluded[c.name] for c in table.columns if not c.primary_key}
    if not others:
        return on_pg.on_conflict_do_nothing(index_elements=keys)
    return on_pg.on_conflict_do_update(index_elements=keys, set_=others)


def _advance_sequences(target: Engine) -> None:
    """Ids were written explicitly: move each id sequence past the highest one, so the
    next message, user or token gets a fresh id."""
    with target.begin() as connection:
        for table in metadata.sorted_tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not isinstance(keys[0].type, Integer):
                continue
            key = keys[0]
            sequence = func.pg_get_serial_sequence(table.name, key.name)
            highest = func.max(key)
            connection.execute(
                select(func.setval(sequence, func.coalesce(highest, 1), highest.is_not(None)))
            )
