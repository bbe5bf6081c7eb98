"""Enqueue for the event loop: one thread commits what arrived meanwhile, together.

A route that enqueued through the thread pool paid a thread hop per request and left
many threads contending for the interpreter and SQLite's write lock. Here a request
composes its message on the event loop (microseconds), hands it to the intake and
awaits it; the intake's thread commits everything that queued up while the previous
commit ran, in one transaction (one fsync), and wakes the event loop once for the
whole batch. Each caller still hears back only when its message is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading

from postroom.store.outbox import Outbox
from postroom.store.records import Enqueued, NewMessage

BATCH = 500  # messages committed at most in one transaction

_Waiting = tuple[NewMessage, "asyncio.Future[Enqueued]", asyncio.AbstractEventLoop]


class Intake:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="postroom-intake", daemon=True)
        self._thread.start()

    async def submit(self, message: NewMessage) -> Enqueued:
        """Commit ``message`` to the outbox; an error of the commit is raised here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Enqueued] = loop.create_future()
        self._queue.put((message, future, loop))
        return await future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Waiting]) -> None:
        results: list[Enqueued] | None = None
        error: BaseException | None = None
        try:
            results = self.outbox.enqueue([message for message, _, _ in batch])
        except BaseException as exc:  # every caller of the batch hears it
            error = exc
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[int, asyncio.Future[Enqueued]]]] = {}
        for index, (_, future, loop) in enumerate(batch):
            by_loop.setdefault(loop, []).append((index, future))
        for loop, waiting in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, waiting, results, error)


def _settle(
    waiting: list[tuple[int, asyncio.Future[Enqueued]]],
    results: list[Enqueued] | None,
    error: BaseException | None,
) -> None:
    for index, future in waiting:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            assert results is not None
            future.set_result(results[index])
