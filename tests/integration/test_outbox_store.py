"""The outbox on a real SQLite file and on PostgreSQL: durability, idempotency, leases,
admin actions."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from tests.support.cli import run_postroom
from tests.support.pg import postroom_on
from tests.support.waiting import wait_until

from postroom import Postroom
from postroom.errors import AddressError, MessageTooLargeError
from postroom.store.engine import make_engine
from postroom.store.migrate import SCHEMA_HEAD, head_revision, upgrade
from postroom.store.records import MessageOutcome, RecipientOutcome
from postroom.store.schema import messages, metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Postroom]:
    with postroom_on(request.param, tmp_path) as instance:
        yield instance


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


def test_migrations_produce_the_same_schema_as_a_fresh_create(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []


def test_the_schema_head_constant_is_alembics_head() -> None:
    # Opening a database compares its revision with SCHEMA_HEAD, without alembic: a new
    # migration must move the constant too, or every start would run alembic again.
    assert head_revision() == SCHEMA_HEAD


def test_accepted_message_is_on_disk_when_the_command_returns(tmp_path: Path) -> None:
    result = run_postroom(
        tmp_path, "send", "--to", "ada@example.org", "--subject", "Durable", "--text", "hi"
    )
    assert result.code == 0
    message_id = int(result.stdout)
    # A fresh process, straight at the file: the row is committed, not in a cache.
    rows = _rows(tmp_path / "postroom.db", "SELECT id, status, subject FROM messages")
    assert rows == [(message_id, "queued", "Durable")]
    assert _rows(tmp_path / "postroom.db", "PRAGMA journal_mode") == [("wal",)]


def test_same_idempotency_key_returns_the_same_message(postroom: Postroom) -> None:
    first = postroom.send(to="ada@example.org", subject="Once", text="x", idempotency_key="k-1")
    again = postroom.send(to="ada@example.org", subject="Once", text="x", idempotency_key="k-1")
    in_batch = postroom.send_many(
        [{"to": "b@example.org", "subject": "s", "text": "t", "idempotency_key": "k-2"}] * 3
    )
    assert first == again
    assert len(set(in_batch)) == 1
    with postroom.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(messages)).scalar() == 2


def test_concurrent_senders_with_one_key_make_one_message(tmp_path: Path) -> None:
    ids: list[int] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            with Postroom(tmp_path) as own:
                ids.append(own.send(to="a@example.org", subject="s", text="t", idempotency_key="k"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(ids)) == 1
    assert _rows(tmp_path / "postroom.db", "SELECT count(*) FROM messages") == [(1,)]


def test_too_large_message_is_refused_naming_the_limit(tmp_path: Path) -> None:
    with Postroom(tmp_path, settings={"mail.max_size": "2 KB"}) as small:
        with pytest.raises(MessageTooLargeError, match=r"over the mail\.max_size limit of 2,000"):
            small.send(to="a@example.org", subject="big", text="x" * 5000)
        assert small.outbox.claim("w", limit=10, lease_seconds=60) == []


def test_send_many_stores_nothing_if_one_item_is_refused(postroom: Postroom) -> None:
    with pytest.raises(AddressError):
        postroom.send_many(
            [
                {"to": "good@example.org", "subject": "s", "text": "t"},
                {"to": "not an address", "subject": "s", "text": "t"},
            ]
        )
    assert postroom.outbox.claim("w", limit=10, lease_seconds=60) == []


def test_claim_leases_messages_to_one_owner_until_the_lease_expires(postroom: Postroom) -> None:
    outbox = postroom.outbox
    pk = postroom.send(to=["a@example.org", "b@example.org"], subject="s", text="t")
    claimed = outbox.claim("w1", limit=10, lease_seconds=60)
    assert [m.pk for m in claimed] == [pk]
    assert [r.address for r in claimed[0].recipients] == ["a@example.org", "b@example.org"]
    assert outbox.claim("w2", limit=10, lease_seconds=60) == []
    # A worker whose clock runs 10 minutes ahead cannot take it: leases follow the
    # database's clock, not the claiming worker's.
    ahead = time.time() + 600
    assert outbox.claim("w2", limit=10, lease_seconds=60, now=ahead) == []


def test_an_expired_lease_returns_the_message_to_any_worker(postroom: Postroom) -> None:
    outbox = postroom.outbox
    pk = postroom.send(to="a@example.org", subject="s", text="t")
    assert [m.pk for m in outbox.claim("w1", limit=10, lease_seconds=0.3)] == [pk]
    assert outbox.claim("w2", limit=10, lease_seconds=60) == []
    taken = wait_until(lambda: outbox.claim("w2", limit=10, lease_seconds=60))
    assert [m.pk for m in taken] == [pk]


def _outcome(pk: int, recipient_pks: list[int], status: str) -> MessageOutcome:
    return MessageOutcome(
        pk=pk,
        status=status,
        counted=True,
        next_attempt_at=0,
        last_error=None,
        outcome="sent" if status == "sent" else None,
        attempt_outcome=status,
        detail="{}",
        started_at=0,
        finished_at=0,
        recipients=tuple(RecipientOutcome(r, status, 250, "ok") for r in recipient_pks),
    )


def test_result_of_a_worker_whose_lease_was_taken_over_is_ignored(postroom: Postroom) -> None:
    outbox = postroom.outbox
    pk = postroom.send(to="a@example.org", subject="s", text="t")
    outbox.claim("slow", limit=1, lease_seconds=0.2)
    wait_until(lambda: outbox.claim("fast", limit=1, lease_seconds=60))
    assert outbox.record("slow", [_outcome(pk, [], "sent")], worker="slow") == 0
    assert outbox.record("fast", [_outcome(pk, [], "sent")], worker="fast") == 1


def test_release_gives_messages_back_without_an_attempt(postroom: Postroom) -> None:
    outbox = postroom.outbox
    pk = postroom.send(to="a@example.org", subject="s", text="t")
    outbox.claim("w", limit=1, lease_seconds=60)
    assert outbox.release("w") == 1
    again = outbox.claim("w", limit=1, lease_seconds=60)
    assert [(m.pk, m.attempts) for m in again] == [(pk, 0)]


def test_held_messages_wait_for_release(postroom: Postroom) -> None:
    outbox = postroom.outbox
    pk = postroom.send(to="a@example.org", subject="s", text="t", held=True)
    assert outbox.claim("w", limit=1, lease_seconds=60) == []
    assert outbox.release_held(pk)
    assert [m.pk for m in outbox.claim("w", limit=1, lease_seconds=60)] == [pk]


def test_retry_gives_failed_recipients_another_chance_and_never_resends_sent_ones(
    postroom: Postroom,
) -> None:
    outbox = postroom.outbox
    pk = postroom.send(to=["ok@example.org", "bad@example.org"], subject="s", text="t")
    claimed = outbox.claim("w", limit=1, lease_seconds=60)[0]
    ok, bad = claimed.recipients
    outcome = MessageOutcome(
        pk=pk,
        status="failed",
        counted=True,
        next_attempt_at=0,
        last_error="550 no such user",
        outcome=None,
        attempt_outcome="partial",
        detail="{}",
        started_at=0,
        finished_at=0,
        recipients=(
            RecipientOutcome(ok.pk, "sent", 250, "ok"),
            RecipientOutcome(bad.pk, "failed", 550, "no such user"),
        ),
    )
    outbox.record("w", [outcome], worker="w")
    assert outbox.retry([pk]) == 1
    retried = outbox.claim("w", limit=1, lease_seconds=60)[0]
    assert [r.address for r in retried.recipients] == ["bad@example.org"]
