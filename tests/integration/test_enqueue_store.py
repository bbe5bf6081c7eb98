"""Enqueue's write path (store/enqueue.py) on SQLite and PostgreSQL: every message of a
batch gets its own id, whatever else writes to the outbox; new SQLite files get the
page size enqueue is tuned for."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import select, text
from tests.support.pg import postroom_on

from postroom import Postroom
from postroom.store.engine import SQLITE_PAGE_SIZE, make_engine
from postroom.store.schema import messages, recipients


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Postroom]:
    with postroom_on(request.param, tmp_path) as instance:
        yield instance


def _stored(postroom: Postroom) -> dict[int, tuple[str, str, list[str]]]:
    """id → (Message-ID, subject, recipient addresses) of every stored message."""
    with postroom.engine.connect() as connection:
        found = {
            pk: (message_id, subject, [])
            for pk, message_id, subject in connection.execute(
                select(messages.c.id, messages.c.message_id, messages.c.subject)
            )
        }
        for message_pk, address in connection.execute(
            select(recipients.c.message_pk, recipients.c.address).order_by(recipients.c.id)
        ):
            found[message_pk][2].append(address)
    return found


def _batch(count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"to": [f"to{n}@example.org", f"also{n}@example.org"], "subject": f"s{n}", "text": "t"}
        for n in range(start, start + count)
    ]


def test_each_message_of_a_batch_gets_its_own_id_and_recipients(postroom: Postroom) -> None:
    postroom.send(to="first@example.org", subject="before", text="t")
    results = postroom.enqueue(_batch(1200))  # more than one chunk of id look-ups
    stored = _stored(postroom)
    assert len(stored) == 1201
    for n, result in enumerate(results):
        assert stored[result.id] == (
            result.message_id,
            f"s{n}",
            [f"to{n}@example.org", f"also{n}@example.org"],
        )


def test_batch_ids_stay_right_when_other_rows_land_between_them(tmp_path: Path) -> None:
    # A trigger slips another message in after s2: the batch's rowids are no longer
    # consecutive, and the ids must come from the Message-IDs instead.
    with Postroom(tmp_path) as postroom:
        with postroom.engine.begin() as connection:
            connection.execute(
                text(
                    "CREATE TRIGGER squeeze AFTER INSERT ON messages WHEN NEW.subject = 's2' "
                    "BEGIN INSERT INTO messages (message_id, status, type, subject, "
                    "from_header, envelope_from, smtputf8, size, raw, attempts, created_at, "
                    "updated_at, queued_at, next_attempt_at) VALUES ('<other@example.org>', "
                    "'held', 'message', 'other', 'x', 'x', 0, 1, x'00', 0, 0, 0, 0, 0); END"
                )
            )
        results = postroom.enqueue(_batch(5))
        stored = _stored(postroom)
    assert len(stored) == 6
    for n, result in enumerate(results):
        addresses = [f"to{n}@example.org", f"also{n}@example.org"]
        assert stored[result.id] == (result.message_id, f"s{n}", addresses)


def test_a_message_due_later_starts_its_delivery_effort_then(postroom: Postroom) -> None:
    now = time.time()
    items = [postroom.prepare(item) for item in _batch(2)]
    with postroom.engine.begin() as connection:
        pks = postroom.outbox.insert(connection, items, now=now, due=[now - 60, now + 600])
    with postroom.engine.connect() as connection:
        found = {
            pk: (due, queued)
            for pk, due, queued in connection.execute(
                select(messages.c.id, messages.c.next_attempt_at, messages.c.queued_at)
            )
        }
    # Already due: its effort starts now. Due later: from when it is due.
    assert found[pks[0]] == (pytest.approx(now - 60), pytest.approx(now))
    assert found[pks[1]] == (pytest.approx(now + 600), pytest.approx(now + 600))


def test_a_new_sqlite_file_gets_the_page_size_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as db:
        db.execute("PRAGMA page_size=4096")
        db.execute("CREATE TABLE t (x INTEGER)")
    for path, expected in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        engine = make_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE IF NOT EXISTS u (x INTEGER)"))
            assert connection.execute(text("PRAGMA page_size")).scalar() == expected
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        engine.dispose()
