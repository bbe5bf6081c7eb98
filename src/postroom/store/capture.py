"""The mail record's write paths: store captured messages, prune, clear.

:meth:`CaptureStore.insert_rows` commits a whole batch in one transaction, all of it
or none of it, and returns the new ids in order; the capture server's writer thread
calls it with whatever has queued up (group commit), recording mode (through
:meth:`CaptureStore.insert`) with each batch the worker hands it.

Pruning is housekeeping, apart from that transaction: :meth:`CaptureStore.prune`
deletes past capture.max_messages as one indexed range delete, ``id <= newest - N``,
because ids only grow (the table is AUTOINCREMENT on SQLite, a sequence on
PostgreSQL), and past capture.max_bytes by the messages' sizes. It runs once 1 % more
than N (or 1 % of max_bytes) have come in (at once for N under 100), so the record may
hold up to 1 % more for a moment. Its failure never undoes or hides a committed
message: the next call tries again. Reads are in :mod:`postroom.store.capture_queries`.

On SQLite the insert runs on the driver connection directly, as one statement: the
capture server commits a few messages at a time, thousands of times a second, and
SQLAlchemy's per-statement work would be most of its cost (and hold the GIL the SMTP
sessions need).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, text
from sqlalchemy.exc import DBAPIError

from postroom.store.schema import SOURCE_SMTP, captured

logger = logging.getLogger("postroom.capture")

Row = tuple[Any, ...]
_COLUMNS = tuple(column.name for column in captured.columns if column.name != "id")
_INSERT_RETURNING = insert(captured).returning(captured.c.id, sort_by_parameter_order=True)
# Keep the newest messages whose sizes add up to at most the limit; the rest go.
_BYTES_PRUNE = (
    "DELETE FROM captured WHERE id < (SELECT min(id) FROM (SELECT id, sum(size) "
    "OVER (ORDER BY id DESC) AS total FROM captured) AS newest WHERE total <= :limit)"
)
_SIZE = _COLUMNS.index("size")


@dataclass(frozen=True, slots=True)
class NewCapture:
    """A message to keep, with its SMTP envelope and what is known of the session."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    source: str = SOURCE_SMTP  # smtp (postroom catch) or transport (recording mode)
    peer: str | None = None
    helo: str | None = None
    tls: bool = False
    auth_user: str | None = None


class CaptureStore:
    """SQL of the mail record; the capture server and recording mode only call this."""

    def __init__(self, engine: Engine, *, max_bytes: int | None = None) -> None:
        """``max_bytes`` (capture.max_bytes): the oldest messages go once the record's
        messages are larger than that together."""
        self.engine = engine
        self.max_bytes = max_bytes
        self._kept_from: int | None = None  # the oldest id left by our last prune
        self._bytes_unchecked: int | None = None  # added since the last byte prune

    def insert(
        self,
        items: Sequence[NewCapture],
        *,
        max_messages: int | None = None,
        now: float | None = None,
        connection: Connection | None = None,
    ) -> list[int]:
        """Commit ``items`` in one transaction; return their ids, in order. Then prune
        (see the module's docstring); a failed prune is logged, the items stay stored."""
        now = time.time() if now is None else now
        ids = self.insert_rows([row_of(item, now) for item in items], connection=connection)
        if ids:
            try:
                self.prune(ids[-1], max_messages=max_messages, connection=connection)
            except DBAPIError as exc:
                logger.error("could not prune the mail record (next insert tries again): %s", exc)
        return ids

    def insert_rows(
        self, rows: Sequence[Row], *, connection: Connection | None = None
    ) -> list[int]:
        """Commit rows made with :func:`row_of` in one transaction, all or none; return
        their ids, in order. ``connection``: one the caller keeps open between calls (the
        capture server's writer thread) and uses for nothing else meanwhile."""
        if not rows:
            return []
        if connection is None:
            with self.engine.connect() as fresh:
                ids = _insert(fresh, rows)
        else:
            ids = _insert(connection, rows)
        if self._bytes_unchecked is not None:
            self._bytes_unchecked += sum(int(row[_SIZE]) for row in rows)
        return ids

    def prune(
        self, newest: int, *, max_messages: int | None, connection: Connection | None = None
    ) -> None:
        """Delete the oldest messages past ``max_messages`` and past ``max_bytes``, when
        due (see the module's docstring), in a transaction of its own; ``newest`` is the
        id :meth:`insert_rows` returned last. Raises DBAPIError; the next call retries."""
        by_count = max_messages is not None and self._prune_due(newest, max_messages)
        by_bytes = self._bytes_due()
        if not (by_count or by_bytes):
            return
        if connection is None:
            with self.engine.connect() as fresh:
                self._prune(fresh, newest, max_messages if by_count else None, by_bytes)
        else:
            self._prune(connection, newest, max_messages if by_count else None, by_bytes)

    def _prune(
        self, connection: Connection, newest: int, max_messages: int | None, by_bytes: bool
    ) -> None:
        kept_from, bytes_unchecked = self._kept_from, self._bytes_unchecked
        if max_messages is not None:
            self._kept_from = newest - max_messages + 1
        if by_bytes:
            self._bytes_unchecked = 0
        try:
            with connection.begin():
                if max_messages is not None:
                    connection.execute(
                        delete(captured).where(captured.c.id <= newest - max_messages)
                    )
                if by_bytes:
                    connection.execute(text(_BYTES_PRUNE), {"limit": self.max_bytes})
        except BaseException:
            self._kept_from, self._bytes_unchecked = kept_from, bytes_unchecked
            raise

    def _bytes_due(self) -> bool:
        """Whether to prune by size now: at the first insert, then once 1 % of
        capture.max_bytes has come in since the last time (the prune reads every
        message's size)."""
        if self.max_bytes is None:
            return False
        unchecked = self._bytes_unchecked
        return unchecked is None or unchecked >= max(1, self.max_bytes // 100)

    def _prune_due(self, newest: int, max_messages: int) -> bool:
        """Whether to delete now: at once below 100 messages kept, else once 1 % more
        have come in (a delete is a commit of its own, with its own fsync)."""
        if newest <= max_messages:
            return False
        slack = max_messages // 100
        return self._kept_from is None or newest - self._kept_from >= max_messages + slack

    def clear(self) -> int:
        """Delete every captured message; return how many there were."""
        with self.engine.begin() as connection:
            return int(connection.execute(delete(captured)).rowcount)


def _insert(connection: Connection, rows: Sequence[Row]) -> list[int]:
    if connection.dialect.name == "sqlite":
        return _insert_sqlite(connection.connection.driver_connection, rows)
    with connection.begin():
        params = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        return [int(pk) for pk in connection.execute(_INSERT_RETURNING, params).scalars()]


def _insert_sqlite(driver: Any, rows: Sequence[Row]) -> list[int]:
    """The whole batch as one INSERT statement on the sqlite3 connection, which
    :func:`~postroom.store.engine.make_engine` puts in autocommit mode: one statement
    is one transaction, committed (and fsynced) when it returns. One statement, not a
    BEGIN ... COMMIT sequence, because each releases and retakes the GIL that the
    SMTP sessions run on."""
    cursor = driver.cursor()
    try:
        cursor.execute(_sqlite_insert(len(rows)), [value for row in rows for value in row])
        # One statement holds the write lock from first row to last: consecutive ids.
        last = int(cursor.lastrowid)
    finally:
        cursor.close()
    return list(range(last - len(rows) + 1, last + 1))


@functools.cache
def _sqlite_insert(count: int) -> str:
    """INSERT of ``count`` rows; only column names from the schema and placeholders."""
    values = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    head = f"INSERT INTO captured ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608 - no values
    return head + ", ".join([values] * count)


def row_of(item: NewCapture, now: float) -> Row:
    """The row ``item`` is stored as: the values of ``_COLUMNS``, in that order (checked
    below, at import). The capture server makes it on its event loop, so that the
    writer thread holds the GIL as briefly as it can."""
    subject, from_header, to_header = header_summary(item.raw)
    return (
        now,
        item.source,
        item.mail_from,
        json.dumps(list(item.rcpt_tos), ensure_ascii=False),
        subject,
        from_header,
        to_header,
        len(item.raw),
        item.raw,
        item.peer,
        item.helo,
        item.tls,
        item.auth_user,
    )


_ROW_ORDER = (
    "received_at", "source", "mail_from", "rcpt_tos", "subject", "from_header", "to_header",
    "size", "raw", "peer", "helo", "tls", "auth_user",
)  # fmt: skip
if _COLUMNS != _ROW_ORDER:  # pragma: no cover - a schema change must update row_of
    raise RuntimeError(f"captured's columns {_COLUMNS} are not the ones row_of builds")

_HEADER = {
    name: re.compile(rb"^" + name + rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
    for name in (b"subject", b"from", b"to")
}
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


def header_summary(raw: bytes) -> tuple[str, str, str]:
    """Subject, From and To of a raw message, decoded, for listings.

    Reads only the header block, with one regular expression per header rather than
    the email package's parser: this runs for every message the capture server keeps.
    """
    end = _END_OF_HEADERS.search(raw)
    block = raw if end is None else raw[: end.start()]
    found = []
    for pattern in _HEADER.values():
        match = pattern.search(block)
        found.append(_decode(match.group(1)) if match else "")
    return found[0], found[1], found[2]


def _decode(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    if "=?" in text:
        with contextlib.suppress(LookupError, ValueError, UnicodeError):  # left as it is
            text = str(make_header(decode_header(text)))
    return " ".join(text.split())
