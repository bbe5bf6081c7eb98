"""``postroom worker``: deliver the outbox (the wiring is :mod:`postroom.runtime`)."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.cli.common import state
from postroom.runtime import run_worker, run_worker_processes


def command(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Deliver what is due now, then exit (1 if any failed).")
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
    """Deliver queued mail: claims batches under a lease, retries with backoff."""
    config = state(ctx).config()
    if processes == 1:
        raise typer.Exit(run_worker(config, once=once, concurrency=concurrency))
    raise typer.Exit(
        run_worker_processes(config, once=once, concurrency=concurrency, processes=processes)
    )
