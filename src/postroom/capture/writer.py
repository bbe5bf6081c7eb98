"""Group commit: one thread writes captured messages, many sessions wait for it.

The SMTP sessions run on an event loop that must never wait for the disk. A session
hands its message to :meth:`RecordWriter.submit` and awaits the future it gets. What
the sessions submit during one turn of the loop goes to the writer thread as one
hand-off; the thread takes every hand-off that queued up while it was busy (up to
``MAX_BATCH`` messages), commits them in one transaction (one fsync for the lot), then
settles all their futures with one call back into the loop. Only then does a session
answer 250: a message acknowledged is a message on disk.

The transaction is all or nothing: if it fails, every future of the group gets the
error (each session answers 451, and nothing of the group is in the record) and the
thread takes a fresh connection for the next group. Pruning the record to
capture.max_messages / max_bytes happens after the sessions are answered, in a
transaction of its own (see :mod:`postroom.store.capture`).
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

MAX_BATCH = 1000  # messages a commit at most (13 SQL parameters each on SQLite)

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
        self.waiting = 0  # sessions waiting for their message's commit (read on the loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gathering: _Batch | None = None
        self._queue: queue.SimpleQueue[_Batch] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="postroom-capture-writer")
        self._thread.daemon = True

    @property
    def queued(self) -> int:
        """Hand-offs the thread has not taken yet (it is busy with a commit)."""
        return self._queue.qsize()

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
        self.waiting += 1
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
        stopping = False
        while not stopping:
            batch = self._queue.get()
            if batch is _STOP:
                break
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
            for start in range(0, len(batch), MAX_BATCH):
                connection = self._commit(connection, batch[start : start + MAX_BATCH])
        if connection is not None:
            connection.close()

    def _commit(self, connection: Connection | None, batch: _Batch) -> Connection | None:
        """Commit ``batch`` and settle its futures; return the connection to use next."""
        futures = [future for _item, _row, future in batch]
        try:
            if connection is None:
                connection = self.store.engine.connect()
            ids = self.store.insert_rows(
                [row for _item, row, _future in batch], connection=connection
            )
        except Exception as exc:
            logger.error("could not store %d captured message(s): %s", len(batch), exc)
            self._call_loop(_settle, futures, exc)
            if connection is not None:  # it may be broken; the next group takes a new one
                with contextlib.suppress(Exception):
                    connection.close()
            return None
        self.commits += 1
        self.written += len(batch)
        self._call_loop(_settle, futures, ids)
        if self.on_commit is not None:
            try:
                self.on_commit(ids, [item for item, _row, _future in batch])
            except Exception:  # a listener's fault must not stop the writer
                logger.exception("on_commit failed after storing ids %d-%d", ids[0], ids[-1])
        try:
            self.store.prune(ids[-1], max_messages=self.max_messages, connection=connection)
        except Exception as exc:  # the messages are stored and answered; prune next time
            logger.error("could not prune the mail record: %s", exc)
        return connection

    def _call_loop(self, callback: Callable[..., None], *args: object) -> None:
        if self._loop is not None:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(callback, self, *args)


def _settle(
    writer: RecordWriter, futures: list[asyncio.Future[int]], outcome: list[int] | Exception
) -> None:
    writer.waiting -= len(futures)
    for index, future in enumerate(futures):
        if future.done():  # the session went away meanwhile
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[index])
