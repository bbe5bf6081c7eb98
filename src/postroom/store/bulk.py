"""Many rows through one prepared statement, with the DB-API driver's own executemany.

SQLAlchemy's executemany handles every row's parameters in Python; for the few fixed
statements a worker runs with a hundred rows each several times a second, that was
about a tenth of the delivery time. Statements here carry only plain values (numbers
and strings) that need no conversion on the way to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
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
    #: Values fixed in the statement itself (``lease_owner=None``), by row key; a key
    #: that a row leaves out falls back to its value here (None for a plain bindparam).
    fixed: dict[str, Any]
    #: The row keys that are not fixed in the statement, and the fixed values in order.
    given: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    constants: tuple[Any, ...]
    #: Puts ``given(row) + constants`` into ``keys`` order.
    order: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    fixed_keys: frozenset[str]

    @classmethod
    def of(cls, statement: ClauseElement, connection: Connection, prefix: str) -> _Compiled:
        compiled = cast(SQLCompiler, statement.compile(dialect=connection.dialect))
        if compiled.positional:
            names = tuple(compiled.positiontup or ())
        else:
            names = tuple(dict.fromkeys(compiled.bind_names.values()))
        keys = tuple(name.removeprefix(prefix) for name in names)
        fixed = {name.removeprefix(prefix): value for name, value in compiled.params.items()}
        constant = {
            name.removeprefix(prefix) for name, bind in compiled.binds.items() if not bind.required
        }
        given = [key for key in keys if key not in constant]
        fixed_keys = [key for key in keys if key in constant]
        order = None
        if fixed_keys:
            position = {key: index for index, key in enumerate(given + fixed_keys)}
            order = _picker([position[key] for key in keys])
        constants = tuple(fixed[key] for key in fixed_keys)
        return cls(
            compiled.string,
            names,
            keys,
            compiled.positional,
            fixed,
            _picker(given),
            constants,
            order,
            frozenset(fixed_keys),
        )

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """The driver's parameters, a row's values taken with one ``itemgetter`` call (a
        generator per row cost more than the database's work on it)."""
        given, order = self.given, self.order
        try:
            if order is not None and rows and not self.fixed_keys.isdisjoint(rows[0]):
                raise KeyError  # rows (all alike) give values the statement fixes: theirs win
            if order is None:
                tuples = [given(row) for row in rows]
            else:
                constants = self.constants
                tuples = [order(given(row) + constants) for row in rows]
        except KeyError:  # a row leaves a value out: the statement's, or None
            keys, fixed = self.keys, self.fixed
            tuples = [tuple(row[k] if k in row else fixed[k] for k in keys) for row in rows]
        if self.positional:
            return tuples
        return [dict(zip(self.names, row, strict=True)) for row in tuples]


def _picker(items: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``itemgetter(*items)``, always returning a tuple (itemgetter of one item does not)."""
    if len(items) == 1:
        item = items[0]
        return lambda row: (row[item],)
    if not items:
        return lambda row: ()
    return itemgetter(*items)
