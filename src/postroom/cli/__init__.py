"""The ``postroom`` command: parse, call the library, print."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from postroom.cli import admin as admin_commands
from postroom.cli import broadcast as broadcast_commands
from postroom.cli import captured as captured_commands
from postroom.cli import catch as catch_commands
from postroom.cli import config as config_commands
from postroom.cli import db as db_commands
from postroom.cli import groups as group_commands
from postroom.cli import notify as notify_commands
from postroom.cli import oauth as oauth_commands
from postroom.cli import outbox as outbox_commands
from postroom.cli import passwd as passwd_commands
from postroom.cli import send as send_commands
from postroom.cli import serve as serve_commands
from postroom.cli import test_email
from postroom.cli import tokens as token_commands
from postroom.cli import users as user_commands
from postroom.cli import worker as worker_commands
from postroom.cli.common import CliState, err, parse_flag_settings
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
from postroom.settings import Home
from postroom.store.engine import database_failure, database_url

app = typer.Typer(
    name="postroom",
    help="Postroom: durable mail for server applications.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_commands.app, name="config")
app.add_typer(outbox_commands.app, name="outbox")
app.add_typer(db_commands.app, name="db")
app.add_typer(captured_commands.app, name="captured")
app.add_typer(user_commands.app, name="user")
app.add_typer(group_commands.app, name="group")
app.add_typer(admin_commands.app, name="admin")
app.add_typer(broadcast_commands.app, name="broadcast")
app.add_typer(token_commands.app, name="token")
app.add_typer(notify_commands.templates_app, name="templates")
app.add_typer(oauth_commands.app, name="oauth")
user_commands.app.command("passwd")(passwd_commands.command)
user_commands.app.command("prefs")(notify_commands.prefs)
app.command("emit")(notify_commands.emit)
app.command("heartbeat")(notify_commands.heartbeat)
app.command("send")(send_commands.command)
app.command("worker")(worker_commands.command)
app.command("test-email")(test_email.command)
app.command("serve")(serve_commands.command)
app.command("catch")(catch_commands.command)


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
) -> None:
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
    except DBAPIError as exc:  # the database failed after it opened (full, locked, gone)
        failure = database_failure(exc, _database_url())
        err.print(f"[red]error:[/red] {escape(str(failure))}")
        raise SystemExit(EXIT_FAILED) from None
    except OSError as exc:
        err.print(f"[red]error:[/red] {escape(str(storage_error(exc, doing='use')))}")
        raise SystemExit(EXIT_FAILED) from None
    except Exception as exc:
        if os.environ.get("POSTROOM_DEBUG") == "1":
            raise
        err.print(
            f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(str(exc))}; "
            "this is a bug: run again with POSTROOM_DEBUG=1 and report what it prints"
        )
        raise SystemExit(EXIT_FAILED) from None


#: The command's state, once its options are parsed: errors name its database.
_running: list[CliState] = []


def _database_url() -> str:
    """The database the command used, for naming it in an error (best effort)."""
    try:
        return database_url(_running[0].config()) if _running else ""
    except PostroomError:
        return ""
