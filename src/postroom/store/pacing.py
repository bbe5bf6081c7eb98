"""Sending slots shared through the database, for delivery.rate_limit.

A limit is one row holding the time of its next free slot. A delivery thread reserves
a block of consecutive slots in one short transaction and sends at those times, so
every worker process on every machine that shares the database keeps to one rate,
with a database write per block rather than per message.
"""

from __future__ import annotations

from sqlalchemy import Engine, case, insert, update
from sqlalchemy.exc import IntegrityError

from postroom.store.schema import rate_limits


def reserve_slots(
    engine: Engine, name: str, *, count: int, interval: float, now: float
) -> tuple[float, float]:
    """Reserve ``count`` slots ``interval`` seconds apart; return the first slot's time
    and the end of the reservation as stored (to give unused slots back by).

    The first slot is never earlier than ``now``: time nobody used is not saved up
    into a burst.
    """
    span = count * interval
    for _ in range(2):  # a second try only when another worker created the row first
        try:
            with engine.begin() as connection:
                column = rate_limits.c.next_free_at
                row = connection.execute(
                    update(rate_limits)
                    .where(rate_limits.c.name == name)
                    .values(next_free_at=case((column > now, column), else_=now) + span)
                    .returning(column)
                ).first()
                if row is not None:
                    end = float(row[0])
                    return end - span, end
                connection.execute(insert(rate_limits).values(name=name, next_free_at=now + span))
                return now, now + span
        except IntegrityError:
            continue
    raise RuntimeError(f"could not reserve sending slots for rate limit {name!r}")


def give_back_slots(engine: Engine, name: str, *, end: float, count: int, interval: float) -> bool:
    """Return the last ``count`` slots of a reservation ending at ``end``, if nobody has
    reserved after it; True when they went back."""
    with engine.begin() as connection:
        result = connection.execute(
            update(rate_limits)
            .where(rate_limits.c.name == name, rate_limits.c.next_free_at == end)
            .values(next_free_at=end - count * interval)
        )
    return bool(result.rowcount)
