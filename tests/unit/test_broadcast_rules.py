"""Recipient rules, pacing, the text of an HTML body and the request's checks: pure."""

from __future__ import annotations

import pytest

from postroom.broadcast.body import html_to_text
from postroom.broadcast.pacing import due_times
from postroom.broadcast.recipients import (
    DUPLICATE,
    INACTIVE,
    INVALID,
    NO_ADDRESS,
    Candidate,
    Decision,
    Tally,
    decide,
    selected,
)
from postroom.broadcast.request import Audience, BroadcastRequest, check_request
from postroom.errors import AddressError, BroadcastError, ConfigError
from postroom.settings.values import RateLimit

ADA = Candidate(1, "ada", "ada@example.org", active=True)
BOB = Candidate(2, "bob", "bob@example.org", active=True, in_group=True)
CAROL = Candidate(3, "carol", None, active=True)
DAVE = Candidate(4, "dave", "not an address", active=True)
ERIN = Candidate(5, "erin", "erin@example.org", active=False, in_group=True)
EVERYONE = Audience(everyone=True)


def mailed(decisions: list[Decision]) -> list[str]:
    return [d.username for d in decisions if d.queued]


def test_everyone_reaches_every_active_user() -> None:
    decisions = list(decide(EVERYONE, [ADA, BOB, CAROL, DAVE, ERIN]))
    assert mailed(decisions) == ["ada", "bob"]
    assert [d.username for d in decisions] == ["ada", "bob", "carol", "dave"]


def test_a_group_reaches_its_active_members_only() -> None:
    decisions = list(decide(Audience(group_ids=frozenset({7})), [ADA, BOB, CAROL, ERIN]))
    assert [d.username for d in decisions] == ["bob"]


def test_chosen_users_are_reached_whatever_their_groups() -> None:
    audience = Audience(user_ids=frozenset({1, 3}))
    outsider = Candidate(2, "bob", "bob@example.org", active=True)  # in no chosen group
    decisions = list(decide(audience, [ADA, outsider, CAROL]))
    assert [(d.username, d.skipped) for d in decisions] == [("ada", None), ("carol", NO_ADDRESS)]


def test_inactive_users_are_left_out_unless_asked_for() -> None:
    group = frozenset({7})
    assert mailed(list(decide(Audience(group_ids=group), [BOB, ERIN]))) == ["bob"]
    with_inactive = Audience(group_ids=group, include_inactive=True)
    assert mailed(list(decide(with_inactive, [BOB, ERIN]))) == ["bob", "erin"]


def test_an_inactive_user_chosen_by_name_is_reported_not_dropped() -> None:
    decisions = list(decide(Audience(user_ids=frozenset({5})), [ERIN]))
    assert [(d.username, d.skipped) for d in decisions] == [("erin", INACTIVE)]
    assert list(selected(Audience(user_ids=frozenset({5})), [ERIN])) == [ERIN]


def test_users_sharing_an_address_get_one_message() -> None:
    twins = [
        Candidate(1, "ada", "ada@example.org", active=True),
        Candidate(2, "ada-lab", "ADA@Example.org", active=True),
        Candidate(3, "ada-admin", "Ada@example.ORG", active=True),
        Candidate(4, "bob", "bob@example.org", active=True),
    ]
    decisions = list(decide(EVERYONE, twins))
    assert mailed(decisions) == ["ada", "bob"]
    assert [d.skipped for d in decisions] == [None, DUPLICATE, DUPLICATE, None]


def test_missing_and_invalid_addresses_are_counted() -> None:
    tally = Tally()
    for decision in decide(EVERYONE, [ADA, CAROL, DAVE, Candidate(9, "blank", "  ", True)]):
        tally.add(decision)
    assert (tally.total, tally.queued) == (4, 1)
    assert tally.no_address == ["carol", "blank"]
    assert tally.invalid == [("dave", "not an address")]


def test_users_done_before_a_resume_are_not_decided_again_but_still_collapse_twins() -> None:
    done = Candidate(1, "ada", "ada@example.org", active=True, done=True)
    twin = Candidate(2, "ada-lab", "ada@example.org", active=True)
    decisions = list(decide(EVERYONE, [done, twin, BOB]))
    assert [(d.username, d.skipped) for d in decisions] == [("ada-lab", DUPLICATE), ("bob", None)]


def test_decided_addresses_are_normalised() -> None:
    [decision] = decide(EVERYONE, [Candidate(1, "jo", "jo@Bücher.example", active=True)])
    assert decision.address == "jo@xn--bcher-kva.example"
    assert decision.skipped is None
    [invalid] = decide(EVERYONE, [Candidate(2, "x", "two@@example.org", active=True)])
    assert invalid.skipped == INVALID


def test_without_a_rate_every_message_is_due_at_the_start() -> None:
    assert due_times(None, start=100.0, first=0, count=3) == [100.0, 100.0, 100.0]


def test_a_rate_spaces_messages_evenly_from_the_start() -> None:
    rate = RateLimit(50, 60.0)
    assert due_times(rate, start=0.0, first=0, count=3) == pytest.approx([0.0, 1.2, 2.4])
    # The next chunk goes on where the last one stopped.
    assert due_times(rate, start=0.0, first=3, count=2) == pytest.approx([3.6, 4.8])


def test_a_late_resume_does_not_bunch_up_what_is_left() -> None:
    rate = RateLimit(1, 1.0)
    # 10 messages were queued at t=0..9; the resume at t=100 continues from there.
    due = due_times(rate, start=0.0, first=10, count=3, resumed_at=100.0, resumed_from=10)
    assert due == pytest.approx([100.0, 101.0, 102.0])
    # A resume right away keeps the original slots.
    due = due_times(rate, start=0.0, first=10, count=1, resumed_at=5.0, resumed_from=10)
    assert due == pytest.approx([10.0])


def test_html_body_gets_a_readable_text_part() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<h1>Maintenance</h1><p>Down at <b>6pm</b>.<br>Back at 8.</p>"
        "<ul><li>imaging</li><li>storage</li></ul>"
        '<p>See <a href="https://status.example.org">status</a> &amp; more.</p>'
        "<script>alert(1)</script></body></html>"
    )
    assert html_to_text(html) == (
        "Maintenance\n\nDown at 6pm.\nBack at 8.\n\n- imaging\n- storage\n\n"
        "See status (https://status.example.org) & more.\n"
    )


def request(**changes: object) -> BroadcastRequest:
    fields: dict[str, object] = {"subject": "Maintenance", "body": "Down at 6pm", "everyone": True}
    fields.update(changes)
    return BroadcastRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": "  "}, "the subject is blank"),
        ({"body": "\n\n"}, "the body is blank"),
        ({"everyone": False}, "no recipients: give --everyone"),
    ],
)
def test_blank_subject_body_or_no_audience_is_refused(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(BroadcastError, match=message):
        check_request(request(**changes))


def test_cc_and_bcc_are_normalised_and_each_address_gets_one_copy() -> None:
    copies, rate = check_request(
        request(
            cc=("Audit@Example.org", "audit@example.org", "log@example.org"),
            bcc=("log@example.org", "secret@example.org"),
            rate="50/min",
        )
    )
    assert copies.cc == ("Audit@example.org", "log@example.org")
    assert copies.bcc == ("secret@example.org",)
    assert copies.count == 2
    assert rate == RateLimit(50, 60.0)


def test_bad_cc_address_or_rate_is_refused() -> None:
    with pytest.raises(AddressError):
        check_request(request(cc=("not an address",)))
    with pytest.raises(ConfigError, match="--rate"):
        check_request(request(rate="fast"))


def test_audience_round_trips_through_json() -> None:
    audience = Audience(True, frozenset({2, 1}), frozenset({5}), include_inactive=True)
    assert Audience.loads(audience.dumps()) == audience
