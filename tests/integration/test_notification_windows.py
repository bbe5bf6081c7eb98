"""What outlives one call, on SQLite and PostgreSQL: the login.failed throttle, digests
kept in the database across a restart, the heartbeat watchdog, host transactions,
and one-click unsubscribe tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.support.notify import deliver, mails, notifying_postroom, text_of
from tests.support.smtpd import SMTPServer

from postroom import Postroom
from postroom.errors import TokenError
from postroom.notify import window_end
from postroom.notify.unsubscribe import make_token
from postroom.store.schema import messages

IMAGE = {"kind": "image", "id": 7, "title": "Plate 7", "owner": "alice", "url": "https://o/7"}
T0 = 1_800_000_000.0  # a fixed clock: windows are tested by the time passed in


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def postroom(backend: str, tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Postroom]:
    with notifying_postroom(
        backend,
        tmp_path,
        smtp_server,
        **{"senders.comment.created.digest": "1h", "senders.login.failed.notify_user": "false"},
    ) as instance:
        yield instance


def queued(postroom: Postroom) -> int:
    with postroom.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(messages)).scalar_one())


def test_ten_failed_logins_in_one_window_make_one_mail_that_says_ten(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    notifier = postroom.notifications
    for attempt in range(10):
        result = notifier.emit(
            "login.failed", data={"user": "bob", "ip": f"192.0.2.{attempt}"}, now=T0 + attempt
        )
        assert (result.ids, result.pending) == ([], 2)  # alice and mail.admins, for later
    assert notifier.flush_due(now=T0 + 899) == []  # the window (15 minutes) is still open
    assert len(notifier.flush_due(now=T0 + 901)) == 2
    deliver(postroom)
    got = mails(smtp_server)
    assert sorted(r[0] for r, _ in got) == ["alice@example.org", "ops@example.org"]
    for _, message in got:
        assert message["Subject"] == "10 failed logins for bob"
        assert "The last one came from 192.0.2.9" in text_of(message)
    # The next attempt opens a new window.
    notifier.emit("login.failed", data={"user": "bob", "ip": "192.0.2.50"}, now=T0 + 1000)
    assert len(notifier.flush_due(now=T0 + 1000 + 901)) == 2


def test_a_digest_of_five_comments_is_one_mail_listing_five_even_after_a_restart(
    postroom: Postroom, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    for n in range(5):
        result = postroom.notifications.emit(
            "comment.created",
            actor="bob",
            data={"object": {**IMAGE, "id": n, "title": f"Plate {n}"}, "text": f"comment {n}"},
            now=T0 + n,
        )
        assert (result.ids, result.pending, result.recipients) == ([], 1, 1)
    # The worker was down when the window closed: a new process, long after, sends it.
    config = postroom.config
    postroom.close()
    with Postroom(config=config) as restarted:
        assert restarted.notifications.flush_due(now=window_end("1h", T0) - 1) == []
        ids = restarted.notifications.flush_due(now=window_end("1h", T0) + 3 * 3600)
        assert len(ids) == 1
        assert restarted.notifications.flush_due(now=window_end("1h", T0) + 4 * 3600) == []
        deliver(restarted)
    ((rcpts, message),) = mails(smtp_server)
    assert rcpts == ["alice@example.org"]
    assert message["Subject"].startswith("5 comment.created notifications")
    body = text_of(message)
    for n in range(5):
        assert f"comment {n}" in body
        assert f'"Plate {n}"' in body
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_two_workers_flushing_at_once_send_each_digest_once(postroom: Postroom) -> None:
    for n in range(20):
        postroom.users.add(f"u{n}", email=f"u{n}@example.org")
        postroom.notifications.emit(
            "comment.created",
            actor="bob",
            data={"object": {**IMAGE, "owner": f"u{n}", "id": n}, "text": "x"},
            now=T0,
        )
    with Postroom(config=postroom.config) as other:
        results: list[list[int]] = []
        flushers = [
            threading.Thread(
                target=lambda p=p: results.append(p.notifications.flush_due(T0 + 4000))
            )
            for p in (postroom, other)
        ]
        for thread in flushers:
            thread.start()
        for thread in flushers:
            thread.join()
    assert sum(len(r) for r in results) == 20
    assert queued(postroom) == 20


def test_the_watchdog_sends_server_down_once_after_missed_beats_then_up_again(
    postroom: Postroom, smtp_server: SMTPServer
) -> None:
    notifier = postroom.notifications
    assert notifier.beat("omero-1", 60, now=T0) is False
    assert notifier.watch(now=T0 + 179) == []  # three beats may be missed
    assert notifier.watch(now=T0 + 181) == ["omero-1"]
    assert notifier.watch(now=T0 + 500) == []  # once per silence
    deliver(postroom)
    downs = mails(smtp_server)
    assert {m["Subject"] for _, m in downs} == {"omero-1 is down"}
    assert "It was last heard from at 2027-01-15 08:00 UTC" in text_of(downs[0][1])
    smtp_server.messages.clear()
    assert notifier.beat("omero-1", 60, now=T0 + 600) is True
    deliver(postroom)
    assert {m["Subject"] for _, m in mails(smtp_server)} == {"omero-1 is up"}


def test_an_emit_in_a_rolled_back_host_transaction_sends_nothing(postroom: Postroom) -> None:
    data = {"object": IMAGE, "text": "in a transaction", "reviewers": ["carol"]}
    with postroom.engine.connect() as connection:
        transaction = connection.begin()
        ids = postroom.emit("pull_request.created", actor="bob", data=data, connection=connection)
        assert len(ids) == 1
        transaction.rollback()
    assert queued(postroom) == 0
    with Session(postroom.engine) as session:
        postroom.emit("pull_request.created", actor="bob", data=data, connection=session)
        session.rollback()
    assert queued(postroom) == 0
    with Session(postroom.engine) as session, session.begin():
        postroom.emit("pull_request.created", actor="bob", data=data, connection=session)
    assert queued(postroom) == 1


def test_an_unsubscribe_token_turns_off_that_type_for_that_user_only(postroom: Postroom) -> None:
    notifier = postroom.notifications
    alice, carol = postroom.users.get("alice"), postroom.users.get("carol")
    notifier.set_prefs(carol.id, off=["server.up"])
    token = make_token(notifier.links.key, alice.id, "comment.created", T0 + 60)
    assert notifier.unsubscribe(token, now=T0) == (alice.id, "comment.created")
    assert notifier.opted_out(alice.id) == ["comment.created"]
    assert notifier.opted_out(carol.id) == ["server.up"]
    result = notifier.emit("comment.created", actor="bob", data={"object": IMAGE, "text": "x"})
    assert (result.recipients, result.opted_out) == (0, 1)
    # Other types still reach alice.
    assert notifier.emit("group.created", data={"name": "g"}).recipients == 2


def test_a_tampered_expired_or_foreign_token_is_refused(postroom: Postroom) -> None:
    notifier = postroom.notifications
    alice = postroom.users.get("alice")
    good = make_token(notifier.links.key, alice.id, "comment.created", T0 + 60)
    body, _, signature = good.partition(".")
    other_body = make_token(notifier.links.key, alice.id + 1, "comment.created", T0 + 60)
    for bad in (
        other_body.partition(".")[0] + "." + signature,  # another user, same signature
        body + "." + signature[:-2] + "AA",
        make_token(b"not the key", alice.id, "comment.created", T0 + 60),
        "garbage-token",
    ):
        with pytest.raises(TokenError, match="not valid"):
            notifier.unsubscribe(bad, now=T0)
    with pytest.raises(TokenError, match="expired"):
        notifier.unsubscribe(good, now=T0 + 61)
    security = make_token(notifier.links.key, alice.id, "password.reset", T0 + 60)
    with pytest.raises(TokenError):
        notifier.unsubscribe(security, now=T0)
    assert notifier.opted_out(alice.id) == []
