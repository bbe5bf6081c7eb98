"""Broadcast jobs on real SQLite and PostgreSQL: fan-out, resume, cancel, pacing."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from tests.support.pg import postroom_on

from postroom import Postroom
from postroom.broadcast import BroadcastRequest, Broadcasts
from postroom.broadcast import jobs as jobs_module
from postroom.errors import BroadcastError, DirectoryError
from postroom.store.broadcasts import BroadcastStore
from postroom.store.directory_schema import broadcast_recipients, broadcasts
from postroom.store.schema import messages, recipients


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Postroom]:
    with postroom_on(request.param, tmp_path) as instance:
        yield instance


def add_users(postroom: Postroom, count: int, *, domain: str = "example.org") -> None:
    postroom.users.sync(
        {"username": f"u{i:05d}", "email": f"u{i:05d}@{domain}"} for i in range(count)
    )


def everyone(**options: Any) -> BroadcastRequest:
    fields: dict[str, Any] = {"subject": "Maintenance", "body": "Down at 6pm", "everyone": True}
    fields.update(options)
    return BroadcastRequest(**fields)


def scalar(postroom: Postroom, query: Any) -> Any:
    with postroom.engine.connect() as connection:
        return connection.execute(query).scalar()


def addresses_mailed(postroom: Postroom, broadcast_id: int) -> list[str]:
    with postroom.engine.connect() as connection:
        rows = connection.execute(
            select(recipients.c.address)
            .join(
                broadcast_recipients, broadcast_recipients.c.message_pk == recipients.c.message_pk
            )
            .where(
                broadcast_recipients.c.broadcast_id == broadcast_id,
                broadcast_recipients.c.kind == "user",
            )
        )
        return [row[0] for row in rows]


def test_one_message_per_user_committed_with_its_link(postroom: Postroom) -> None:
    add_users(postroom, 2500)
    postroom.users.upsert("twin", email="U00007@example.org")
    postroom.users.upsert("nomail")
    report = postroom.broadcasts.submit(everyone())
    # 2,500 users, root (no address), a twin sharing u00007's address, one without.
    assert (report.total, report.queued, report.duplicates) == (2503, 2500, 1)
    assert report.no_address == ("nomail", "root")
    assert report.status == "queued"
    mailed = addresses_mailed(postroom, report.id)
    assert len(mailed) == len({a.lower() for a in mailed}) == 2500
    assert scalar(postroom, select(func.count()).select_from(messages)) == 2500


def test_unknown_users_or_groups_are_an_error_and_nothing_is_queued(postroom: Postroom) -> None:
    add_users(postroom, 3)
    with pytest.raises(DirectoryError, match="no user ghost, 99"):
        postroom.broadcasts.submit(everyone(everyone=False, user_names=("ghost",), user_ids=(99,)))
    with pytest.raises(DirectoryError, match="no group staff"):
        postroom.broadcasts.submit(everyone(group_names=("staff",)))
    assert scalar(postroom, select(func.count()).select_from(broadcasts)) == 0
    assert scalar(postroom, select(func.count()).select_from(messages)) == 0


def test_nobody_with_an_address_is_an_error_naming_them(postroom: Postroom) -> None:
    with pytest.raises(BroadcastError, match="without an address: root"):
        postroom.broadcasts.submit(everyone())
    assert scalar(postroom, select(func.count()).select_from(broadcasts)) == 0


def test_the_same_idempotency_key_returns_the_first_job(postroom: Postroom) -> None:
    add_users(postroom, 3)
    first = postroom.broadcasts.submit(everyone(idempotency_key="maint-42"))
    again = postroom.broadcasts.submit(everyone(subject="Other", idempotency_key="maint-42"))
    assert (again.id, again.created, first.created) == (first.id, False, True)
    assert scalar(postroom, select(func.count()).select_from(messages)) == 3


def test_cc_gets_one_copy_and_bcc_one_private_copy_each(postroom: Postroom) -> None:
    add_users(postroom, 2)
    report = postroom.broadcasts.submit(
        everyone(cc=("audit@example.org", "log@example.org"), bcc=("boss@example.org",))
    )
    assert (report.queued, report.copies) == (2, 2)
    with postroom.engine.connect() as connection:
        raws = [bytes(r[0]) for r in connection.execute(select(messages.c.raw))]
    assert len(raws) == 4
    assert all(b"boss@example.org" not in raw for raw in raws)
    assert sum(b"Cc: audit@example.org, log@example.org" in raw for raw in raws) == 1


def crash_after(monkeypatch: pytest.MonkeyPatch, chunks: int) -> None:
    """Make the fan-out die, like a killed process, after ``chunks`` commits."""
    written = {"chunks": 0}
    original = BroadcastStore.write_chunk

    def write_chunk(self: BroadcastStore, *args: Any, **kwargs: Any) -> bool:
        if written["chunks"] == chunks:
            raise KeyboardInterrupt("killed")
        written["chunks"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BroadcastStore, "write_chunk", write_chunk)


def test_a_fan_out_killed_halfway_resumes_without_duplicates(
    postroom: Postroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "CHUNK", 100)
    add_users(postroom, 450)
    postroom.users.upsert("twin", email="u00449@example.org")  # last address, shared
    crash_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        postroom.broadcasts.submit(everyone())
    monkeypatch.undo()
    monkeypatch.setattr(jobs_module, "CHUNK", 100)
    [job] = postroom.broadcasts.list()
    assert (job.status, job.queued) == ("fanning-out", 200)
    # Another process (a new Broadcasts, another lease owner) takes over at once.
    other = Broadcasts(postroom.engine, postroom.broadcasts.policy, postroom.users)
    report = other.resume(job.id)
    assert (report.status, report.total, report.queued, report.duplicates) == (
        "queued",
        452,
        450,
        1,
    )
    mailed = addresses_mailed(postroom, job.id)
    assert sorted(mailed) == [f"u{i:05d}@example.org" for i in range(450)]
    # Resuming a finished job changes nothing.
    assert other.resume(job.id).queued == 450


def test_a_worker_finishes_a_dead_fan_out_once_its_lease_expired(
    postroom: Postroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "CHUNK", 50)
    add_users(postroom, 120)
    crash_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        postroom.broadcasts.submit(everyone())
    monkeypatch.undo()
    worker_side = Broadcasts(postroom.engine, postroom.broadcasts.policy, postroom.users)
    assert worker_side.housekeeping() == []  # the lease is still running
    later = time.time() + jobs_module.LEASE + 1
    [resumed] = worker_side.housekeeping(now=later)
    assert len(addresses_mailed(postroom, resumed)) == 120
    assert worker_side.get(resumed).summary.status == "queued"


def test_a_fan_out_stops_when_another_takes_it_over(postroom: Postroom) -> None:
    add_users(postroom, 10)
    store = postroom.broadcasts.store
    report = postroom.broadcasts.submit(everyone())
    with postroom.engine.begin() as connection:
        connection.execute(
            update(broadcasts).where(broadcasts.c.id == report.id).values(status="fanning-out")
        )
    assert store.take(report.id, "other", lease=60, now=time.time(), force=True)
    assert not store.write_chunk(
        report.id,
        postroom.broadcasts.owner,
        lease=60,
        now=time.time(),
        links=[],
        messages_=[],
        due=[],
    )
    assert not store.finish(report.id, postroom.broadcasts.owner, now=time.time())


def test_cancel_holds_what_is_not_sent(postroom: Postroom) -> None:
    add_users(postroom, 5)
    report = postroom.broadcasts.submit(everyone())
    claimed = postroom.outbox.claim("w", limit=1, lease_seconds=60)
    assert postroom.broadcasts.cancel(report.id) == 4
    detail = postroom.broadcasts.get(report.id)
    assert detail.summary.status == "cancelled"
    assert detail.summary.counts == {"held": 4, "sending": 1}
    assert claimed
    with pytest.raises(BroadcastError, match="is cancelled; nothing to cancel"):
        postroom.broadcasts.cancel(report.id)


def test_a_rate_schedules_each_message_in_its_slot(postroom: Postroom) -> None:
    add_users(postroom, 4)
    before = time.time()
    report = postroom.broadcasts.submit(everyone(rate="30/min"))
    with postroom.engine.connect() as connection:
        due = [
            row[0]
            for row in connection.execute(
                select(messages.c.next_attempt_at).order_by(messages.c.next_attempt_at)
            )
        ]
    gaps = [b - a for a, b in itertools.pairwise(due)]
    assert gaps == pytest.approx([2.0, 2.0, 2.0])
    assert before <= due[0] <= time.time()
    assert postroom.broadcasts.get(report.id).summary.rate == "30/min"


def test_jobs_with_nothing_left_to_send_become_done(postroom: Postroom) -> None:
    add_users(postroom, 2)
    report = postroom.broadcasts.submit(everyone())
    with postroom.engine.begin() as connection:
        connection.execute(update(messages).values(status="sent"))
    assert postroom.broadcasts.get(report.id).summary.status == "done"  # as shown
    postroom.broadcasts.housekeeping(now=time.time() + 3600)
    assert scalar(postroom, select(broadcasts.c.status)) == "done"  # as stored
