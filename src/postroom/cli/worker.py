"""``postroom worker`` and ``postroom serve``: deliver the outbox."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from postroom.app import Postroom
from postroom.cli.common import EXIT_FAILED, err, state
from postroom.cli.worker_processes import WorkerProcesses
from postroom.delivery.worker import Worker
from postroom.errors import PostroomError
from postroom.settings import Configuration
from postroom.store.engine import database_url


def setup_logging() -> None:
    """Log lines to stderr; the log transport writes whole messages here too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("postroom")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def describe_route(config: Configuration) -> str:
    """Where mail goes, in words, for the worker's start line."""
    mail = config.settings.mail
    if not mail.enabled:
        return "mail is switched off (mail.enabled=false): messages are logged, not delivered"
    if mail.transport == "smtp":
        return f"smtp to {mail.host}:{mail.port} (security {mail.security})"
    if mail.transport == "capture":
        return (
            "RECORDING ONLY (mail.transport=capture): mail is kept in the mail record, "
            "NOT delivered"
        )
    if mail.transport == "file":
        folder = mail.file_dir or str(config.home.mail_dir)
        return f"file transport into {folder}: not delivered"
    return f"{mail.transport} transport"


def run_worker(config: Configuration, *, once: bool, concurrency: int | None) -> int:
    setup_logging()
    config.check()
    with Postroom(config=config) as postroom:
        worker = Worker(
            config,
            postroom.outbox,
            concurrency=concurrency,
            housekeeping=postroom.broadcasts.housekeeping,
        )
        url = make_url(database_url(config)).render_as_string(hide_password=True)
        err.print(
            f"postroom worker {worker.name}: {worker.concurrency} connection(s); "
            f"{describe_route(config)}; database {url}",
            markup=False,
        )

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            err.print(f"{signal.Signals(signum).name}: finishing messages in flight ...")
            worker.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            stats = worker.run(once=once)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        err.print(
            f"delivered {stats.sent}, deferred {stats.deferred}, failed {stats.failed}"
            + (f", paused {stats.paused} time(s)" if stats.paused else "")
            + (f", {stats.errors} database error(s)" if stats.errors else ""),
            markup=False,
        )
        return EXIT_FAILED if once and (stats.failed or stats.paused or stats.errors) else 0


def worker_in_child(config: Configuration, once: bool, concurrency: int | None) -> int:
    """One of ``--processes``: the worker, with errors reported as the CLI would."""
    try:
        return run_worker(config, once=once, concurrency=concurrency)
    except PostroomError as exc:
        err.print(f"error: {exc}", markup=False)
    except Exception:
        logging.getLogger("postroom").exception("worker process stopped by an unexpected error")
    return EXIT_FAILED


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
    config.check()
    # The schema once, here, before any process starts: an embedded database is
    # created and brought up to date by one process, and a database that needs
    # `postroom db upgrade` is one error now rather than each process failing in turn.
    with Postroom(config=config) as postroom:
        _ = postroom.outbox
    supervisor = WorkerProcesses(
        config, worker_in_child, once=once, concurrency=concurrency, processes=processes
    )
    raise typer.Exit(supervisor.run())


def serve_command(ctx: typer.Context) -> None:
    """Run postroom on this machine: for now the delivery worker (the HTTP API and
    console join it in a later release). Prints where its state lives."""
    config = state(ctx).config()
    err.print(f"postroom home: {config.home.path}", markup=False)
    err.print(f"  settings: {config.home.config_file} (`postroom config list`)", markup=False)
    if not config.settings.database.url:
        err.print(f"  outbox:   {config.home.database_file} (`postroom outbox list`)", markup=False)
    raise typer.Exit(run_worker(config, once=False, concurrency=None))
