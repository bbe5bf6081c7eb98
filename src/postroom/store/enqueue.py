"""Enqueue: composed messages committed to the outbox, a whole call in one transaction.

The write path behind ``send``, ``send_many``, notifications, broadcasts and error
reports. Rows go to the driver as plain tuples through one ``executemany`` per table
(a dict per row, converted for the driver, and ids read back through SQLAlchemy were a
quarter of a batch's time), and on
SQLite the new ids come from ``last_insert_rowid()``: a batch inserted under the write
lock takes consecutive rowids, which one read of the Message-IDs in that range confirms
(else the ids are looked up by Message-ID, as on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from postroom.store.records import Enqueued, NewMessage
from postroom.store.schema import HELD, QUEUED, messages, recipients

#: PostgreSQL channel told, inside the committing transaction, of mail newly due, so
#: that idle workers anywhere wake at once (``LISTEN postroom_outbox``).
WAKE_CHANNEL = "postroom_outbox"
_notify = text(f"SELECT pg_notify('{WAKE_CHANNEL}', '')")

#: The columns a new message row sets, in the order of :func:`_message_values`; the
#: others (outcome, lease, last error) start NULL.
MESSAGE_COLUMNS = (
    "message_id",
    "idempotency_key",
    "status",
    "type",
    "subject",
    "from_header",
    "envelope_from",
    "smtputf8",
    "size",
    "raw",
    "attempts",
    "created_at",
    "updated_at",
    "queued_at",
    "next_attempt_at",
)
#: The columns a new recipient row sets, in the order of :func:`_recipient_rows`.
RECIPIENT_COLUMNS = ("message_pk", "address", "kind", "status", "attempts", "updated_at")


def enqueue(engine: Engine, items: Sequence[NewMessage], now: float) -> list[Enqueued]:
    """Commit ``items`` in one transaction and return their ids, in order.

    An item whose idempotency key is already known returns the earlier message
    instead of creating a second one (also within ``items``).
    """
    try:
        return _enqueue_once(engine, items, now)
    except IntegrityError:
        # Another process committed the same idempotency key between our check and
        # our insert: run again, and the check now finds it.
        return _enqueue_once(engine, items, now)


def _enqueue_once(engine: Engine, items: Sequence[NewMessage], now: float) -> list[Enqueued]:
    with engine.begin() as connection:
        if all(item.idempotency_key is None for item in items):  # nothing to look up
            pks = insert(connection, items, now=now)
            return [
                Enqueued(pk, item.message_id, created=True)
                for pk, item in zip(pks, items, strict=True)
            ]
        known = _known_keys(connection, [i.idempotency_key for i in items])
        # Items to insert, and for each item where its answer comes from: a known
        # key, or the position of its row among the new ones.
        new_items: list[NewMessage] = []
        answer: list[tuple[int, str] | int] = []
        first_of_key: dict[str, int] = {}
        for item in items:
            key = item.idempotency_key
            if key is not None and key in known:
                answer.append(known[key])
            elif key is not None and key in first_of_key:
                answer.append(first_of_key[key])
            else:
                if key is not None:
                    first_of_key[key] = len(new_items)
                answer.append(len(new_items))
                new_items.append(item)
        pks = insert(connection, new_items, now=now)
    results: list[Enqueued] = []
    for index, item in enumerate(items):
        where = answer[index]
        if isinstance(where, tuple):
            results.append(Enqueued(where[0], where[1], created=False))
        else:
            row_item = new_items[where]
            results.append(Enqueued(pks[where], row_item.message_id, created=row_item is item))
    return results


def insert(
    connection: Connection,
    items: Sequence[NewMessage],
    *,
    now: float,
    due: Sequence[float] | None = None,
) -> list[int]:
    """Insert ``items`` in the caller's transaction (no idempotency check) and return
    their ids in order; ``due[i]`` is when item i may first be sent (default: now).

    For features that commit messages together with rows of their own (a broadcast
    links each message to its recipient in the same transaction).
    """
    if not items:
        return []
    if due is None:
        rows = [_message_values(item, now, now) for item in items]
    else:
        rows = [_message_values(item, now, at) for item, at in zip(items, due, strict=True)]
    tell_listeners(connection)
    statements = _statements(connection.dialect)
    if len(rows) == 1:  # one message (the common `send`): its id comes back at once
        pks = [int(connection.exec_driver_sql(statements.message_returning, rows[0]).scalar_one())]
    else:
        connection.exec_driver_sql(statements.message, rows)
        wanted = [item.message_id for item in items]
        pks = _consecutive_ids(connection, wanted) or _ids_by_message_id(connection, wanted)
    connection.exec_driver_sql(statements.recipient, _recipient_rows(items, pks, now))
    return pks


def tell_listeners(connection: Connection) -> None:
    """On PostgreSQL, NOTIFY the workers' listeners when this transaction commits."""
    if connection.dialect.name == "postgresql":
        connection.execute(_notify)


# -- rows ----------------------------------------------------------------------------


def _message_values(item: NewMessage, now: float, due: float) -> tuple[object, ...]:
    """A message row in :data:`MESSAGE_COLUMNS` order. A message due later starts its
    delivery effort then: delivery.max_age counts from when it is due."""
    return (
        item.message_id,
        item.idempotency_key,
        HELD if item.held else QUEUED,
        item.type,
        item.subject,
        item.from_header,
        item.envelope_from,
        item.smtputf8,
        len(item.raw),
        item.raw,
        0,
        now,
        now,
        due if due > now else now,
        due,
    )


def _recipient_rows(
    items: Sequence[NewMessage], pks: Sequence[int], now: float
) -> list[tuple[object, ...]]:
    return [
        (pk, r.address, r.kind, QUEUED, 0, now)
        for pk, item in zip(pks, items, strict=True)
        for r in item.recipients
    ]


# -- ids -----------------------------------------------------------------------------


def _consecutive_ids(connection: Connection, wanted: list[str]) -> list[int] | None:
    """SQLite: the ids of the rows just inserted, if they are the consecutive rowids
    ending at ``last_insert_rowid()`` (they are whenever SQLite allocated each as the
    largest rowid plus one, its rule until rowids run out), checked by reading back
    the Message-IDs of that range; None if they are not, or on another database."""
    if connection.dialect.name != "sqlite":
        return None
    last = int(connection.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    first = last - len(wanted) + 1
    found = connection.exec_driver_sql(_RANGE_SQL, (first, last)).scalars().all()
    return list(range(first, last + 1)) if found == wanted else None


_RANGE_SQL = "SELECT message_id FROM messages WHERE id BETWEEN ? AND ? ORDER BY id"


def _ids_by_message_id(connection: Connection, wanted: list[str]) -> list[int]:
    """The ids of ``wanted`` Message-IDs (unique), in order."""
    found: dict[str, int] = {}
    for chunk in chunks(wanted):
        found.update(
            (row[0], row[1])
            for row in connection.execute(
                select(messages.c.message_id, messages.c.id).where(messages.c.message_id.in_(chunk))
            )
        )
    return [found[message_id] for message_id in wanted]


def _known_keys(connection: Connection, keys: list[str | None]) -> dict[str, tuple[int, str]]:
    wanted = [k for k in keys if k is not None]
    if not wanted:
        return {}
    rows = connection.execute(
        select(messages.c.idempotency_key, messages.c.id, messages.c.message_id).where(
            messages.c.idempotency_key.in_(wanted)
        )
    )
    return {row[0]: (row[1], row[2]) for row in rows}


# -- statements ----------------------------------------------------------------------


#: The positional placeholder of each DB-API paramstyle that has one.
_POSITIONAL_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class _Statements:
    """The INSERTs of a dialect as driver SQL with positional placeholders."""

    def __init__(self, dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        mark = _POSITIONAL_MARKS.get(dialect.paramstyle)
        if mark is None:  # postroom runs on sqlite3 and psycopg, which both have one
            raise ValueError(f"the {dialect.driver} driver takes no positional parameters")

        def insert_sql(table: str, columns: Sequence[str]) -> str:
            names = ", ".join(quote(name) for name in columns)
            marks = ", ".join([mark] * len(columns))
            return f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"  # noqa: S608 - no values

        self.message = insert_sql(messages.name, MESSAGE_COLUMNS)
        self.message_returning = f"{self.message} RETURNING {quote(messages.c.id.name)}"
        self.recipient = insert_sql(recipients.name, RECIPIENT_COLUMNS)


_built: dict[tuple[str, str], _Statements] = {}


def _statements(dialect: Dialect) -> _Statements:
    key = (dialect.name, dialect.paramstyle)
    built = _built.get(key)
    if built is None:
        built = _built[key] = _Statements(dialect)
    return built


T = TypeVar("T")


def chunks(items: list[T], size: int = 500) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
