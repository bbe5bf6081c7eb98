"""Alembic migrations, run from code: ``postroom db upgrade`` and on embedded start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from postroom.errors import ConfigError
from postroom.store.engine import database_failure, is_sqlite, make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is there already."""
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def open_database(url: str) -> Engine:
    """An engine whose schema is current: the embedded SQLite database is created or
    upgraded here; any other database must have had ``postroom db upgrade``, else
    this is a ConfigError that says so (no process migrates a shared database by
    surprise)."""
    engine = make_engine(url)
    try:
        if is_sqlite(engine):
            upgrade(engine)
            current = True
        else:
            current = is_current(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise database_failure(exc, url) from None
    if not current:
        engine.dispose()
        raise ConfigError(
            "the database schema is not current",
            key="database.url",
            fix="run `postroom db upgrade` once after installing or upgrading",
        )
    return engine
