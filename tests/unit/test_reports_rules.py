"""The pure parts of error reports: scrubbing, flood decisions, subjects, fingerprints."""

from __future__ import annotations

import pytest

from postroom.reports.build import Occurrence, subject
from postroom.reports.request import RequestInfo
from postroom.reports.scrub import MASK, Scrubber
from postroom.reports.throttle import CAP_WINDOW, occurred, summarised
from postroom.store.reports import Seen

NAMES = ("pass", "secret", "token", "key", "auth", "session", "csrf", "signature", "card")
SCRUB = Scrubber(NAMES, ("S3cret-Mail-Pass/+",))


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("postgresql://app:pw123@db/x", "postgresql://app:", "pw123"),
        ("see https://bob:hunter2@files.example.org/a", "bob:", "hunter2"),
        ("Authorization: Bearer abcdef1234567890", "Bearer", "abcdef1234567890"),
        ("?token=abcdefgh1234&page=2", "page=2", "abcdefgh1234"),
        ("use pr_AbCdEfGhIjKl_mnopqrstuvwxyz0123456789ABCDEFG", "use", "pr_AbCd"),
        ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "jwt", "eyJhbGci"),
        ("card 4111-1111-1111-1111 ok", "card", "4111-1111"),
        ("mail S3cret-Mail-Pass/+ and S3cret-Mail-Pass%2F%2B", "mail", "S3cret"),
    ],
)
def test_secrets_are_masked_by_value_wherever_they_appear(text: str, kept: str, gone: str) -> None:
    shown = SCRUB.text(text)
    assert kept in shown
    assert gone not in shown
    assert MASK in shown


def test_ordinary_numbers_and_words_stay() -> None:
    text = "order 1234567890123 failed for user ada at 2026-12-03"  # not a Luhn number
    assert SCRUB.text(text) == text


def test_headers_and_fields_are_masked_by_name_default_deny() -> None:
    headers = SCRUB.headers(
        [("Authorization", "x"), ("Cookie", "x"), ("Set-Cookie", "x"), ("X-Api-Key", "x"),
         ("Proxy-Authorization", "x"), ("X-CSRFToken", "x"), ("Accept", "text/html")]
    )  # fmt: skip
    assert [v for _, v in headers] == [MASK] * 6 + ["text/html"]
    fields = SCRUB.pairs([("new_password", "a"), ("card_number", "b"), ("q", "c")])
    assert fields == [("new_password", MASK), ("card_number", MASK), ("q", "c")]


def test_the_first_occurrence_is_mailed_repeats_are_counted_then_summarised() -> None:
    first = occurred(Seen(), 1000.0, 600.0, capped=False)
    assert first.mail
    seen = first.seen
    for at in (1001.0, 1100.0, 1500.0):
        repeat = occurred(seen, at, 600.0, capped=False)
        assert not repeat.mail
        seen = repeat.seen
    assert (seen.unsent, seen.unsent_since, seen.summary_due_at) == (3, 1001.0, 1600.0)
    summary = summarised(seen, 1600.0, capped=False)
    assert summary.mail
    assert summary.earlier == (3, 1001.0)
    assert summary.seen.unsent == 0


def test_past_the_cap_nothing_new_is_mailed_and_the_summary_waits() -> None:
    capped = occurred(Seen(), 1000.0, 600.0, capped=True)
    assert not capped.mail
    assert capped.seen.summary_due_at == 1000.0 + CAP_WINDOW
    later = summarised(capped.seen, 1060.0, capped=True)
    assert not later.mail
    assert later.seen.summary_due_at == 1060.0 + CAP_WINDOW
    # A new window after a capped minute carries the count into the next report.
    opened = occurred(later.seen, 1700.0, 600.0, capped=False)
    assert opened.mail
    assert opened.earlier == (1, 1000.0)


def _request(path: str, client: str = "93.184.216.34", **headers: str) -> RequestInfo:
    return RequestInfo("GET", f"https://app.example.org{path}", path, list(headers.items()),
                       client=client)  # fmt: skip


def _error(message: str, path: str, line_shift: int = 0) -> Occurrence:
    def fails() -> None:
        raise KeyError(message)

    try:
        fails()
    except KeyError as error:
        return Occurrence.of_exception(error, _request(path), 0.0)
    raise AssertionError


def test_subject_is_one_sane_line_naming_type_message_and_path() -> None:
    occurrence = _error("x\r\nBcc: evil@example.org " + "long " * 60, "/users/42/edit")
    text = subject(occurrence, SCRUB)
    assert text.startswith("ERROR (EXTERNAL IP): KeyError: ")
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) <= 150


def test_one_bug_on_one_route_is_one_fingerprint() -> None:
    assert _error("a", "/users/1").fingerprint() == _error("b", "/users/2").fingerprint()
    assert _error("a", "/users/1").fingerprint() != _error("a", "/groups/1").fingerprint()
    internal = Occurrence.of_exception(KeyError("k"), _request("/", client="10.0.0.5"), 0.0)
    assert subject(internal, SCRUB).startswith("ERROR (INTERNAL IP)")
