"""``postroom db copy --to URL``: from the embedded SQLite to PostgreSQL, everything
arrives, the source is untouched, a second run resumes, and the copy works: a worker
on PostgreSQL delivers what was queued, and new ids do not collide."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cli import run_postroom
from tests.support.pg import throwaway_database
from tests.support.smtpd import SMTPServer

from postroom import Postroom
from postroom.delivery.worker import Worker
from postroom.store.copy import row_counts
from postroom.store.engine import make_engine
from postroom.store.migrate import open_database
from postroom.store.workers import WorkerRegistry


@pytest.fixture
def pg_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


def _fill(home: Path, count: int) -> None:
    with Postroom(home) as postroom:
        postroom.users.add_group("lab")
        postroom.users.add("ada", email="ada@example.org", full_name="Ada L", groups=["lab"])
        postroom.send_many(
            {"to": f"u{n}@example.org", "subject": f"m{n}", "text": "hi"} for n in range(count)
        )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_copy_to_postgresql_moves_everything_and_the_copy_delivers(
    tmp_path: Path, pg_url: str, smtp_server: SMTPServer
) -> None:
    home = tmp_path / "home"
    _fill(home, 2500)  # more than one chunk
    database = home / "postroom.db"
    before = _digest(database)

    done = run_postroom(home, "db", "copy", "--to", pg_url)

    assert done.code == 0, done.output
    assert "every table's count matches the source" in done.stdout
    assert "next: postroom config set database.url" in done.stdout
    assert _digest(database) == before  # the source is only read
    source, target = make_engine(f"sqlite:///{database}"), open_database(pg_url)
    try:
        counts = row_counts(source)
        assert counts == row_counts(target)
        assert counts["messages"] == 2500
        assert counts["users"] >= 2  # root and ada
    finally:
        source.dispose()
        target.dispose()

    settings = {"database.url": pg_url, "mail.enabled": "true", **smtp_server.settings_flags()}
    with Postroom(tmp_path / "on-pg", settings=settings) as moved:
        assert moved.users.get("ada").email == "ada@example.org"
        new = moved.send(to="late@example.org", subject="after the move", text="t")
        assert new > 2500  # the id sequences moved past the copied ids
        stats = Worker(moved.config, moved.outbox, concurrency=2).run(once=True)
    assert stats.sent == 2501
    assert len(smtp_server.messages) == 2501


def test_a_second_copy_resumes_with_what_is_new(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    _fill(home, 10)
    assert run_postroom(home, "db", "copy", "--to", pg_url).code == 0
    with Postroom(home) as postroom:  # more arrives before the switch-over
        postroom.send(to="one-more@example.org", subject="s", text="t")
    again = run_postroom(home, "db", "copy", "--to", pg_url)
    assert again.code == 0, again.output
    target = open_database(pg_url)
    try:
        assert row_counts(target)["messages"] == 11
    finally:
        target.dispose()


@pytest.mark.parametrize(
    ("to", "said"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://x@h/db", "PostgreSQL or SQLite"),
    ],
)
def test_a_bad_target_is_one_line_naming_the_fix(tmp_path: Path, to: str, said: str) -> None:
    done = run_postroom(tmp_path / "home", "db", "copy", "--to", to)
    assert done.code == 2
    assert said in done.stderr
    assert "Traceback" not in done.output
    assert len(done.stderr.strip().splitlines()) == 1


def test_copying_into_itself_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _fill(home, 1)
    done = run_postroom(home, "db", "copy", "--to", f"sqlite:///{home / 'postroom.db'}")
    assert done.code == 2
    assert "already uses" in done.stderr


def test_an_unreachable_target_says_so_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _fill(home, 1)
    before = _digest(home / "postroom.db")
    done = run_postroom(
        home, "db", "copy", "--to", "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:9/none"
    )
    assert done.code == 1
    assert "Traceback" not in done.output
    assert "s3cret-pw" not in done.output
    assert _digest(home / "postroom.db") == before


def test_a_running_worker_stops_the_copy(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "home"
    _fill(home, 1)
    with Postroom(home) as postroom:
        WorkerRegistry(postroom.engine).started("vm:1:abc", 1)
    done = run_postroom(home, "db", "copy", "--to", pg_url)
    assert done.code == 1
    assert "stop `postroom worker`" in done.stderr
