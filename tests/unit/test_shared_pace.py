"""SharedPace: one thread's share of delivery.rate_limit, slot by slot.

The slot store here is a plain in-memory version of the database row (the real one
is tested in tests/integration/test_rate_limit.py); the clock is a counter, so the
waits are exact.
"""

from __future__ import annotations

import threading

import pytest

from postroom.delivery.ratelimit import STALE_AFTER, SharedPace
from postroom.settings import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Row:
    """The rate_limits row: the next free slot, moved on by each reservation."""

    def __init__(self) -> None:
        self.next_free_at = 0.0
        self.reservations: list[tuple[float, int]] = []

    def reserve(self, count: int, interval: float, now: float) -> tuple[float, float]:
        start = max(self.next_free_at, now)
        self.next_free_at = start + count * interval
        self.reservations.append((start, count))
        return start, self.next_free_at

    def give_back(self, end: float, count: int, interval: float) -> bool:
        if self.next_free_at != end:
            return False
        self.next_free_at = end - count * interval
        return True


class Stop(threading.Event):
    """A stop event whose waits move the test clock instead of sleeping."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(round(timeout, 6))
        self.clock.now += timeout
        return self.is_set()


def pace_for(rate: str, row: Row, clock: Clock) -> SharedPace:
    count, _, unit = rate.partition("/")
    seconds = {"s": 1.0, "min": 60.0}[unit]
    return SharedPace(RateLimit(int(count), seconds), row.reserve, row.give_back, clock=clock)


def test_slots_are_evenly_spaced_without_a_burst() -> None:
    clock, row = Clock(), Row()
    pace = pace_for("4/s", row, clock)
    stop = Stop(clock)
    sent_at = []
    for _ in range(8):
        assert pace.acquire(stop)
        sent_at.append(clock.now - 1000.0)
    assert sent_at == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    assert [count for _, count in row.reservations] == [4, 4]


def test_two_threads_share_one_rate() -> None:
    clock, row = Clock(), Row()
    first, second = pace_for("2/s", row, clock), pace_for("2/s", row, clock)
    stop = Stop(clock)
    assert first.acquire(stop)  # slot 0.0 (first reserves 0.0 and 0.5)
    assert second.acquire(stop)  # waits for slot 1.0 (second reserves 1.0 and 1.5)
    assert clock.now - 1000.0 == pytest.approx(1.0)
    assert stop.waits == [1.0]


def test_slots_gone_by_are_dropped_not_sent_in_a_burst() -> None:
    clock, row = Clock(), Row()
    pace = pace_for("10/s", row, clock)
    stop = Stop(clock)
    assert pace.acquire(stop)
    clock.now += STALE_AFTER + 5  # a long pause: nine reserved slots are long past
    assert pace.acquire(stop)
    assert pace.acquire(stop)
    assert len(row.reservations) == 2
    assert stop.waits == [0.1]  # the second block is spaced again


def test_unused_slots_go_back_when_nobody_reserved_after() -> None:
    clock, row = Clock(), Row()
    pace = pace_for("10/s", row, clock)
    assert pace.acquire(Stop(clock))
    pace.close()
    assert row.next_free_at == pytest.approx(1000.1)


def test_unused_slots_stay_taken_when_another_thread_reserved_after() -> None:
    clock, row = Clock(), Row()
    first, second = pace_for("10/s", row, clock), pace_for("10/s", row, clock)
    stop = Stop(clock)
    assert first.acquire(stop)
    assert second.acquire(stop)
    tail = row.next_free_at
    first.close()
    assert row.next_free_at == tail


def test_a_stopped_thread_takes_no_slot() -> None:
    clock, row = Clock(), Row()
    pace = pace_for("1/min", row, clock)
    stop = Stop(clock)
    assert pace.acquire(stop)
    stop.set()
    assert not pace.acquire(stop)


def test_wait_time_tells_without_taking_the_slot() -> None:
    clock, row = Clock(), Row()
    pace = pace_for("2/s", row, clock)
    stop = Stop(clock)
    assert pace.wait_time() == 0
    assert pace.acquire(stop)
    assert pace.wait_time() == pytest.approx(0.5)
    assert pace.wait_time() == pytest.approx(0.5)  # asking twice takes nothing
    assert pace.acquire(stop)
    assert stop.waits == [0.5]
