"""Pacing: when each message of a broadcast may first be sent (``--rate 50/min``).

Message ``i`` of a broadcast is due at ``start + i / rate``. The time is stored with the
message (``next_attempt_at``), so the quota holds whatever the number of workers and
however often they restart. A fan-out resumed late does not bunch up what is left: the
rest follows on from the later of its slot and the moment of the resume.

Pure: numbers in, times out.
"""

from __future__ import annotations

from postroom.settings.values import RateLimit


def due_times(
    rate: RateLimit | None,
    *,
    start: float,
    first: int,
    count: int,
    resumed_at: float | None = None,
    resumed_from: int = 0,
) -> list[float]:
    """Due times of messages ``first`` .. ``first + count - 1`` of a broadcast.

    Without a rate every message is due at ``start``. ``resumed_at`` and
    ``resumed_from`` (the index of the first message queued by the resume) shift the
    rest so that message ``resumed_from`` is due no earlier than ``resumed_at``.
    """
    if rate is None:
        return [start] * count
    interval = rate.per_seconds / rate.count
    shift = 0.0
    if resumed_at is not None:
        shift = max(0.0, resumed_at - (start + resumed_from * interval))
    return [start + shift + (first + i) * interval for i in range(count)]
