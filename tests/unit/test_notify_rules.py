"""The pure parts of notifications: recipient rules, windows, tokens, payloads, and
which templates may be rendered once per event."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from postroom.errors import EventError, TokenError
from postroom.notify import recipients as rules
from postroom.notify.gather import window_end
from postroom.notify.payloads import parse_payload
from postroom.notify.personal import RECIPIENT_MARKS, URL_MARK, Shared
from postroom.notify.samples import SAMPLES
from postroom.notify.templates import Rendered, Templates, fit
from postroom.notify.unsubscribe import make_token, read_token
from postroom.store.directory_queries import User


def user(id: int, name: str, *, email: str | None = "", admin: bool = False,
         active: bool = True) -> User:  # fmt: skip
    address = f"{name}@example.org" if email == "" else email
    return User(id, name, name.title(), address, admin, active, 0.0)


PEOPLE = {u.username: u for u in [
    user(1, "alice", admin=True), user(2, "bob"), user(3, "carol"), user(4, "dave", active=False),
    user(5, "erin", email=None), user(6, "root", email=None, admin=True),
]}  # fmt: skip


def lookup(participants: Iterable[str] = (), **options: object) -> rules.Lookup:
    return rules.Lookup(
        users=lambda names: {n: PEOPLE[n] for n in names if n in PEOPLE},
        admins=lambda: [u for u in PEOPLE.values() if u.admin],
        participants=lambda thread: [PEOPLE[n] for n in participants],
        user_with_email=lambda a: next((u for u in PEOPLE.values() if u.email == a), None),
        mail_admins=("ops@example.org",),
        **options,  # type: ignore[arg-type]
    )


Found = tuple[list[str], rules.Selection, rules.Audience]


def recipients_of(
    event: str, data: dict[str, object], actor: str | None = None, **options: object
) -> Found:
    payload = parse_payload(event, data)
    candidates = rules.audience(event, payload, lookup(**options))
    chosen = rules.select(
        candidates, actor=PEOPLE.get(actor or ""), actor_name=actor, opted_out=set()
    )
    return [r.address for r in chosen.recipients], chosen, candidates


PR = {"kind": "pull_request", "id": 1, "owner": "alice"}


def test_mentions_are_names_after_an_at_sign_not_addresses() -> None:
    text = "@bob, see a@b.org and (@carol). Thanks @bob! @dave."
    assert rules.mentions(text) == ["bob", "carol", "dave"]


def test_every_role_counts_once_and_the_actor_none() -> None:
    got, chosen, _ = recipients_of(
        "pull_request.comment",
        {"object": PR, "text": "@carol @bob", "reviewers": ["carol", "bob", "alice"]},
        actor="bob",
        participants=["carol", "alice", "bob"],
    )
    assert got == ["alice@example.org", "carol@example.org"]
    assert (chosen.inactive, chosen.no_address) == (0, 0)


def test_inactive_and_addressless_users_are_counted_not_mailed() -> None:
    got, chosen, candidates = recipients_of(
        "pull_request.created",
        {"object": PR, "reviewers": ["dave", "erin", "bob", "nobody"]},
        actor="alice",
    )
    assert got == ["bob@example.org"]
    assert (chosen.inactive, chosen.no_address, candidates.unknown) == (1, 1, 1)


def test_fallback_only_when_no_named_user_exists() -> None:
    got, _, candidates = recipients_of("comment.created", {"object": {**PR, "owner": "ghost"}})
    assert candidates.fallback
    assert got == ["alice@example.org", "ops@example.org"]
    _, _, own = recipients_of("comment.created", {"object": PR}, actor="alice")
    assert not own.fallback  # the owner exists: self-comment, nobody to tell


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ["alice@example.org", "bob@example.org", "ops@example.org"]),
        ({"login_notify_admins": False}, ["bob@example.org"]),
        ({"login_notify_user": False}, ["alice@example.org", "ops@example.org"]),
        ({"login_users": ("carol",)}, []),
        ({"login_users": ("carol", "bob"), "login_notify_admins": False}, ["bob@example.org"]),
    ],
)
def test_login_failed_follows_the_senders_settings(
    options: dict[str, object], expected: list[str]
) -> None:
    got, _, _ = recipients_of("login.failed", {"user": "bob", "ip": "192.0.2.1"}, **options)
    assert got == expected


def test_a_users_address_in_mail_admins_gets_one_mail() -> None:
    candidates = rules.Audience(people=[PEOPLE["alice"]], addresses=["ALICE@example.org"])
    chosen = rules.select(candidates, actor=None, actor_name=None, opted_out=set())
    assert [r.address for r in chosen.recipients] == ["alice@example.org"]


@pytest.mark.parametrize(
    ("window", "now", "end"),
    [
        ("15m", 900.0 * 10 + 1, 900.0 * 11),
        ("15m", 900.0 * 10, 900.0 * 11),  # on a boundary: the next one
        ("1h", 3600.0 * 5 + 3599, 3600.0 * 6),
        ("daily", 86400.0 * 3 + 5, 86400.0 * 4),  # midnight UTC
    ],
)
def test_digest_windows_follow_the_utc_clock(window: str, now: float, end: float) -> None:
    assert window_end(window, now) == end


def test_a_token_is_bound_to_its_key_user_type_and_expiry() -> None:
    token = make_token(b"k" * 32, 7, "comment.created", 1000)
    request = read_token(b"k" * 32, token, now=999)
    assert (request.user_id, request.type) == (7, "comment.created")
    with pytest.raises(TokenError, match="expired"):
        read_token(b"k" * 32, token, now=1001)
    with pytest.raises(TokenError, match="not valid"):
        read_token(b"x" * 32, token, now=0)
    with pytest.raises(TokenError, match="not valid"):
        read_token(b"k" * 32, "Zm9v." + token.partition(".")[2], now=0)


@pytest.mark.parametrize(
    ("event", "data", "field"),
    [
        ("comment.created", {}, "data.object"),
        ("comment.created", {"object": {"kind": "image", "id": 1}, "txt": "x"}, "data.txt"),
        ("password.reset", {"email": "a@b.org"}, "data.url"),
        ("message", {"subject": "s", "to": "a@b.org"}, "data.to"),
        ("nosuch.type", {}, "type"),
    ],
)
def test_a_bad_payload_names_the_field(event: str, data: dict[str, object], field: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_payload(event, data)
    assert caught.value.field == field
    assert "\n" not in str(caught.value)


def test_templates_that_only_print_the_recipient_render_once(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    templates = Templates(tmp_path)
    assert templates.renders_once("comment.created")
    assert not templates.renders_once("login.failed")  # compares recipient.username
    (tmp_path / "comment.created.txt").write_text("{{ recipient.name|upper }}\n")
    assert not templates.renders_once("comment.created")
    (tmp_path / "comment.created.txt").write_text(
        "{% if recipient %}{{ recipient.name }}{% endif %}"
    )
    assert templates.renders_once("comment.created")


def test_a_shared_rendering_personalises_like_a_render_per_recipient() -> None:
    shared = Shared(
        Rendered(
            subject=f"For {RECIPIENT_MARKS['name']}",
            text=f"Hi {RECIPIENT_MARKS['name']}: {URL_MARK}\n",
            html=f'<p>Hi {RECIPIENT_MARKS["name"]}</p><a href="{URL_MARK}">x</a>',
        )
    )
    who = {"username": "o", "full_name": "O'Neil <b>", "name": "O'Neil <b>", "email": "o@x.org"}
    mine = shared.personalise(who, "https://x/u/1?a=1&b=2")
    assert mine.subject == "For O'Neil <b>"
    assert mine.text == "Hi O'Neil <b>: https://x/u/1?a=1&b=2\n"
    assert mine.html == ('<p>Hi O&#39;Neil &lt;b&gt;</p><a href="https://x/u/1?a=1&amp;b=2">x</a>')


LONG = "A very long title that keeps going well beyond what any subject line should hold " * 2


@pytest.mark.parametrize("event", [*sorted(SAMPLES), "digest"])
def test_subjects_stay_under_78_characters_even_for_long_titles(event: str) -> None:
    from postroom.notify.samples import sample_context

    context = next(sample_context(event))
    if context["object"] is not None:
        context["object"] = {**context["object"], "title": LONG, "id": "x" * 40}
        context["data"] = {**context["data"], "object": context["object"]}
    for field in ("name", "full_name", "user"):
        if field in context["data"]:
            context["data"] = {**context["data"], field: LONG}
    subject = Templates().render(event, context).subject
    if event != "message":  # the sender's own subject is theirs
        assert len(subject) <= 78, subject
    assert "\n" not in subject


def test_fit_cuts_at_a_word_and_says_so() -> None:
    assert fit("short", 30) == "short"
    assert fit("one two three four five six seven", 20) == "one two three four…"
    assert fit("x" * 40, 20) == "x" * 19 + "…"
