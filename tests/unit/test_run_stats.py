"""What a delivery run counts: messages by the state their attempt left them in, and
recipients by theirs."""

from __future__ import annotations

from postroom.delivery.results import RunStats
from postroom.store.records import MessageOutcome, RecipientOutcome


def outcome(status: str, *recipients: str, outcome: str | None = None) -> MessageOutcome:
    return MessageOutcome(
        pk=1,
        status=status,
        counted=status != "queued",
        next_attempt_at=0.0,
        last_error=None,
        outcome=outcome,
        attempt_outcome=status,
        detail="{}",
        started_at=0.0,
        finished_at=0.0,
        recipients=tuple(RecipientOutcome(n, s, None, "") for n, s in enumerate(recipients)),
    )


def test_messages_and_recipients_are_counted_by_state_over_several_groups() -> None:
    stats = RunStats()
    stats.count(
        [
            outcome("sent", "sent", outcome="sent"),
            outcome("sent", "sent", "failed", outcome="partial"),
            outcome("deferred", "sent", "deferred"),
        ]
    )
    stats.count([outcome("failed", "failed"), outcome("queued"), outcome("sent", "sent")])
    assert (stats.sent, stats.partial, stats.deferred, stats.failed, stats.paused) == (
        3,
        1,
        1,
        1,
        1,
    )
    assert stats.recipients == {"sent": 4, "failed": 2, "deferred": 1}
    assert stats.summary() == (
        "delivered 3 (1 partly), deferred 1, failed 1; recipients: 4 sent, 1 deferred, "
        "2 refused; paused 1 time(s)"
    )


def test_nothing_counted_reads_as_nothing_delivered() -> None:
    stats = RunStats()
    stats.count([])
    assert stats.summary() == "delivered 0, deferred 0, failed 0"
