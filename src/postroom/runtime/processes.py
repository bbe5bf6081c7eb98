"""``postroom worker --processes P``: several worker processes, kept running.

Threads of one process share one interpreter lock, so past a few thousand messages a
second the way up is more processes. They share the outbox, its leases and
delivery.rate_limit through the database, as workers on other machines do.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from postroom.errors import EXIT_FAILED
from postroom.runtime.logs import say
from postroom.settings import Configuration

#: A process that ends by itself is started again after this long, doubling each time
#: it ends again soon (a crash loop, say with the database down) up to RESTART_MOST.
RESTART_FIRST = 1.0
RESTART_MOST = 60.0
#: A process that ran this long before it ended starts its next delay from the first.
HEALTHY_AFTER = 60.0

#: ``worker(config, once, concurrency)`` → exit code: what each process runs.
WorkerMain = Callable[[Configuration, bool, "int | None"], int]


class WorkerProcesses:
    """Starts ``processes`` forked workers and waits for them.

    With ``once`` each delivers what is due and exits; the exit code is the worst of
    theirs. Otherwise a process that ends by itself (killed, out of memory, crashed)
    is reported and started again with backoff, until SIGTERM or SIGINT, which is
    passed on to every process; the exit code is then the worst of those that were
    running when the signal came.
    """

    def __init__(
        self,
        config: Configuration,
        worker: WorkerMain,
        *,
        once: bool,
        concurrency: int | None,
        processes: int,
    ) -> None:
        self.config = config
        self.worker = worker
        self.once = once
        self.concurrency = concurrency
        self.processes = processes
        # fork: each child starts from the settings already read and checked here
        # (flags included), with no database connection or thread open yet.
        self._context = multiprocessing.get_context("fork")
        self._running: dict[int, tuple[BaseProcess, float]] = {}
        self._delays = [RESTART_FIRST] * processes
        self._stopping = threading.Event()

    def run(self) -> int:
        for index in range(self.processes):
            self._start(index)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        codes: dict[int, int] = {}
        try:
            while self._running:
                wait([process.sentinel for process, _ in self._running.values()])
                for index, (process, started) in list(self._running.items()):
                    if process.is_alive():
                        continue
                    process.join()
                    del self._running[index]
                    codes[index] = self._code(process.exitcode)
                    if not self.once and not self._stopping.is_set():
                        # Reported and replaced: its code is not the run's.
                        del codes[index]
                        self._restart(index, process, started)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return max(codes.values(), default=0)

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_child,
            args=(self.worker, self.config, self.once, self.concurrency),
            name=f"postroom-worker-{index}",
        )
        process.start()
        self._running[index] = (process, time.monotonic())

    def _restart(self, index: int, process: BaseProcess, started: float) -> None:
        if time.monotonic() - started >= HEALTHY_AFTER:
            self._delays[index] = RESTART_FIRST
        delay = self._delays[index]
        self._delays[index] = min(RESTART_MOST, delay * 2)
        say(
            f"worker process {process.pid} ended by itself ({_describe(process.exitcode)}); "
            f"starting another in {delay:g}s"
        )
        if self._stopping.wait(delay):
            return
        self._start(index)

    def _code(self, exitcode: int | None) -> int:
        """A child's exit code for the run: killed by a signal (negative) or unknown
        counts as failed, except the SIGTERM we passed on (a process still starting up
        has no handler of its own yet, and nothing in flight)."""
        if exitcode == -signal.SIGTERM and self._stopping.is_set():
            return 0
        return exitcode if exitcode is not None and exitcode >= 0 else EXIT_FAILED

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping.set()
        for process, _ in self._running.values():
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)


def _child(worker: WorkerMain, config: Configuration, once: bool, concurrency: int | None) -> None:
    # A process started again inherits the parent's handlers: a signal before the
    # worker sets its own must end this process, not act as the parent.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    code = EXIT_FAILED
    try:
        code = worker(config, once, concurrency)
    finally:
        # Skip the atexit handlers inherited from the parent; flush what was printed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _describe(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
