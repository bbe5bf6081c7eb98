"""``postroom db copy --to URL``: checks, progress and the verdict around store.copy."""

from __future__ import annotations

import time

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from postroom.cli.common import err, out
from postroom.errors import EXIT_FAILED, ConfigError, StorageError
from postroom.settings import Configuration
from postroom.store.copy import CopiedTable, copy_all
from postroom.store.engine import database_failure, database_url
from postroom.store.migrate import open_database
from postroom.store.workers import WorkerRegistry

EXAMPLE = "postgresql+psycopg://postroom@db.example/postroom"


def run_copy(config: Configuration, to: str) -> None:
    source_url = database_url(config)
    target_url = _checked_target(to, source_url)
    shown = make_url(target_url).render_as_string(hide_password=True)
    if not config.settings.database.url:
        config.home.ensure()
    source = open_database(source_url)
    try:
        _refuse_live_workers(source)
        target = open_database(target_url)  # an empty database gets the schema here
        try:
            started = time.monotonic()
            tables = _copy_with_progress(source, target, target_url)
        finally:
            target.dispose()
    finally:
        source.dispose()
    rows = sum(t.source for t in tables)
    wrong = [t for t in tables if not t.matches]
    for table in wrong:
        err.print(
            f"{table.name}: {table.source} row(s) in the source, {table.target} in {shown}",
            markup=False,
        )
    if wrong:
        err.print(
            f"error: the copy does not match in {len(wrong)} table(s); run the same "
            "command again (it resumes), or copy into an empty database",
            markup=False,
        )
        raise typer.Exit(EXIT_FAILED)
    out.print(
        f"copied {rows} row(s) of {len(tables)} tables into {shown} in "
        f"{time.monotonic() - started:.1f}s; every table's count matches the source",
        markup=False,
    )
    out.print(f"next: postroom config set database.url '{shown}'", markup=False)


def _checked_target(to: str, source_url: str) -> str:
    try:
        url = make_url(to)
    except ArgumentError:
        raise ConfigError(
            f"--to {to!r} is not a database URL", fix=f"write it like {EXAMPLE}"
        ) from None
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"--to: postroom keeps its data in PostgreSQL or SQLite, not {url.get_backend_name()}",
            fix=f"write it like {EXAMPLE}",
        )
    if url == make_url(source_url):
        raise ConfigError(
            "--to is the database postroom already uses",
            fix="name the new database (database.url is the source)",
        )
    return to


def _refuse_live_workers(source: Engine) -> None:
    """Mail delivered from the source after a table was copied would be sent again
    from the copy: nothing may change while it is copied."""
    now = time.time()
    alive = [w.name for w in WorkerRegistry(source).all(now=now) if w.alive(now)]
    if alive:
        raise StorageError(
            f"{len(alive)} worker(s) still deliver from this database ({', '.join(alive[:3])})",
            fix="stop `postroom worker` and `postroom serve` first, then copy",
        )


def _copy_with_progress(source: Engine, target: Engine, target_url: str) -> list[CopiedTable]:
    columns = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err, disable=not err.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], completed=done)

        try:
            return copy_all(source, target, progress=progress)
        except DBAPIError as exc:
            raise database_failure(exc, target_url) from None
