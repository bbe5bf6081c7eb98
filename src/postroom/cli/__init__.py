"""The ``postroom`` command: parse, call the library, print."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from postroom.cli.common import CliState, err, parse_flag_settings
from postroom.cli.lazy import LazyCommand, lazy_group
from postroom.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    BroadcastError,
    ConfigError,
    DirectoryError,
    MessageError,
    PostroomError,
    TokenError,
    storage_error,
)


def _cli(module: str, attribute: str, summary: str, **extra: str) -> LazyCommand:
    return LazyCommand(f"postroom.cli.{module}:{attribute}", summary, extra)


#: Every command, in the order ``--help`` lists them, with the summary it shows there
#: (a test checks each against the command's own help).
COMMANDS: dict[str, LazyCommand] = {
    "emit": _cli(
        "notify",
        "emit",
        "Emit an event: its notification mail is queued for the right people. Prints\n"
        "the result as JSON (ids, recipients, skipped users).",
    ),
    "heartbeat": _cli(
        "notify",
        "heartbeat",
        "Record one heartbeat of a host app; run it from the app's scheduler every\n"
        "--every. When beats stop, a worker mails server.down to the admins.",
    ),
    "send": _cli(
        "send",
        "command",
        "Queue a message (committed to disk before this returns) and print its id.",
    ),
    "worker": _cli(
        "worker",
        "command",
        "Deliver queued mail: claims batches under a lease, retries with backoff.",
    ),
    "test-email": _cli(
        "test_email",
        "command",
        "Try the SMTP server in mail.* step by step and send it a test message.",
    ),
    "serve": _cli(
        "serve",
        "command",
        "Run postroom on this machine: the HTTP API (/api/v1, docs at /api/docs), the admin\n"
        "console (/console/) and a delivery worker. Prints the console's address and, the\n"
        "first time, a login. Stop with Ctrl-C or SIGTERM: messages in flight finish first.",
    ),
    "catch": _cli(
        "catch",
        "command",
        "Run the capture SMTP server: keep every message it receives, never relay.",
    ),
    "config": _cli("config", "app", "Read and change settings (postroom.toml in the home folder)."),
    "outbox": _cli(
        "outbox", "app", "Look at the outbox and act on its messages (retry, hold, purge)."
    ),
    "db": _cli("db", "app", "Database schema: upgrade, status; copy to another database."),
    "captured": _cli(
        "captured", "app", "Read the mail record: what `postroom catch` and recording mode kept."
    ),
    "user": _cli(
        "users",
        "app",
        "Users of the directory: add, update, list, (de)activate, import.",
        passwd="postroom.cli.passwd:command",  # noqa: S106 (a command, not a password)
        prefs="postroom.cli.notify:prefs",
    ),
    "group": _cli("groups", "app", "Groups of the directory: add, list, members."),
    "admin": _cli("admin", "app", "Administration: mail every user (admin email)."),
    "broadcast": _cli(
        "broadcast", "app", "Broadcast jobs (admin email): list, show, cancel, resume."
    ),
    "token": _cli("tokens", "app", "API tokens: create (shown once), list, revoke."),
    "templates": _cli(
        "notify", "templates_app", "Notification templates: check them, preview a mail."
    ),
    "oauth": _cli("oauth", "app", "OAuth2 for sending mail (see docs/oauth.md)."),
}

app = typer.Typer(
    name="postroom",
    help="Postroom: durable mail for server applications.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=lazy_group(COMMANDS),
)


def _print_version(value: bool) -> None:
    if value:
        from postroom import __version__

        print(f"postroom {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            envvar="POSTROOM_HOME",
            help="Home folder (settings, database, templates). Env: POSTROOM_HOME.",
            show_default="./postroom-home",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a setting for this command only (wins over env and file).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print postroom's version and exit.",
        ),
    ] = False,
) -> None:
    from postroom.settings import Home

    ctx.obj = CliState(home=Home.resolve(home), flags=parse_flag_settings(set_ or []))
    _running[:] = [ctx.obj]


def main() -> None:
    """Entry point: one-line errors, exit 2 for bad input, 1 for failed work."""
    try:
        app()
    except (ConfigError, MessageError, DirectoryError, BroadcastError, TokenError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise SystemExit(EXIT_BAD_INPUT) from None
    except PostroomError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise SystemExit(EXIT_FAILED) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] {escape(str(storage_error(exc, doing='use')))}")
        raise SystemExit(EXIT_FAILED) from None
    except Exception as exc:
        if _is_database_error(exc):  # the database failed after it opened (full, locked, gone)
            from postroom.store.engine import database_failure

            failure = database_failure(exc, _database_url())  # type: ignore[arg-type]
            err.print(f"[red]error:[/red] {escape(str(failure))}")
            raise SystemExit(EXIT_FAILED) from None
        if os.environ.get("POSTROOM_DEBUG") == "1":
            raise
        err.print(
            f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(str(exc))}; "
            "this is a bug: run again with POSTROOM_DEBUG=1 and report what it prints"
        )
        raise SystemExit(EXIT_FAILED) from None


#: The command's state, once its options are parsed: errors name its database.
_running: list[CliState] = []


def _is_database_error(exc: Exception) -> bool:
    """SQLAlchemy's DBAPIError, without importing SQLAlchemy for commands that never did."""
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy_errors is not None and isinstance(exc, sqlalchemy_errors.DBAPIError)


def _database_url() -> str:
    """The database the command used, for naming it in an error (best effort)."""
    from postroom.store.engine import database_url

    try:
        return database_url(_running[0].config()) if _running else ""
    except PostroomError:
        return ""
