"""Group commit: one thread writes captured messages, many sessions wait for it.

The SMTP sessions run on an event loop that must never wait for the disk. A session
hands its message to :meth:`RecordWriter.submit` and awaits the future it gets. What
the sessions submit during one turn of the loop goes to the writer thread as one
hand-off; the thread takes every hand-off that queued up while it was busy, commits
them in one transaction (one fsync for the lot), then settles all their futures with
one call back into the loop. Only then does a session answer 250: a message
acknowledged is a message on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection

from postroom.store.capture import CaptureStore, NewCapture, Row, row_of

logger = logging.getLogger("postroom.capture")

MAX_BATCH = 1000

_Batch = list[tuple[NewCapture, Row, "asyncio.Future[int]"]]
_STOP: _Batch = []


class RecordWriter:
    """The one thread that commits to the mail record, in groups, for one event loop."""

    def __init__(
        self,
        store: CaptureStore,
        *,
        max_messages: int | None = None,
        on_commit: Callable[[list[int], list[NewCapture]], None] | None = None,
    ) -> None:
        self.store = store
        self.max_messages = max_messages
        self.on_commit = on_commit
        self.commits = 0
        self.written = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gathering: _Batch | None = None
        self._queue: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="postroom-capture-writer")
        self._thread.daemon = True

    def start(self) -> None:
        """Start the thread; call on the loop whose sessions will submit."""
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def submit(self, item: NewCapture) -> asyncio.Future[int]:
        """Queue ``item``; the future gets its id once committed (call on the loop)."""
        assert self._loop is not None, "start() the writer first"
        future: asyncio.Future[int] = self._loop.create_future()
        if self._gathering is None:
            self._gathering = []
            self._loop.call_soon(self._hand_over)
        self._gathering.append((item, row_of(item, time.time()), future))
        return future

    def _hand_over(self) -> None:
        batch, self._gathering = self._gathering, None
        if batch:
            self._queue.put(batch)

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what was handed over, then end the thread."""
        if self._gathering:
            self._hand_over()
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        connection: Connection | None = None
        try:
            connection = self.store.engine.connect()
        except Exception as exc:  # each commit then takes a pooled connection, or fails
            logger.error("the mail record's database is not reachable: %s", exc)
        try:
            self._serve(connection)
        finally:
            if connection is not None:
                connection.close()

    def _serve(self, connection: Connection | None) -> None:
        stopping = False
        while not stopping:
            batch = self._queue.get()
            if batch is _STOP:
                return
            batch = list(batch)
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.extend(more)
            self._commit(connection, batch)

    def _commit(self, connection: Connection | None, batch: _Batch) -> None:
        items = [item for item, _row, _future in batch]
        outcome: list[int] | Exception
        try:
            outcome = self.store.insert_rows(
                [row for _item, row, _future in batch],
                max_messages=self.max_messages,
                connection=connection,
            )
        except Exception as exc:
            logger.error("could not store %d captured message(s): %s", len(batch), exc)
            outcome = exc
        else:
            self.commits += 1
            self.written += len(batch)
            if self.on_commit is not None:
                self.on_commit(outcome, items)
        if self._loop is not None:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(_settle, [f for _i, _r, f in batch], outcome)


def _settle(futures: list[asyncio.Future[int]], outcome: list[int] | Exception) -> None:
    for index, future in enumerate(futures):
        if future.done():  # the session went away meanwhile
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[index])
