"""``postroom worker``: delivery in the foreground, in one process or several."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from sqlalchemy.engine import make_url

from postroom.errors import EXIT_FAILED, EXIT_OK, PostroomError
from postroom.runtime.core import Runtime
from postroom.runtime.logs import say, setup_logging
from postroom.runtime.processes import WorkerProcesses
from postroom.settings import Configuration
from postroom.store.engine import database_url


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


def shown_database(config: Configuration) -> str:
    """database.url (or the SQLite file) with any password masked."""
    return make_url(database_url(config)).render_as_string(hide_password=True)


def run_worker(config: Configuration, *, once: bool, concurrency: int | None) -> int:
    """Deliver in this process until SIGTERM/SIGINT (or, with ``once``, until nothing
    is due); returns the exit status."""
    setup_logging()
    config.check()
    with Runtime(config) as runtime:
        runtime.check_templates()
        worker = runtime.worker(concurrency=concurrency)
        say(
            f"postroom worker {worker.name}: {worker.concurrency} connection(s); "
            f"{describe_route(config)}; database {shown_database(config)}"
        )

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            say(f"{signal.Signals(signum).name}: finishing messages in flight ...")
            worker.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            stats = worker.run(once=once)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        say(stats.summary())
        # A recipient's refusal is the message's outcome, not the worker's failure:
        # only a fault of the worker's own (paused on configuration, database gone).
        return EXIT_FAILED if once and (stats.paused or stats.errors) else EXIT_OK


def worker_in_child(config: Configuration, once: bool, concurrency: int | None) -> int:
    """One of ``--processes``: the worker, with errors reported as the CLI would."""
    try:
        return run_worker(config, once=once, concurrency=concurrency)
    except PostroomError as exc:
        say(f"error: {exc}")
    except Exception:
        logging.getLogger("postroom").exception("worker process stopped by an unexpected error")
    return EXIT_FAILED


def run_worker_processes(
    config: Configuration, *, once: bool, concurrency: int | None, processes: int
) -> int:
    """``processes`` forked workers, kept running (see :class:`WorkerProcesses`)."""
    config.check()
    # The schema once, here, before any process starts: an embedded database is
    # created and brought up to date by one process, and a database that needs
    # `postroom db upgrade` is one error now rather than each process failing in turn.
    with Runtime(config) as runtime:
        _ = runtime.postroom.engine
    supervisor = WorkerProcesses(
        config, worker_in_child, once=once, concurrency=concurrency, processes=processes
    )
    return supervisor.run()
