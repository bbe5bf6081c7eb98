"""The outbox's read paths on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.support.pg import engine_on

from postroom.store.engine import make_engine
from postroom.store.migrate import upgrade
from postroom.store.outbox import Outbox
from postroom.store.queries import (
    AGE_BUCKETS,
    get_message,
    list_messages,
    stats,
)
from postroom.store.records import MessageOutcome, NewMessage, NewRecipient, RecipientOutcome
from postroom.store.schema import MESSAGE_STATES

NOW = 1_700_000_000.0
MINUTE = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_on(request.param, tmp_path) as made:
        yield made


def raw_message(
    subject: str, to: list[str], *, html: str | None = None, attachment: bytes | None = None
) -> bytes:
    message = EmailMessage()
    message["From"] = "Lab Server <noreply@lab.example.org>"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@lab.example.org>"
    message.set_content(f"Hello,\n\n{subject}.\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        message.add_attachment(attachment, maintype="text", subtype="csv", filename="results.csv")
    return message.as_bytes()


def new_message(
    subject: str,
    to: list[str],
    *,
    cc: tuple[str, ...] = (),
    held: bool = False,
    html: str | None = None,
    attachment: bytes | None = None,
) -> NewMessage:
    raw = raw_message(subject, [*to, *cc], html=html, attachment=attachment)
    return NewMessage(
        message_id=f"<{subject.replace(' ', '-')}@lab.example.org>",
        type="message",
        subject=subject,
        from_header="Lab Server <noreply@lab.example.org>",
        envelope_from="noreply@lab.example.org",
        raw=raw,
        recipients=tuple([NewRecipient(a, "to") for a in to] + [NewRecipient(a, "cc") for a in cc]),
        held=held,
    )


def enqueue(outbox: Outbox, message: NewMessage, *, age_minutes: float = 0.0) -> int:
    return outbox.enqueue([message], now=NOW - age_minutes * MINUTE)[0].id


def deliver(
    outbox: Outbox,
    pk: int,
    replies: Mapping[str, tuple[str, int, str]],
    *,
    status: str,
    outcome: str | None = "sent",
    last_error: str | None = None,
) -> None:
    """Play one delivery attempt of message ``pk``: each recipient's (status, code, reply)."""
    claimed = outbox.claim("test-worker", limit=1000, lease_seconds=60, now=NOW)
    mine = next(m for m in claimed if m.pk == pk)
    outbox.release("test-worker", [m.pk for m in claimed if m.pk != pk])
    recipient_outcomes = tuple(RecipientOutcome(r.pk, *replies[r.address]) for r in mine.recipients)
    outbox.record(
        "test-worker",
        [
            MessageOutcome(
                pk=pk,
                status=status,
                counted=True,
                next_attempt_at=NOW + 600,
                last_error=last_error,
                outcome=outcome if status == "sent" else None,
                attempt_outcome=status,
                detail=json.dumps({"recipients": [o.reply for o in recipient_outcomes]}),
                started_at=NOW,
                finished_at=NOW + 1,
                recipients=recipient_outcomes,
            )
        ],
        worker="worker-1",
    )


def test_listing_is_newest_first_with_each_recipients_state(engine: Engine) -> None:
    outbox = Outbox(engine)
    old = enqueue(outbox, new_message("Old news", ["ada@a.example"]), age_minutes=30)
    new = enqueue(
        outbox, new_message("Fresh news", ["bob@b.example"], cc=("cy@c.example",)), age_minutes=1
    )
    listed = list_messages(engine)
    assert [m.id for m in listed] == [new, old]
    fresh = listed[0]
    assert fresh.subject == "Fresh news"
    assert fresh.status == "queued"
    assert [(r.address, r.kind, r.status) for r in fresh.recipients] == [
        ("bob@b.example", "to", "queued"),
        ("cy@c.example", "cc", "queued"),
    ]
    assert [m.id for m in list_messages(engine, limit=1, offset=1)] == [old]


def test_listing_filters_by_status_and_rejects_unknown_ones(engine: Engine) -> None:
    outbox = Outbox(engine)
    enqueue(outbox, new_message("Queued one", ["ada@a.example"]))
    held = enqueue(outbox, new_message("Held one", ["ada@a.example"], held=True))
    assert [m.id for m in list_messages(engine, status="held")] == [held]
    assert list_messages(engine, status="failed") == []
    with pytest.raises(ValueError, match="queued, sending, sent, deferred, failed, held"):
        list_messages(engine, status="bounced")


def test_show_parses_headers_bodies_and_keeps_raw_bytes(engine: Engine) -> None:
    outbox = Outbox(engine)
    message = new_message(
        "Weekly report", ["ada@a.example"], html="<p>Weekly report</p>", attachment=b"a,b\n1,2\n"
    )
    pk = enqueue(outbox, message)
    detail = get_message(engine, pk)
    assert detail is not None
    assert detail.raw == message.raw
    assert ("Subject", "Weekly report") in detail.headers
    assert detail.text == "Hello,\n\nWeekly report.\n"
    assert detail.html is not None
    assert "<p>Weekly report</p>" in detail.html
    assert [(a.filename, a.content_type, a.size) for a in detail.attachments] == [
        ("results.csv", "text/csv", 8)
    ]
    assert detail.attempt_log == ()
    assert get_message(engine, pk + 1000) is None


def test_show_has_per_recipient_replies_and_the_attempt_log(engine: Engine) -> None:
    outbox = Outbox(engine)
    pk = enqueue(outbox, new_message("Results", ["ada@a.example", "bob@b.example"]))
    deliver(
        outbox,
        pk,
        {
            "ada@a.example": ("sent", 250, "2.0.0 OK queued"),
            "bob@b.example": ("deferred", 451, "4.7.1 greylisted, try later"),
        },
        status="deferred",
        last_error="451 4.7.1 greylisted, try later",
    )
    detail = get_message(engine, pk)
    assert detail is not None
    summary = detail.summary
    assert summary.status == "deferred"
    assert summary.attempts == 1
    assert [(r.address, r.status, r.code, r.reply, r.attempts) for r in summary.recipients] == [
        ("ada@a.example", "sent", 250, "2.0.0 OK queued", 1),
        ("bob@b.example", "deferred", 451, "4.7.1 greylisted, try later", 1),
    ]
    assert summary.last_reply == "451 4.7.1 greylisted, try later"
    assert [(a.number, a.worker, a.outcome) for a in detail.attempt_log] == [
        (1, "worker-1", "deferred")
    ]
    assert detail.attempt_log[0].started_at == NOW


def test_json_of_a_message_has_design_fields_and_iso_utc_times(engine: Engine) -> None:
    outbox = Outbox(engine)
    pk = enqueue(outbox, new_message("Logged only", ["ada@a.example"]))
    deliver(outbox, pk, {"ada@a.example": ("sent", 250, "logged")}, status="sent", outcome="logged")
    detail = get_message(engine, pk)
    assert detail is not None
    shown = detail.to_json()
    listed = list_messages(engine)[0].to_json()
    for data in (shown, listed):
        assert data["id"] == pk
        assert data["status"] == "sent"
        assert data["outcome"] == "logged"
        assert data["subject"] == "Logged only"
        assert data["from"] == "Lab Server <noreply@lab.example.org>"
        assert data["message_id"] == "<Logged-only@lab.example.org>"
        assert data["attempts"] == 1
        assert data["last_error"] is None
        assert data["created_at"] == "2023-11-14T22:13:20Z"
        assert data["updated_at"].endswith("Z")
        assert data["next_attempt_at"] is None  # nothing to wait for once sent
        assert data["recipients"][0]["status"] == "sent"
        assert data["recipients"][0]["reply"] == "logged"
    assert shown["raw"].startswith("From: Lab Server")
    assert shown["attempt_log"][0]["started_at"] == "2023-11-14T22:13:20Z"
    assert json.loads(json.dumps(shown)) == shown  # plain JSON types only
    assert not list_messages(engine)[0].delivered


def test_stats_count_every_state_including_zeros(engine: Engine) -> None:
    outbox = Outbox(engine)
    enqueue(outbox, new_message("One", ["ada@a.example"]))
    enqueue(outbox, new_message("Two", ["ada@a.example"]))
    enqueue(outbox, new_message("Three", ["ada@a.example"], held=True))
    counted = stats(engine, NOW)
    assert counted.counts == {
        "queued": 2,
        "sending": 0,
        "sent": 0,
        "deferred": 0,
        "failed": 0,
        "held": 1,
    }
    assert list(counted.counts) == list(MESSAGE_STATES)


def test_empty_outbox_stats(engine: Engine) -> None:
    empty = stats(engine, NOW)
    assert empty.oldest_pending_seconds is None
    assert empty.domains == ()
    assert empty.total.buckets == (0,) * len(AGE_BUCKETS)
    assert empty.to_json()["counts"] == dict.fromkeys(MESSAGE_STATES, 0)


def test_stats_histogram_counts_pending_recipients_by_domain_and_age(engine: Engine) -> None:
    outbox = Outbox(engine)
    enqueue(outbox, new_message("Fresh", ["a@slow.example", "b@slow.example"]), age_minutes=1)
    enqueue(outbox, new_message("Boundary", ["c@slow.example"]), age_minutes=5)  # 5-10m
    enqueue(outbox, new_message("Older", ["d@Other.Example"]), age_minutes=100)  # 80-160m
    enqueue(outbox, new_message("Ancient", ["e@slow.example"]), age_minutes=3000)  # 1280m+
    enqueue(outbox, new_message("On hold", ["f@held.example"], held=True), age_minutes=9000)
    partly = enqueue(
        outbox, new_message("Partly", ["g@ok.example", "h@slow.example"]), age_minutes=50
    )
    deliver(
        outbox,
        partly,
        {"g@ok.example": ("sent", 250, "OK"), "h@slow.example": ("deferred", 451, "later")},
        status="deferred",
    )
    result = stats(engine, NOW)
    assert result.oldest_pending_seconds == pytest.approx(3000 * MINUTE)
    rows = {d.domain: d.buckets for d in result.domains}
    assert set(rows) == {"slow.example", "other.example"}  # no held, no sent recipients
    assert rows["slow.example"] == (2, 1, 0, 0, 1, 0, 0, 0, 0, 1)
    assert rows["other.example"] == (0, 0, 0, 0, 0, 1, 0, 0, 0, 0)
    assert [d.domain for d in result.domains] == ["slow.example", "other.example"]
    assert result.total.buckets == (2, 1, 0, 0, 1, 1, 0, 0, 0, 1)
    data = result.to_json()
    assert data["age_buckets"] == [
        "0-5m", "5-10m", "10-20m", "20-40m", "40-80m",
        "80-160m", "160-320m", "320-640m", "640-1280m", "1280m+",
    ]  # fmt: skip
    assert data["domains"][0] == {
        "domain": "slow.example",
        "total": 5,
        "buckets": [2, 1, 0, 0, 1, 0, 0, 0, 0, 1],
    }
    assert data["total"]["total"] == 6


def test_reading_on_sqlite_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = make_engine("sqlite:///" + str(tmp_path / "x.db"))
    upgrade(engine)
    outbox = Outbox(engine)
    enqueue(outbox, new_message("Busy", ["ada@a.example"]))
    done: list[object] = []
    with engine.begin():  # a worker's write transaction holds the lock (BEGIN IMMEDIATE)
        reader = threading.Thread(
            target=lambda: done.extend(
                [list_messages(engine), get_message(engine, 1), stats(engine, time.time())]
            ),
            daemon=True,
        )
        reader.start()
        reader.join(timeout=5)
        assert len(done) == 3, "a read query waited for the write lock"
    engine.dispose()
