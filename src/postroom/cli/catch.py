"""``postroom catch``: run the capture SMTP server in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.app import Postroom
from postroom.capture.server import serve_forever
from postroom.cli.common import state
from postroom.runtime import say, setup_logging
from postroom.runtime.capture import announce_capture, capture_service
from postroom.settings import Configuration


def command(
    ctx: typer.Context,
    bind: Annotated[
        str | None,
        typer.Option(
            "--bind",
            metavar="HOST:PORT",
            help="Where to listen (default capture.bind, 127.0.0.1:1025). "
            "Env: POSTROOM_CAPTURE_BIND.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per message received.")
    ] = False,
) -> None:
    """Run the capture SMTP server: keep every message it receives, never relay.

    Point an application at it (host 127.0.0.1, port 1025, no TLS, any or no login)
    and read what it sent with `postroom captured list`. Stop with Ctrl-C.
    """
    cli = state(ctx)
    if bind is not None:
        cli.flags["capture.bind"] = bind
    raise typer.Exit(run_catch(cli.config(), quiet=quiet))


def run_catch(config: Configuration, *, quiet: bool = False) -> int:
    setup_logging()
    with Postroom(config=config) as postroom:
        service, sock = capture_service(config, postroom.engine, quiet=quiet)
        announce_capture(config, service)
        serve_forever(service, sock)
        say(
            f"postroom catch stopped: {service.writer.written} message(s) kept "
            f"in {service.writer.commits} commit(s)"
        )
    return 0
