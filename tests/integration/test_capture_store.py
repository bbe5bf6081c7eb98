"""The mail record on SQLite and on PostgreSQL: batched inserts, filters, one message in
full, pruning."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.support.pg import engine_on

from postroom.store.capture import CaptureStore, NewCapture
from postroom.store.capture_queries import count_captured, get_captured, list_captured


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_on(request.param, tmp_path) as made:
        yield made


def mail(subject: str, *to: str, sender: str = "app@example.org") -> NewCapture:
    raw = (
        f"From: App <{sender}>\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nsee https://x.org/a\r\n"
    ).encode()
    return NewCapture(sender, to, raw, peer="127.0.0.1:4000", helo="app.local")


def test_batch_is_committed_with_ids_in_order_and_listed_newest_first(engine: Engine) -> None:
    store = CaptureStore(engine)
    ids = store.insert([mail("one", "a@x.org"), mail("two", "b@x.org"), mail("three", "c@x.org")])
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [m.subject for m in list_captured(engine)] == ["three", "two", "one"]
    assert [m.subject for m in list_captured(engine, oldest_first=True, limit=2)] == ["one", "two"]


def test_one_message_in_full_keeps_the_envelope_session_and_bytes(engine: Engine) -> None:
    item = mail("Grüße", "Bob@Example.org", "cy@example.org")
    (pk,) = CaptureStore(engine).insert([item])
    detail = get_captured(engine, pk)
    assert detail is not None
    assert detail.raw == item.raw
    assert detail.summary.rcpt_tos == ("Bob@Example.org", "cy@example.org")
    assert detail.summary.mail_from == "app@example.org"
    assert (detail.summary.peer, detail.summary.helo, detail.summary.tls) == (
        "127.0.0.1:4000",
        "app.local",
        False,
    )
    assert detail.summary.to_header == "Bob@Example.org, cy@example.org"
    assert detail.text == "Hello,\nsee https://x.org/a\n"
    assert ("Subject", "Grüße") in detail.headers
    assert detail.to_json()["rcpt_tos"] == ["Bob@Example.org", "cy@example.org"]
    assert get_captured(engine, pk + 100) is None


def test_recipient_filter_is_exact_for_an_address_and_partial_otherwise(engine: Engine) -> None:
    store = CaptureStore(engine)
    store.insert(
        [
            mail("to bob", "bob@example.org"),
            mail("to jbob", "jbob@example.org"),
            mail("to bob elsewhere", "bob@example.org.evil"),
            mail("to both", "ada@other.org", "BOB@EXAMPLE.ORG"),
        ]
    )

    def subjects(**filters: object) -> list[str]:
        return sorted(m.subject for m in list_captured(engine, **filters))  # type: ignore[arg-type]

    assert subjects(to="bob@example.org") == ["to bob", "to both"]
    assert subjects(to="Bob@Example.Org") == ["to bob", "to both"]
    assert subjects(to="bob@") == ["to bob", "to bob elsewhere", "to both", "to jbob"]
    assert subjects(to="example.org.evil") == ["to bob elsewhere"]
    assert subjects(to="ada", exact=False) == ["to both"]
    assert subjects(to="100%_") == []


def test_subject_and_since_filters(engine: Engine) -> None:
    store = CaptureStore(engine)
    store.insert([mail("Password reset", "a@x.org")], now=time.time() - 3600)
    store.insert([mail("Welcome aboard", "a@x.org"), mail("RESET done", "a@x.org")])
    assert [m.subject for m in list_captured(engine, subject="reset")] == [
        "RESET done",
        "Password reset",
    ]
    recent = list_captured(engine, since=time.time() - 60)
    assert sorted(m.subject for m in recent) == ["RESET done", "Welcome aboard"]


def test_pruning_keeps_the_newest_max_messages(engine: Engine) -> None:
    store = CaptureStore(engine)
    for batch in range(4):
        store.insert([mail(f"m{batch}-{i}", "a@x.org") for i in range(3)], max_messages=5)
    assert count_captured(engine) == 5
    assert [m.subject for m in list_captured(engine, oldest_first=True)] == [
        "m2-1",
        "m2-2",
        "m3-0",
        "m3-1",
        "m3-2",
    ]


def test_large_limits_prune_once_one_percent_more_has_come_in(engine: Engine) -> None:
    store = CaptureStore(engine)
    for _ in range(20):
        store.insert([mail("m", "a@x.org") for _ in range(10)], max_messages=100)
        assert count_captured(engine) <= 101
    assert count_captured(engine) in (100, 101)


def test_clear_deletes_everything_and_ids_are_not_reused(engine: Engine) -> None:
    store = CaptureStore(engine)
    first = store.insert([mail("a", "a@x.org"), mail("b", "a@x.org")])
    assert store.clear() == 2
    assert list_captured(engine) == []
    (again,) = store.insert([mail("c", "a@x.org")])
    assert again > max(first)


def test_the_record_keeps_at_most_max_bytes_oldest_going_first(engine: Engine) -> None:
    one = len(mail("m00", "a@x.org").raw)
    store = CaptureStore(engine, max_bytes=one * 10)
    for number in range(25):  # one at a time: the capture server's usual batch
        store.insert([mail(f"m{number:02}", "a@x.org")])
    kept = [m.subject for m in list_captured(engine, oldest_first=True, limit=None)]
    assert kept[-1] == "m24"
    assert sum(m.size for m in list_captured(engine, limit=None)) <= one * 10 + one // 10
    assert len(kept) <= 11
    assert kept == [f"m{n:02}" for n in range(25 - len(kept), 25)]
