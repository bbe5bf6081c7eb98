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

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy import insert as sql_insert
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class BulkStatement:
    """``statement`` compiled once per database dialect, run with rows of named values.

    Bind parameters named ``prefix + key`` take ``row[key]``: an INSERT's parameters
    cannot share their columns' names, but its rows read best keyed by column.
    """

    def __init__(self, statement: ClauseElement, *, prefix: str = "") -> None:
        self.statement = statement
        self.prefix = prefix
        self._compiled: dict[str, _Compiled] = {}

    @classmethod
    def insert(cls, table: Table, columns: Sequence[str]) -> BulkStatement:
        """INSERT of ``columns`` into ``table``, rows keyed by column name."""
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
        return cls(sql_insert(table).values(values), prefix="v_")

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run once per row in one executemany; returns the rows the database changed."""
        if not rows:
            return 0
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = _Compiled.of(self.statement, connection, self.prefix)
            self._compiled[dialect.name] = compiled
        return int(connection.exec_driver_sql(compiled.sql, compiled.rows(rows)).rowcount)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Bind parameter names: in placeholder order for positional drivers (SQLite's
    #: ``?``), as the driver's names otherwise (psycopg's ``%(name)s``).
    names: tuple[str, ...]
    #: The row key of each name (the name without the statement's prefix).
    keys: tuple[str, ...]
    positional: bool
    #: Values fixed in the statement itself (``lease_owner=None``), by row key.
    fixed: dict[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement, connection: Connection, prefix: str) -> _Compiled:
        compiled = cast(SQLCompiler, statement.compile(dialect=connection.dialect))
        if compiled.positional:
            names = tuple(compiled.positiontup or ())
        else:
            names = tuple(dict.fromkeys(compiled.bind_names.values()))
        keys = tuple(name.removeprefix(prefix) for name in names)
        fixed = {name.removeprefix(prefix): value for name, value in compiled.params.items()}
        return cls(compiled.string, names, keys, compiled.positional, fixed)

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        keys, fixed = self.keys, self.fixed
        if self.positional:
            return [tuple(row[k] if k in row else fixed[k] for k in keys) for row in rows]
        pairs = tuple(zip(self.names, keys, strict=True))
        return [{n: row[k] if k in row else fixed[k] for n, k in pairs} for row in rows]
