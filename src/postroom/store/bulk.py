"""Many rows through one prepared statement, with the DB-API driver's own executemany.

SQLAlchemy's executemany handles every row's parameters in Python; for the few fixed
statements a worker runs with a hundred rows each several times a second, that was
about a tenth of the delivery time. Statements here carry only plain values (numbers
and strings) that need no conversion on the way to the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class BulkStatement:
    """``statement`` compiled once per database dialect, run with rows of named values."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run once per row in one executemany; returns the rows the database changed."""
        if not rows:
            return 0
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled.of(self.statement, connection)
        return int(connection.exec_driver_sql(compiled.sql, compiled.rows(rows)).rowcount)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Parameter names in placeholder order for positional drivers (SQLite's ``?``);
    #: None for named ones (psycopg's ``%(name)s``).
    order: tuple[str, ...] | None
    #: Values fixed in the statement itself (``lease_owner=None``).
    fixed: dict[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement, connection: Connection) -> _Compiled:
        compiled = cast(SQLCompiler, statement.compile(dialect=connection.dialect))
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, order, dict(compiled.params))

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        fixed = self.fixed
        if self.order is None:
            return [{**fixed, **row} for row in rows]
        return [tuple(row[k] if k in row else fixed[k] for k in self.order) for row in rows]
