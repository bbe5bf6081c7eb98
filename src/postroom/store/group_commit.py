"""Group commit: writes from many threads at once go to the database together.

When several threads enqueue at the same moment (an HTTP service answering many
clients, a multi-threaded host app), each committing on its own makes them queue for
SQLite's write lock, where the losers sleep and retry (tens to hundreds of
milliseconds), and pays one fsync each. Here the first caller leads: it commits what
is waiting, in one transaction; callers that arrive meanwhile wait, and the next of
them leads the next commit with everything that gathered. A caller alone is
committed at once, so a single thread waits for nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Request(Generic[T, R]):
    items: Sequence[T]
    results: list[R] | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class GroupCommit(Generic[T, R]):
    """``commit(items) -> results`` (one result per item, in order) run for the items
    of every caller waiting, together. An error fails every caller of that commit
    (none of their items is stored: it was one transaction)."""

    def __init__(self, commit: Callable[[Sequence[T]], list[R]]) -> None:
        self._commit = commit
        self._condition = threading.Condition()
        self._pending: list[_Request[T, R]] = []
        self._leading = False

    def submit(self, items: Sequence[T]) -> list[R]:
        request: _Request[T, R] = _Request(items)
        with self._condition:
            self._pending.append(request)
            while self._leading and not request.done:
                self._condition.wait()
            if not request.done:
                self._leading = True
                batch, self._pending = self._pending, []
        if not request.done:
            self._lead(batch)
        if request.error is not None:
            raise request.error
        assert request.results is not None
        return request.results

    def _lead(self, batch: list[_Request[T, R]]) -> None:
        try:
            results = self._commit([item for each in batch for item in each.items])
            start = 0
            for each in batch:
                each.results = results[start : start + len(each.items)]
                start += len(each.items)
        except BaseException as exc:
            for each in batch:
                each.error = exc
        finally:
            with self._condition:
                for each in batch:
                    each.done = True
                self._leading = False
                self._condition.notify_all()
