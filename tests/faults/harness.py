"""What every fault case shares: a sink that counts Message-IDs, real ``postroom worker``
processes on one HOME, and the figure line ``N enqueued, N delivered, L lost, D
duplicated``.

Workers are real processes started with ``python -m postroom worker`` and settings in
their environment, exactly as an admin runs them; the sink is aiosmtpd in this
process. Every wait is bounded: a case that hangs fails with what it saw so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from tests.support.pg import throwaway_engine
from tests.support.smtpd import Recorder, SMTPServer, start_server
from tests.support.waiting import wait_until

from postroom import Postroom
from postroom.store.engine import make_engine
from postroom.store.schema import messages

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
#: Retries at once, so a deferred message (a 421, a timeout) goes again within the case.
FAST_RETRY = {"delivery.backoff_min": "0", "delivery.backoff_max": "0"}
DATABASES = ("sqlite", "postgresql")


@dataclass
class CountingSink(Recorder):
    """Counts each Message-ID it accepts. ``delay`` per message stretches a run so that
    faults land mid-way; ``leave_after`` answers 421 and hangs up after that many
    messages on one connection, as a server that recycles its connections does."""

    delay: float = 0.0
    leave_after: int | None = None
    ids: Counter[bytes] = field(default_factory=Counter)
    refusals: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        taken = getattr(session, "taken", 0)
        if self.leave_after is not None and taken >= self.leave_after:
            self.refusals += 1
            if server.transport is not None:
                asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, try again"
        session.taken = taken + 1
        found = MESSAGE_ID.search(envelope.original_content or b"")
        with self._lock:
            self.ids[found.group(1) if found else b"?"] += 1
        return "250 2.0.0 OK"


@dataclass
class Run:
    """One case: the sink, the workers' settings and HOME, and what was enqueued."""

    home: Path
    settings: dict[str, str]
    sink: SMTPServer
    expected: set[bytes] = field(default_factory=set)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def handler(self) -> CountingSink:
        assert isinstance(self.sink.handler, CountingSink)
        return self.sink.handler

    def enqueue(self, count: int) -> None:
        with Postroom(self.home, settings=self.settings) as postroom:
            queued = postroom.enqueue(
                [{"to": f"u{n}@example.org", "subject": f"m{n}", "text": "t"} for n in range(count)]
            )
        self.expected = {q.message_id.encode() for q in queued}

    def start_worker(self, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
        env["POSTROOM_HOME"] = str(self.home)
        for key, value in self.settings.items():
            env["POSTROOM_" + key.upper().replace(".", "_")] = value
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / f"worker-{len(self.workers)}.log").open("ab")
        worker = subprocess.Popen(
            [*prefix, sys.executable, "-m", "postroom", "worker", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # a group: a wrapper (faketime) and its child go together
        )
        log.close()
        self.workers.append(worker)
        return worker

    def delivered(self) -> int:
        return len(self.handler.ids.keys() & self.expected)

    def settled(self) -> bool:
        """Every message sent, per the outbox (not only per the sink)."""
        url = self.settings.get("database.url") or f"sqlite:///{self.home / 'postroom.db'}"
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                query = select(func.count()).select_from(messages)
                sent = query.where(messages.c.status == "sent")
                return bool(connection.execute(sent).scalar_one() == len(self.expected))
        except DBAPIError:
            return False  # the database is still coming back
        finally:
            engine.dispose()

    def wait_for_all(self, timeout: float = 180) -> None:
        try:
            wait_until(lambda: self.delivered() == len(self.expected), timeout=timeout, step=0.1)
            wait_until(self.settled, timeout=timeout, step=0.2)
        except AssertionError:
            raise AssertionError(f"{self.figure()}; worker logs: {self.logs()}") from None

    def stop_workers(self) -> None:
        for worker in self.workers:
            _signal_group(worker, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(worker, signal.SIGKILL)
                worker.wait()
            _signal_group(worker, signal.SIGKILL)  # nothing of it may outlive the case

    def figure(self, case: str = "") -> str:
        lost, duplicated = self.counts()
        line = (
            f"{len(self.expected)} enqueued, {self.delivered()} delivered, {lost} lost, "
            f"{duplicated} duplicated"
        )
        return f"{line} ({case})" if case else line

    def counts(self) -> tuple[int, int]:
        """(lost, duplicated)"""
        ids = self.handler.ids
        lost = len(self.expected - ids.keys())
        return lost, sum(n - 1 for m, n in ids.items() if m in self.expected)

    def logs(self) -> str:
        logs = sorted(self.home.glob("worker-*.log"))
        return "".join(p.read_text(errors="replace") for p in logs)[-3000:]


def _signal_group(worker: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signum)


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n  [figure] {line}")


@contextmanager
def database(kind: str) -> Iterator[dict[str, str]]:
    """The settings of a fresh database: the embedded SQLite of the case's HOME, or a
    throwaway database on the machine's PostgreSQL."""
    if kind == "sqlite":
        yield {}
        return
    with throwaway_engine() as engine:
        yield {"database.url": engine.url.render_as_string(hide_password=False)}


@contextmanager
def fault_run(tmp_path: Path, kind: str, sink: CountingSink, **settings: str) -> Iterator[Run]:
    server = start_server(sink)
    try:
        with database(kind) as db:
            flags = {
                "mail.enabled": "true",
                **server.settings_flags(),
                **FAST_RETRY,
                "delivery.poll_interval": "0.2",
                **db,
                **{k.replace("__", "."): v for k, v in settings.items()},
            }
            run = Run(tmp_path / "home", flags, server)
            try:
                yield run
            finally:
                run.stop_workers()
    finally:
        server.stop()


class TricklingProxy:
    """Stands in front of a sink; on its first ``trickled`` connections it passes the
    server's words on one byte every ``interval`` seconds (a server stuck behind a
    bad link), then it passes everything at once."""

    def __init__(self, target: SMTPServer, *, trickled: int, interval: float = 0.3) -> None:
        self._target = (target.host, target.port)
        self._left = trickled
        self._interval = interval
        self._closing = threading.Event()
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listen.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def settings_flags(self) -> dict[str, str]:
        return {"mail.host": "127.0.0.1", "mail.port": str(self.port), "mail.security": "none"}

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for end in (client, upstream):  # no Nagle stalls in the relay
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            trickle, self._left = self._left > 0, self._left - 1
            for source, sink, slow in ((client, upstream, False), (upstream, client, trickle)):
                threading.Thread(target=self._pass, args=(source, sink, slow), daemon=True).start()

    def _pass(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if not slow:
                    sink.sendall(chunk)
                    continue
                for byte in chunk:
                    if self._closing.wait(self._interval):  # the fault itself, not a sync
                        return
                    sink.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def close(self) -> None:
        self._closing.set()
        self._listen.close()
