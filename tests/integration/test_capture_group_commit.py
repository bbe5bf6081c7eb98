"""Group commit of the capture server, on SQLite and on PostgreSQL.

Sessions whose messages arrive together share one transaction; each session answers
250 only once its message is committed; a commit that fails answers 451 to every
session in it and keeps none of their messages. The faults are real, nothing is
mocked: another connection holds the database's write lock, and a trigger makes the
database refuse an INSERT halfway through the statement (as a full disk would).
"""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from tests.support.pg import throwaway_database

from postroom.capture.writer import RecordWriter
from postroom.store.capture_queries import count_captured, get_captured, list_captured
from postroom.store.engine import is_sqlite, make_engine
from postroom.testing import CaptureServer

KEPT = re.compile(r"kept in the mail record as (\d+)")
POISON = "poison@example.org"
SQLITE_POISON = (
    "CREATE TRIGGER refuse_poison BEFORE INSERT ON captured "
    f"WHEN NEW.mail_from = '{POISON}' "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)
PG_POISON = (
    "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"IF NEW.mail_from = '{POISON}' THEN "
    "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; "
    "END IF; RETURN NEW; END $$; "
    "CREATE TRIGGER refuse_poison BEFORE INSERT ON captured "
    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
)
SQLITE_NO_DELETE = (
    "CREATE TRIGGER refuse_delete BEFORE DELETE ON captured "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)
PG_NO_DELETE = (
    "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'could not write block: No space left on device' USING ERRCODE = '53100'; "
    "END $$; "
    "CREATE TRIGGER refuse_delete BEFORE DELETE ON captured "
    "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        with throwaway_database() as on_postgresql:
            yield on_postgresql
    else:
        yield f"sqlite:///{tmp_path / 'record.db'}"


def start(url: str, **settings: str) -> CaptureServer:
    return CaptureServer(settings={"database.url": url, **settings}).start()


@pytest.fixture
def server(url: str) -> Iterator[CaptureServer]:
    started = start(url)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def record(url: str, server: CaptureServer) -> Iterator[Engine]:
    """A connection pool of the test's own on the server's database."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def writer_of(server: CaptureServer) -> RecordWriter:
    assert server._service is not None
    return server._service.writer


def body(tag: str) -> bytes:
    return (
        f"From: app@example.org\r\nTo: bob@example.org\r\nSubject: {tag}\r\n\r\n{tag}\r\n".encode()
    )


def deliver(client: smtplib.SMTP, tag: str, sender: str = "app@example.org") -> tuple[int, str]:
    """One message on an open session; the reply to its final dot."""
    client.ehlo_or_helo_if_needed()
    assert client.mail(sender)[0] == 250
    assert client.rcpt("bob@example.org")[0] == 250
    code, reply = client.data(body(tag))
    return code, reply.decode()


def deliver_alone(
    server: CaptureServer, tag: str, sender: str = "app@example.org"
) -> tuple[int, str]:
    """One message on a connection of its own."""
    with smtplib.SMTP(server.host, server.port, timeout=60) as client:
        return deliver(client, tag, sender)


def kept_id(reply: str) -> int:
    found = KEPT.search(reply)
    assert found, reply
    return int(found.group(1))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@contextmanager
def write_lock(record: Engine) -> Iterator[None]:
    """Hold the captured table's write lock from another connection: SQLite's
    BEGIN IMMEDIATE takes the database's, PostgreSQL's LOCK TABLE the table's."""
    with record.connect() as holder:
        transaction = holder.begin()
        if not is_sqlite(record):
            holder.execute(text("LOCK TABLE captured IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()


def run_ddl(record: Engine, sqlite: str, postgresql: str) -> None:
    with record.begin() as connection:
        connection.execute(text(sqlite if is_sqlite(record) else postgresql))


def test_each_of_many_concurrent_sessions_is_in_the_record_when_its_250_arrives(
    server: CaptureServer, record: Engine
) -> None:
    clients, messages = 16, 12

    def client(index: int) -> int:
        reused = smtplib.SMTP(server.host, server.port, timeout=60) if index % 2 else None
        try:
            for n in range(messages):
                tag = f"client {index} message {n}"
                if reused is not None:  # half the clients keep their connection
                    code, reply = deliver(reused, tag)
                else:  # the other half connect for each message
                    code, reply = deliver_alone(server, tag)
                assert code == 250, reply
                # Read at once: the message must be there the moment its 250 is.
                kept = get_captured(record, kept_id(reply))
                assert kept is not None, f"{tag}: 250 arrived before its commit"
                assert kept.raw == body(tag)
        finally:
            if reused is not None:
                reused.quit()
        return messages

    with ThreadPoolExecutor(clients) as pool:
        sent = sum(future.result() for future in [pool.submit(client, i) for i in range(clients)])

    writer = writer_of(server)
    assert sent == clients * messages == count_captured(record) == writer.written
    assert writer.waiting == 0


def test_no_session_hears_250_before_its_commit_and_sessions_that_wait_share_one(
    server: CaptureServer, record: Engine
) -> None:
    writer = writer_of(server)
    with ThreadPoolExecutor(5) as pool:
        with write_lock(record):
            replies = [pool.submit(deliver_alone, server, f"m{n}") for n in range(5)]
            wait_until(lambda: writer.waiting == 5, "all five messages are in")
            time.sleep(0.5)
            assert not any(reply.done() for reply in replies)  # no reply while it cannot commit
            assert count_captured(record) == 0
        answered = [reply.result(30) for reply in replies]

    assert [code for code, _reply in answered] == [250] * 5
    assert sorted(m.subject for m in list_captured(record)) == [f"m{n}" for n in range(5)]
    # The first message's commit waited for the lock; the four that came meanwhile
    # went into the next commit, together.
    assert writer.commits <= 2


def test_a_failing_commit_answers_451_to_every_session_in_it_and_keeps_none_of_them(
    server: CaptureServer, record: Engine
) -> None:
    run_ddl(record, SQLITE_POISON, PG_POISON)
    writer = writer_of(server)
    with ThreadPoolExecutor(5) as pool:
        with write_lock(record):
            first = pool.submit(deliver_alone, server, "first")
            # The writer has taken the first message and waits for the lock with it.
            wait_until(lambda: writer.waiting == 1 and writer.queued == 0, "the first is taken")
            time.sleep(0.2)
            group: list[Future[tuple[int, str]]] = []
            for tag, sender in [("b", None), ("c", None), ("poisoned", POISON), ("d", None)]:
                group.append(pool.submit(deliver_alone, server, tag, sender or "app@example.org"))
                wait_until(lambda: writer.waiting == 1 + len(group), f"{tag} is in")
        assert first.result(30)[0] == 250
        answered = [reply.result(30) for reply in group]

    assert [code for code, _reply in answered] == [451] * 4
    assert all("could not store the message" in reply for _code, reply in answered)
    # One transaction: the two rows written before the poisoned one are gone too.
    assert [m.subject for m in list_captured(record)] == ["first"]
    # The server goes on: the next message (on a fresh connection to the database) is kept.
    code, reply = deliver_alone(server, "after")
    assert code == 250
    assert get_captured(record, kept_id(reply)) is not None
    assert writer.waiting == 0


def test_a_failing_prune_never_turns_a_stored_message_into_a_451(url: str) -> None:
    server = start(url, **{"capture.max_messages": "3"})
    record = make_engine(url)
    try:
        run_ddl(record, SQLITE_NO_DELETE, PG_NO_DELETE)
        for n in range(5):
            code, reply = deliver_alone(server, f"n{n}")
            assert code == 250, reply
        assert count_captured(record) == 5  # nothing pruned, nothing lost
        run_ddl(record, "DROP TRIGGER refuse_delete", "DROP TRIGGER refuse_delete ON captured")
        assert deliver_alone(server, "n5")[0] == 250
        wait_until(lambda: count_captured(record) == 3, "the record is pruned to 3")
        assert [m.subject for m in list_captured(record, oldest_first=True)] == ["n3", "n4", "n5"]
    finally:
        server.stop()
        record.dispose()
