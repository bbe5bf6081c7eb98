"""Retry decisions (pure): per-recipient states, backoff, giving up, config faults."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.delivery.policy import RetryPolicy, _attempted, decide, detail_json
from postroom.errors import AuthenticationError, ServerDisconnected, SMTPUTF8Required, Verdict
from postroom.store.records import ClaimedMessage, ClaimedRecipient, RecipientOutcome
from postroom.transport.base import Outcome, RecipientResult, SendResult

NOW = 1_800_000_000.0
POLICY = RetryPolicy(backoff_min=60, backoff_max=3600, max_attempts=5, max_age=5 * 86400)


def _message(
    *addresses: str, attempts: int = 0, age: float = 0, failed_before: int = 0, sent_before: int = 0
):
    return ClaimedMessage(
        pk=7,
        message_id="<m@example.org>",
        envelope_from="app@example.org",
        smtputf8=False,
        raw=b"",
        attempts=attempts,
        queued_at=NOW - age,
        recipients=tuple(ClaimedRecipient(i, a) for i, a in enumerate(addresses, start=1)),
        failed_before=failed_before,
        sent_before=sent_before,
    )


def _result(*replies: tuple[str, int, str]) -> SendResult:
    return SendResult(tuple(RecipientResult(a, c, t) for a, c, t in replies))


def _decide(message: ClaimedMessage, **kwargs: object):
    return decide(message, policy=POLICY, started_at=NOW, now=NOW, rng=random.Random(1), **kwargs)


def test_each_recipient_gets_its_own_state_from_its_reply() -> None:
    message = _message("ok@example.org", "later@example.org", "gone@example.org")
    outcome = _decide(
        message,
        result=_result(
            ("ok@example.org", 250, "2.0.0 queued"),
            ("later@example.org", 450, "4.2.1 mailbox busy"),
            ("gone@example.org", 550, "5.1.1 no such user"),
        ),
    )
    assert [(r.status, r.code) for r in outcome.recipients] == [
        ("sent", 250),
        ("deferred", 450),
        ("failed", 550),
    ]
    assert outcome.recipients[2].reply == "5.1.1 no such user"
    assert outcome.status == "deferred"
    assert outcome.attempt_outcome == "partial"
    assert outcome.counted


def test_all_accepted_is_sent_with_what_sent_meant() -> None:
    outcome = _decide(
        _message("a@example.org"),
        result=_result(("a@example.org", 250, "ok")),
        outcome_kind="logged",
    )
    assert (outcome.status, outcome.outcome) == ("sent", "logged")


def test_permanent_failures_end_failed_and_keep_the_reply() -> None:
    outcome = _decide(
        _message("a@example.org"), result=_result(("a@example.org", 554, "5.7.1 spam"))
    )
    assert outcome.status == "failed"
    assert outcome.last_error == "554 5.7.1 spam"


def test_a_message_that_reached_some_recipients_is_sent_partly_not_failed() -> None:
    outcome = _decide(
        _message("a@example.org", failed_before=1), result=_result(("a@example.org", 250, "ok"))
    )
    assert (outcome.status, outcome.outcome) == ("sent", "partial")
    assert outcome.recipients[0].status == "sent"
    refused_now = _decide(
        _message("a@example.org", "b@example.org"),
        result=_result(("a@example.org", 250, "ok"), ("b@example.org", 550, "5.1.1 no user")),
    )
    assert (refused_now.status, refused_now.outcome) == ("sent", "partial")
    assert refused_now.attempt_outcome == "partial"
    assert refused_now.last_error == "550 5.1.1 no user"


def test_a_message_that_reached_nobody_is_failed() -> None:
    outcome = _decide(
        _message("a@example.org", failed_before=1),
        result=_result(("a@example.org", 550, "5.1.1 no user")),
    )
    assert outcome.status == "failed"
    earlier = _decide(
        _message("b@example.org", sent_before=1),
        result=_result(("b@example.org", 550, "5.1.1 no user")),
    )
    assert (earlier.status, earlier.outcome) == ("sent", "partial")


def test_dropped_connection_defers_every_pending_recipient() -> None:
    outcome = _decide(
        _message("a@example.org", "b@example.org"), error=ServerDisconnected("connection lost")
    )
    assert [r.status for r in outcome.recipients] == ["deferred", "deferred"]
    assert outcome.recipients[0].reply == "connection lost"


def test_message_fault_fails_only_that_message() -> None:
    outcome = _decide(_message("jöe@example.org"), error=SMTPUTF8Required("no SMTPUTF8"))
    assert outcome.status == "failed"


def test_configuration_fault_releases_without_counting_an_attempt() -> None:
    outcome = _decide(
        _message("a@example.org", attempts=3), error=AuthenticationError("535 bad login", code=535)
    )
    assert (outcome.status, outcome.counted, outcome.attempt_outcome) == ("queued", False, "paused")
    assert outcome.recipients == ()


def test_gives_up_after_max_attempts_with_the_last_reply() -> None:
    outcome = _decide(
        _message("a@example.org", attempts=4), result=_result(("a@example.org", 451, "4.3.0 later"))
    )
    assert outcome.status == "failed"
    assert outcome.recipients[0].reply.startswith("gave up after 5 attempts")
    assert "4.3.0 later" in outcome.recipients[0].reply


def test_gives_up_after_max_age() -> None:
    outcome = _decide(
        _message("a@example.org", age=6 * 86400), result=_result(("a@example.org", 421, "busy"))
    )
    assert outcome.status == "failed"
    assert "over 6.0 days" in outcome.recipients[0].reply


@pytest.mark.parametrize("attempts_done", range(1, 12))
def test_backoff_doubles_with_jitter_inside_min_and_max(attempts_done: int) -> None:
    rng = random.Random(attempts_done)
    delays = [POLICY.delay(attempts_done, rng) for _ in range(200)]
    assert all(60 <= d <= 3600 for d in delays)
    expected = min(3600, 60 * 2 ** (attempts_done - 1))
    if expected * 0.75 >= 60 and expected * 1.25 <= 3600:
        assert min(delays) >= expected * 0.75 - 1e-9
        assert max(delays) <= expected * 1.25 + 1e-9
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not lockstep


def test_deferred_message_is_due_after_the_backoff() -> None:
    outcome = _decide(_message("a@example.org"), result=_result(("a@example.org", 451, "later")))
    assert 60 * 0.75 <= outcome.next_attempt_at - NOW <= 60 * 1.25
    detail = json.loads(outcome.detail)
    assert detail["recipients"][0]["code"] == 451


# -- the usual attempt (every recipient taken) has a fast path of its own ----------------


@pytest.mark.parametrize(
    ("addresses", "failed_before", "sent_before", "kind", "given"),
    [
        (("a@example.org",), 0, 0, "sent", None),
        (("a@example.org", "b@example.org", "c@example.org"), 0, 0, "sent", None),
        (("a@example.org",), 2, 0, "sent", None),  # partial: refused by others before
        (("a@example.org",), 0, 1, "logged", None),
        (("a@example.org", "b@example.org"), 0, 0, "recorded", "sent"),  # a given verdict
    ],
)
def test_the_fast_path_for_an_attempt_every_recipient_took_decides_as_the_general_one(
    addresses: tuple[str, ...],
    failed_before: int,
    sent_before: int,
    kind: Outcome,
    given: Verdict | None,
) -> None:
    message = _message(*addresses, attempts=2, failed_before=failed_before, sent_before=sent_before)
    code = None if given else 250
    result = SendResult(
        tuple(
            RecipientResult(a, code, f"2.0.0 Ok: queued as Q{n}", given)
            for n, a in enumerate(addresses)
        )
    )
    rng = random.Random(1)
    fast = decide(
        message,
        result=result,
        outcome_kind=kind,
        policy=POLICY,
        started_at=NOW,
        now=NOW + 1,
        rng=rng,
    )
    general = _attempted(message, result, None, kind, POLICY, NOW, NOW + 1, rng)
    assert fast == general
    assert fast.status == "sent"


@pytest.mark.parametrize(
    "result",
    [
        _result(("A@Example.org", 250, "ok")),  # another case: matched as the general path does
        _result(("b@example.org", 250, "ok")),  # not the recipient asked for
        _result(),  # no reply at all
        _result(("a@example.org", 250, "ok"), ("a@example.org", 250, "twice")),
    ],
)
def test_replies_the_fast_path_does_not_take_are_decided_by_the_general_one(
    result: SendResult,
) -> None:
    message = _message("a@example.org")
    rng = random.Random(1)
    assert _decide(message, result=result) == _attempted(
        message, result, None, "sent", POLICY, NOW, NOW, rng
    )


@given(
    st.lists(
        st.tuples(st.text(), st.one_of(st.none(), st.integers(100, 599)), st.text(), st.text()),
        max_size=4,
    )
)
def test_an_attempts_detail_is_written_exactly_as_json_dumps_writes_it(
    rows: list[tuple[str, int | None, str, str]],
) -> None:
    recipients = [ClaimedRecipient(n, address) for n, (address, _, _, _) in enumerate(rows)]
    outcomes = [
        RecipientOutcome(n, status, code, reply) for n, (_, code, reply, status) in enumerate(rows)
    ]
    expected = json.dumps(
        {
            "recipients": [
                {"address": r.address, "code": o.code, "reply": o.reply, "status": o.status}
                for r, o in zip(recipients, outcomes, strict=True)
            ]
        }
    )
    assert detail_json(recipients, outcomes) == expected
