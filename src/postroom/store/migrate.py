"""Alembic migrations, run from code: ``postroom db upgrade`` and on embedded start."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from postroom.errors import ConfigError
from postroom.store.engine import database_failure, is_sqlite, make_engine
from postroom.store.schema import metadata

# alembic costs ~0.2 s to import; a process whose schema is current never needs it.
if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
#: pg_advisory_xact_lock key of first-use initialisation ("postroom" in ASCII, folded).
INIT_LOCK = 0x706F7374726F6F6D & 0x7FFFFFFFFFFFFFFF
logger = logging.getLogger("postroom.store")
#: The newest migration's revision (a test pins it to alembic's head): opening a
#: database compares the stored revision with it in one query.
SCHEMA_HEAD = "0007"


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _is_at_head(engine: Engine) -> bool:
    """The stored revision is :data:`SCHEMA_HEAD`, read without alembic (False when
    there is no version table yet)."""
    if not inspect(engine).has_table("alembic_version"):
        return False
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return list(stored) == [SCHEMA_HEAD]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is there already."""
    from alembic import command

    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def _is_empty(engine: Engine) -> bool:
    """No schema of postroom's at all: no revision and none of its tables."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() is not None:
            return False
        present = set(inspect(connection).get_table_names())
    return not present & set(metadata.tables)


def initialise(engine: Engine) -> bool:
    """Create postroom's schema in an empty shared database, once however many
    processes start at the same moment (a PostgreSQL advisory lock held for the
    transaction); True if this process did it."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = _alembic_config()
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INIT_LOCK})
        if MigrationContext.configure(connection).get_current_revision() is not None:
            return False  # another process did it while this one waited
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.warning("the empty database was initialised with postroom's schema")
    return True


def open_database(url: str) -> Engine:
    """An engine whose schema is current: the embedded SQLite database is created or
    upgraded here, and so is an empty shared database (nothing to lose); a shared
    database with an older schema must have ``postroom db upgrade``, else this is a
    ConfigError that says so (no process migrates a shared database by surprise)."""
    engine = make_engine(url)
    try:
        if _is_at_head(engine):
            current = True
        elif is_sqlite(engine):
            upgrade(engine)
            current = True
        elif _is_empty(engine):
            initialise(engine)
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
