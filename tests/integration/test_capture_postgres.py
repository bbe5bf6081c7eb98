"""The mail record on the machine's PostgreSQL: the SQLAlchemy path of the store."""

from __future__ import annotations

from sqlalchemy import Engine
from tests.support.pg import pg_engine  # noqa: F401 - fixture

from postroom.store.capture import CaptureStore, NewCapture
from postroom.store.capture_queries import count_captured, get_captured, list_captured


def test_insert_filter_prune_and_clear_on_postgresql(pg_engine: Engine) -> None:  # noqa: F811
    store = CaptureStore(pg_engine)
    items = [
        NewCapture("app@x.org", (f"user{i}@Example.org",), f"Subject: s{i}\r\n\r\nhi\r\n".encode())
        for i in range(7)
    ]
    ids = store.insert(items[:4], max_messages=5)
    ids += store.insert(items[4:], max_messages=5)
    assert ids == sorted(ids)
    assert count_captured(pg_engine) == 5
    assert [m.subject for m in list_captured(pg_engine, to="USER6@example.org")] == ["s6"]
    detail = get_captured(pg_engine, ids[-1])
    assert detail is not None
    assert detail.raw == items[-1].raw
    assert store.clear() == 5


def test_prune_by_bytes_on_postgresql(pg_engine: Engine) -> None:  # noqa: F811
    raw = b"Subject: s\r\n\r\n" + b"x" * 986  # 1,000 bytes
    store = CaptureStore(pg_engine, max_bytes=3_000)
    for _ in range(5):
        store.insert([NewCapture("app@x.org", ("a@x.org",), raw)])
    assert count_captured(pg_engine) == 3
