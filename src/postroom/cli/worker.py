"""``postroom worker``: deliver the outbox (the wiring is :mod:`postroom.runtime`)."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.cli.common import state
from postroom.runtime import run_worker, run_worker_processes


def command(
    ctx: typer.Context,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Deliver what is due now, then exit: 0 when the work was done (a server "
            "refusing a recipient included), 1 when delivery paused on a configuration "
            "fault or the database could not be reached.",
        ),
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            help="SMTP connections at once. Env: POSTROOM_DELIVERY_CONCURRENCY.",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            help="Worker processes side by side, each with --concurrency connections.",
        ),
    ] = 1,
) -> None:
    """Deliver queued mail: claims batches under a lease, retries with backoff.

    Exit status: 0 the work was done (whatever the servers answered: a refusal is the
    message's outcome, see `postroom outbox list`); 1 delivery paused on a configuration
    fault (login, TLS, a transport that does not load) or the database was unreachable;
    2 bad flags or settings.
    """
    config = state(ctx).config()
    if processes == 1:
        raise typer.Exit(run_worker(config, once=once, concurrency=concurrency))
    raise typer.Exit(
        run_worker_processes(config, once=once, concurrency=concurrency, processes=processes)
    )
