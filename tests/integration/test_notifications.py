"""Event notifications end to end: emit, the outbox, a worker, a real SMTP server.

Recipients, From, envelope sender and headers of every type; the shared rules (the
actor, inactive users, no address, each once); fallback; threading; CRLF in fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.notify import BOUNCES, OPS, deliver, mails, notifying_postroom, text_of
from tests.support.smtpd import SMTPServer

from postroom import Postroom
from postroom.errors import EventError

PR = {"kind": "pull_request", "id": 42, "title": "Faster thumbnails", "owner": "alice",
      "url": "https://code.example.org/pr/42"}  # fmt: skip
IMAGE = {"kind": "image", "id": 7, "title": "Plate 7", "owner": "alice",
         "url": "https://omero.example.org/image/7"}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SMTPServer
) -> Iterator[Postroom]:
    with notifying_postroom(request.param, tmp_path, smtp_server) as instance:
        yield instance


ADMINS = ["alice@example.org", OPS]
# type, actor, data, who gets a mail, type header value, From's display name
CASES: list[tuple[str, str | None, dict[str, Any], list[str], str, str]] = [
    ("server.up", None, {"name": "omero-1"}, ADMINS, "server_up", "Lab Mail"),
    ("server.down", None, {"name": "omero-1"}, ADMINS, "server_down", "Lab Mail"),
    ("user.created", "alice", {"username": "fred", "email": "fred@example.org"},
     [OPS], "registration", "Alice Liddell (no-reply)"),
    ("user.registered", None, {"username": "fred", "email": "fred@example.org"},
     ADMINS, "registration", "Lab Mail"),
    ("group.created", "bob", {"name": "imaging"}, ADMINS, "group_created", "Bob Ray (no-reply)"),
    ("comment.created", "bob", {"object": IMAGE, "text": "Nice"}, ["alice@example.org"],
     "comment", "Bob Ray (no-reply)"),
    ("changeset.comment", "bob",
     {"object": {**PR, "kind": "changeset", "id": "9f2c"}, "text": "Hm", "reviewers": ["carol"]},
     ["alice@example.org", "carol@example.org"], "cs_comment", "Bob Ray (no-reply)"),
    ("pull_request.created", "alice", {"object": PR, "reviewers": ["bob", "carol"]},
     ["bob@example.org", "carol@example.org"], "pull_request", "Alice Liddell (no-reply)"),
    ("pull_request.reviewers_added", "alice", {"object": PR, "reviewers": ["carol"]},
     ["carol@example.org"], "pull_request", "Alice Liddell (no-reply)"),
    ("pull_request.comment", "bob", {"object": PR, "text": "LGTM", "reviewers": ["carol"]},
     ["alice@example.org", "carol@example.org"], "pull_request_comment", "Bob Ray (no-reply)"),
    ("password.reset", None, {"email": "Bob@Example.org", "url": "https://x.org/reset/1"},
     ["bob@example.org"], "password_reset", "Lab Mail"),
    ("message", None, {"to": ["carol@example.org"], "subject": "Hi", "text": "Hello"},
     ["carol@example.org"], "message", "Lab Mail"),
]  # fmt: skip


@pytest.mark.parametrize(("event", "actor", "data", "expected", "header", "from_name"), CASES)
def test_each_type_reaches_its_recipients_with_from_envelope_and_headers(
    postroom: Postroom,
    smtp_server: SMTPServer,
    event: str,
    actor: str | None,
    data: dict[str, Any],
    expected: list[str],
    header: str,
    from_name: str,
) -> None:
    ids = postroom.emit(event, actor=actor, data=data)
    if event != "password.reset":
        assert len(ids) == len(expected)
    deliver(postroom)
    got = mails(smtp_server)
    # One message per recipient: no one sees another's address.
    assert sorted(rcpts[0] for rcpts, _ in got) == sorted(expected)
    for rcpts, message in got:
        assert len(rcpts) == 1
        assert message["To"] == rcpts[0]
        assert message["X-Postroom-Notification-Type"] == header
        assert message["From"].addresses[0].display_name == from_name
        assert message["From"].addresses[0].addr_spec == "lab@example.org"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message.get_body(("plain",)) is not None
        assert message.get_body(("html",)) is not None
    assert {m.mail_from for m in smtp_server.messages} == {BOUNCES}


def test_users_can_opt_out_except_from_security_mail(postroom: Postroom) -> None:
    for event, ids in [("server.down", []), ("password.reset", [])]:
        with pytest.raises(EventError, match="cannot be switched off"):
            postroom.notifications.set_prefs(postroom.users.get("alice").id, off=[event])
        assert ids == []


def test_optional_types_carry_one_click_unsubscribe_and_security_mail_does_not(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    postroom.emit("comment.created", actor="bob", data={"object": IMAGE, "text": "x"})
    postroom.emit("server.down", data={"name": "omero-1"})
    postroom.emit("password.reset", data={"email": "bob@example.org", "url": "https://r/1"})
    deliver(postroom)
    by_type = {m["X-Postroom-Notification-Type"]: m for _, m in mails(smtp_server)}
    comment = by_type["comment"]
    assert comment["List-Unsubscribe"].startswith("<https://mail.example.org/unsubscribe/")
    assert comment["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://mail.example.org/unsubscribe/" in text_of(comment)
    for kind in ("server_down", "password_reset"):
        assert by_type[kind]["List-Unsubscribe"] is None
        assert by_type[kind]["List-Unsubscribe-Post"] is None


def test_the_actor_never_gets_their_own_notification(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    result = postroom.notifications.emit(
        "comment.created", actor="alice", data={"object": IMAGE, "text": "note to self"}
    )
    assert (result.ids, result.recipients, result.fallback) == ([], 0, False)
    deliver(postroom)
    assert smtp_server.messages == []


def test_pull_request_comment_reaches_each_role_once_but_not_the_actor(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    postroom.users.add("gil", full_name="Gil", email="gil@example.org")
    # gil and carol commented before; carol is also a reviewer and @mentioned.
    postroom.emit("pull_request.comment", actor="gil", data={"object": PR, "text": "first"})
    postroom.emit("pull_request.comment", actor="carol", data={"object": PR, "text": "second"})
    deliver(postroom)
    smtp_server.messages.clear()
    result = postroom.notifications.emit(
        "pull_request.comment",
        actor="bob",
        data={"object": PR, "text": "@carol @bob see this", "reviewers": ["carol", "bob", "alice"]},
    )
    deliver(postroom)
    got = sorted(rcpts[0] for rcpts, _ in mails(smtp_server))
    assert got == ["alice@example.org", "carol@example.org", "gil@example.org"]
    assert result.recipients == 3
    mentioned = next(m for r, m in mails(smtp_server) if r == ["carol@example.org"])
    assert "mentioned you" in text_of(mentioned)


def test_a_pull_requests_mails_form_one_thread(postroom: Postroom, smtp_server: SMTPServer) -> None:
    postroom.emit("pull_request.created", actor="alice", data={"object": PR, "reviewers": ["bob"]})
    postroom.emit("pull_request.comment", actor="bob", data={"object": PR, "text": "ping"})
    postroom.emit("comment.created", actor="bob", data={"object": IMAGE, "text": "other"})
    deliver(postroom)
    refs = {m["Subject"]: m["References"] for _, m in mails(smtp_server)}
    pr_refs = {v for k, v in refs.items() if "Plate" not in k}
    assert len(pr_refs) == 1
    assert None not in pr_refs
    assert refs[next(k for k in refs if "Plate" in k)] not in pr_refs
    ids = {m["Message-ID"] for _, m in mails(smtp_server)}
    assert len(ids) == 3  # each message its own id, the thread in References/In-Reply-To


def test_inactive_users_and_users_without_address_are_skipped_and_counted(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    result = postroom.notifications.emit(
        "pull_request.created",
        actor="alice",
        data={"object": PR, "reviewers": ["bob", "dave", "erin", "ghost"]},
    )
    assert (result.recipients, result.inactive, result.no_address, result.unknown) == (1, 1, 1, 1)
    deliver(postroom)
    assert [r for r, _ in mails(smtp_server)] == [["bob@example.org"]]


def test_no_determinable_recipient_falls_back_to_admins_in_one_message(
    postroom: Postroom, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    result = postroom.notifications.emit("message", data={"subject": "Disk full", "text": "!"})
    orphan = postroom.notifications.emit(
        "comment.created", actor="bob", data={"object": {**IMAGE, "owner": "ghost"}, "text": "?"}
    )
    assert result.fallback
    assert orphan.fallback
    assert orphan.unknown == 1
    assert len(result.ids) == len(orphan.ids) == 1
    assert "no recipient could be determined" in caplog.text
    deliver(postroom)
    assert [r for r, _ in mails(smtp_server)] == [sorted(ADMINS), sorted(ADMINS)]


def test_password_reset_gives_the_same_answer_for_known_and_unknown_addresses(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    known = postroom.notifications.emit(
        "password.reset", data={"email": "bob@example.org", "url": "https://x.org/r/1"}
    )
    unknown = postroom.notifications.emit(
        "password.reset", data={"email": "nobody@example.org", "url": "https://x.org/r/2"}
    )
    assert known.to_json() == unknown.to_json() == {"type": "password.reset", "ids": []}
    deliver(postroom)
    ((rcpts, message),) = mails(smtp_server)
    assert rcpts == ["bob@example.org"]
    assert "https://x.org/r/1" in text_of(message)


INJECTION = "x\r\nBcc: evil@example.org\r\nX-Injected: 1"


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("server.down", {"name": INJECTION, "reason": INJECTION}),
        ("login.failed", {"user": "bob", "ip": INJECTION}),
        ("user.registered", {"username": INJECTION, "full_name": INJECTION}),
        ("group.created", {"name": INJECTION}),
        ("comment.created", {"object": {**IMAGE, "title": INJECTION}, "text": INJECTION}),
        ("pull_request.created", {"object": {**PR, "title": INJECTION, "url": INJECTION},
                                  "reviewers": ["carol"]}),
        ("message", {"to": ["carol@example.org"], "subject": INJECTION, "text": INJECTION}),
    ],
)  # fmt: skip
def test_crlf_in_any_event_field_never_adds_a_header(
    tmp_path: Path, smtp_server: SMTPServer, event: str, data: dict[str, Any]
) -> None:
    with notifying_postroom(
        "sqlite", tmp_path, smtp_server, **{"senders.login.failed.throttle": "0"}
    ) as postroom:
        postroom.emit(event, actor="bob", data=data)
        deliver(postroom)
    assert smtp_server.messages
    for rcpts, message in mails(smtp_server):
        assert "evil@example.org" not in rcpts
        assert message["Bcc"] is None
        assert message["X-Injected"] is None


@pytest.mark.parametrize("field", ["kind", "id"])
def test_an_object_kind_or_id_with_a_line_break_is_refused_naming_it(
    postroom: Postroom, field: str
) -> None:
    data = {"object": {**IMAGE, field: INJECTION}, "text": "x"}
    with pytest.raises(EventError, match=f"field object.{field}"):
        postroom.emit("comment.created", actor="bob", data=data)
    assert postroom.outbox.waiting([1]) is False
