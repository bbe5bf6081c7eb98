"""Floods collapse (pure): the first occurrence of a fingerprint is mailed at once;
repeats within ``reports.throttle`` are counted and summarised in one mail when the
window ends; past ``reports.max_per_minute`` nothing new is mailed, only counted."""

from __future__ import annotations

from dataclasses import dataclass, replace

from postroom.store.reports import Seen

CAP_WINDOW = 60.0  # seconds over which reports.max_per_minute counts


@dataclass(frozen=True, slots=True)
class Decision:
    mail: bool  # mail this occurrence now
    earlier: tuple[int, float | None]  # occurrences not mailed before it (count, since)
    seen: Seen  # the fingerprint's state afterwards


def opens_window(seen: Seen, now: float, throttle: float) -> bool:
    return seen.mailed_at is None or now - seen.mailed_at >= throttle


def occurred(seen: Seen, now: float, throttle: float, *, capped: bool) -> Decision:
    """One more occurrence. ``capped``: the global cap is reached this minute."""
    if opens_window(seen, now, throttle) and not capped:
        fresh = Seen(mailed_at=now, unsent=0, unsent_since=None, summary_due_at=None)
        return Decision(True, (seen.unsent, seen.unsent_since), fresh)
    due = seen.summary_due_at
    if due is None:
        due = now + CAP_WINDOW if capped or seen.mailed_at is None else seen.mailed_at + throttle
    counted = replace(
        seen,
        unsent=seen.unsent + 1,
        unsent_since=seen.unsent_since if seen.unsent_since is not None else now,
        summary_due_at=due,
    )
    return Decision(False, (0, None), counted)


def summarised(seen: Seen, now: float, *, capped: bool) -> Decision:
    """A summary's time has come: mail it (unless capped: try again in a minute)."""
    if seen.unsent == 0:
        return Decision(False, (0, None), replace(seen, summary_due_at=None))
    if capped:
        return Decision(False, (0, None), replace(seen, summary_due_at=now + CAP_WINDOW))
    fresh = Seen(mailed_at=now, unsent=0, unsent_since=None, summary_due_at=None)
    return Decision(True, (seen.unsent, seen.unsent_since), fresh)
