"""``postroom serve``: the HTTP API, the console and the delivery worker in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.cli.common import state


def command(
    ctx: typer.Context,
    bind: Annotated[
        str | None,
        typer.Option(
            "--bind",
            metavar="HOST:PORT",
            help="Where to listen (default web.bind, 127.0.0.1:8025). Env: POSTROOM_WEB_BIND.",
        ),
    ] = None,
    catch: Annotated[
        bool,
        typer.Option(
            "--catch",
            help="Also run the capture SMTP server (capture.bind) and keep outgoing mail in "
            "the mail record instead of delivering it (recording mode), for trying things out.",
        ),
    ] = False,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run a delivery worker in this process (default), or only the API and "
            "console (run `postroom worker` elsewhere).",
        ),
    ] = True,
) -> None:
    """Run postroom on this machine: the HTTP API (/api/v1, docs at /api/docs), the admin
    console (/console/) and a delivery worker. Prints the console's address and, the
    first time, a login. Stop with Ctrl-C or SIGTERM: messages in flight finish first."""
    # Imported here: FastAPI and uvicorn are for this command only.
    from postroom.service.server import catch_flags, serve

    cli = state(ctx)
    if bind is not None:
        cli.flags["web.bind"] = bind
    config = cli.config()
    if catch:
        cli.flags.update(catch_flags(config))
        cli.reload()
        config = cli.config()
    raise typer.Exit(serve(config, flags=dict(cli.flags), catch=catch, deliver=worker))
