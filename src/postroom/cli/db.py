"""``postroom db``: the database schema."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from postroom.cli.common import out, state
from postroom.store.engine import database_url, make_engine

app = typer.Typer(help="Database schema: upgrade, status; copy to another database.")


@app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Bring the database schema up to date (SQLite upgrades itself; run this for PostgreSQL)."""
    from postroom.store.migrate import current_revision, upgrade  # alembic: slow to import

    config = state(ctx).config()
    if not config.settings.database.url:
        config.home.ensure()
    engine = make_engine(database_url(config))
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    url = make_url(database_url(config)).render_as_string(hide_password=True)
    if before == after:
        out.print(f"{url}: schema already current ({after})", markup=False)
    else:
        out.print(f"{url}: schema upgraded {before or 'empty'} → {after}", markup=False)


@app.command("status")
def status_command(ctx: typer.Context) -> None:
    """Print the schema revision of the database and the one this postroom needs."""
    from postroom.store.migrate import current_revision, head_revision  # alembic: slow import

    config = state(ctx).config()
    engine = make_engine(database_url(config))
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    word = "current" if current == head else "needs `postroom db upgrade`"
    out.print(f"schema {current or 'empty'}, wanted {head}: {word}", markup=False)


@app.command("copy")
def copy_command(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="URL",
            help="The database to copy into, e.g. postgresql+psycopg://postroom@db/postroom.",
        ),
    ],
) -> None:
    """Copy everything (outbox, users, broadcasts, mail record...) into another database.

    Stop every worker and `postroom serve` first. The source is only read; a copy that
    stopped half-way resumes when run again; counts are verified per table. Then point
    postroom at the new database with `postroom config set database.url URL`.
    """
    from postroom.cli.db_copy import run_copy  # SQLAlchemy dialects: only for this command

    run_copy(state(ctx).config(), to)
