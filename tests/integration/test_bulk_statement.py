"""BulkStatement: many rows through one statement and the driver's own executemany."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    update,
)

from postroom.store.bulk import BulkStatement

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String),
    Column("owner", String),
    Column("size", Integer),
)


def _engine() -> Engine:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    return engine


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql("SELECT * FROM items ORDER BY id")]


def test_rows_keyed_by_column_are_inserted_and_a_missing_value_is_null() -> None:
    engine = _engine()
    insert = BulkStatement.insert(items, ("id", "name", "owner", "size"))
    with engine.begin() as connection:
        assert insert.execute(connection, [{"id": 1, "name": "a", "owner": "x", "size": 3}]) == 1
        insert.execute(connection, [{"id": 2, "name": "b", "owner": "y"}, {"id": 3, "size": 5}])
    assert _rows(engine) == [(1, "a", "x", 3), (2, "b", "y", None), (3, None, None, 5)]


def test_values_fixed_in_the_statement_go_with_every_row_unless_the_rows_give_them() -> None:
    engine = _engine()
    with engine.begin() as connection:
        connection.execute(
            items.insert(), [{"id": n, "name": "n", "owner": "o"} for n in (1, 2, 3)]
        )
    # owner=None and size=0 are fixed in the statement; name and id come with each row.
    rename = BulkStatement(
        update(items)
        .where(items.c.id == bindparam("u_id"))
        .values(name=bindparam("u_name"), owner=None, size=0),
        prefix="u_",
    )
    with engine.begin() as connection:
        assert rename.execute(connection, [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}]) == 2
        rename.execute(connection, [{"id": 3, "name": "z", "size": 9}])
    assert _rows(engine) == [(1, "x", None, 0), (2, "y", None, 0), (3, "z", None, 9)]


def test_a_statement_with_one_value_per_row() -> None:
    engine = _engine()
    with engine.begin() as connection:
        connection.execute(items.insert(), [{"id": n, "name": "n"} for n in (1, 2)])
    delete = BulkStatement(items.delete().where(items.c.id == bindparam("d_id")), prefix="d_")
    with engine.begin() as connection:
        assert delete.execute(connection, [{"id": 2}]) == 1
    assert _rows(engine) == [(1, "n", None, None)]
