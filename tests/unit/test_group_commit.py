"""Group commit: callers that arrive while a commit runs are committed together."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from postroom.store.group_commit import GroupCommit


class Recorder:
    """A commit that records its batches; the first one waits until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        self.fail_on: int | None = None

    def commit(self, items: Sequence[int]) -> list[str]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release_first.wait(30)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("database gone")
        return [f"r{item}" for item in items]


def test_a_lone_caller_is_committed_at_once() -> None:
    recorder = Recorder()
    recorder.release_first.set()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    assert group.submit([1, 2]) == ["r1", "r2"]
    assert group.submit([3]) == ["r3"]
    assert recorder.batches == [[1, 2], [3]]


def test_callers_arriving_during_a_commit_share_the_next_one() -> None:
    recorder = Recorder()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    results: dict[int, list[str]] = {}

    def call(item: int) -> None:
        results[item] = group.submit([item])

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert recorder.first_started.wait(30)
    others = [threading.Thread(target=call, args=(n,)) for n in range(1, 8)]
    for thread in others:
        thread.start()
    # Every other caller is waiting behind the first commit before it is released.
    while len(group._pending) < 7:
        threading.Event().wait(0.001)
    recorder.release_first.set()
    for thread in [first, *others]:
        thread.join(30)
    assert recorder.batches[0] == [0]
    assert sorted(recorder.batches[1]) == list(range(1, 8))
    assert len(recorder.batches) == 2
    assert results == {n: [f"r{n}"] for n in range(8)}


def test_an_error_reaches_every_caller_of_that_commit_and_no_other() -> None:
    recorder = Recorder()
    recorder.release_first.set()
    recorder.fail_on = 5
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    with pytest.raises(RuntimeError, match="database gone"):
        group.submit([4, 5])
    assert group.submit([6]) == ["r6"]
