"""Database engines: SQLite (embedded default) and PostgreSQL, set up for durability.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss) and a
busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two writers queue
for the lock instead of failing halfway with "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, Float, create_engine, event, literal_column
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from postroom.errors import StorageError, storage_error
from postroom.settings import Configuration, Home, Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Page size of a new SQLite file (an existing one keeps its own). SQLite keeps a row
#: within one page, so with its default 4 KiB a 2 KB message's row filled a page alone
#: (two do not fit): 4 KiB written to the WAL and again at the checkpoint for each. An
#: 8 KiB page holds three (2.7 KiB a message, batches ~30 % faster); larger pages make
#: every one-message commit write more (16 KiB: +0.25 ms a send, 8 KiB: ~+0.05 ms).
SQLITE_PAGE_SIZE = 8192


def database_url(config: Configuration) -> str:
    """database.url, or the SQLite file in the home folder."""
    return url_for(config.settings, config.home)


def url_for(settings: Settings, home: Home) -> str:
    """database.url, or the SQLite file in ``home``."""
    return settings.database.url or f"sqlite:///{home.database_file}"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def database_clock(engine: Engine) -> ColumnElement[float]:
    """The database server's time in Unix seconds, as SQL. Leases are timed by it, so
    one worker's clock running ahead (a machine ten minutes fast) cannot make it take
    messages another worker still holds. SQLite has no server: its clock is the
    machine's, which all of its workers share."""
    if is_sqlite(engine):
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)
    return literal_column("extract(epoch from clock_timestamp())", Float)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _private_file(make_url(url).database)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=8,
            max_overflow=8,
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


def _private_file(path: str | None) -> None:
    """Create the SQLite file readable by its owner only, before SQLite does (it would
    follow the umask: 0644 in most homes). SQLite gives its -wal, -shm and -journal
    files the database file's mode, so they are private too."""
    if not path or path == ":memory:" or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass  # another process made it at the same moment
    except OSError as exc:
        raise storage_error(exc, doing="create the database file") from None


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Driver-level autocommit: SQLAlchemy's begin event below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # a new file only
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("postroom_write", True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (it stays so). Switching needs the file to itself, and
    SQLite answers "database is locked" at once, without waiting out the busy
    timeout, when another connection is opening a new file at the same moment (two
    workers starting on a fresh home): try again for as long as that timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def database_failure(exc: DBAPIError, url: str) -> StorageError:
    """One line for a database that cannot be used, the likely fix named; ``url``'s
    password is masked."""
    reason = " ".join(str(exc.orig or exc).split())
    label = f"database {make_url(url).render_as_string(hide_password=True)}" if url else "database"
    lowered = reason.lower()
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
            fix = (
                f"the folder of {path} must exist and be writable: fix its permissions, or "
                "choose another home with --home or POSTROOM_HOME"
            )
        elif "disk i/o" in lowered or "full" in lowered:
            fix = "the disk is full or failing: free some space (committed mail is intact)"
        elif "locked" in lowered:
            fix = (
                f"another process held {path} for longer than {SQLITE_BUSY_TIMEOUT_MS // 1000}"
                " s: find it (fuser), or move to PostgreSQL for many writers"
            )
        else:
            fix = f"check {path}"
    elif "password" in lowered or "authentication" in lowered:
        fix = "check the user and password in database.url"
    elif "does not exist" in lowered:
        fix = "create the database, then run `postroom db upgrade`"
    else:
        fix = "check database.url and that the database server is running and reachable"
    return StorageError(f"the {label} cannot be used ({reason})", fix=fix)


def reading(connection: Connection) -> Connection:
    """Mark a connection as read-only so SQLite does not take the write lock."""
    return connection.execution_options(postroom_write=False)
