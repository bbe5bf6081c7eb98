"""Throwaway PostgreSQL databases for tests.

Each test gets a fresh database on the local server (127.0.0.1:5432, user postgres,
trust authentication), dropped afterwards. Without a reachable server the test is
skipped, unless ``POSTROOM_REQUIRE_PG=1`` (CI), where it fails instead.

In a test module::

    from tests.support.pg import throwaway_database

    @pytest.fixture
    def pg_url() -> Iterator[str]:
        with throwaway_database() as url:
            yield url

or import the ready-made fixtures ``pg_url`` (an empty database) or ``pg_engine`` (an
engine whose schema is migrated to head); ``throwaway_engine()`` is the latter as a
context manager.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from postroom import Postroom

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
REQUIRE_ENV = "POSTROOM_REQUIRE_PG"


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname="postgres",
            connect_timeout=3,
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {' '.join(str(exc).split())}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"postroom_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database."""
    with throwaway_database() as url:
        yield url


@contextmanager
def throwaway_engine() -> Iterator[Engine]:
    """An engine on a fresh PostgreSQL database with the schema migrated to head."""
    from postroom.store.engine import make_engine
    from postroom.store.migrate import upgrade

    with throwaway_database() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """An engine on a fresh PostgreSQL database with the schema migrated to head."""
    with throwaway_engine() as engine:
        yield engine


@contextmanager
def engine_on(backend: str, folder: Path) -> Iterator[Engine]:
    """An engine with the current schema on a SQLite file in ``folder`` ("sqlite") or
    on a throwaway PostgreSQL database ("postgresql"), for store tests on both."""
    if backend == "postgresql":
        with throwaway_engine() as on_postgresql:
            yield on_postgresql
        return
    from postroom.store.engine import make_engine
    from postroom.store.migrate import upgrade

    on_sqlite = make_engine(f"sqlite:///{folder / 'postroom.db'}")
    try:
        upgrade(on_sqlite)
        yield on_sqlite
    finally:
        on_sqlite.dispose()


@contextmanager
def postroom_on(backend: str, home: Path) -> Iterator[Postroom]:
    """A Postroom on the embedded SQLite ("sqlite") or on a throwaway, migrated
    PostgreSQL database ("postgresql"), for tests that run on both."""
    if backend == "sqlite":
        with Postroom(home) as instance:
            yield instance
        return
    with throwaway_engine() as engine:
        url = engine.url.render_as_string(hide_password=False)
        with Postroom(home, settings={"database.url": url}) as instance:
            yield instance
