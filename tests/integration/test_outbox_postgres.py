"""The same outbox on the machine's PostgreSQL: migrations, SKIP LOCKED claims, delivery."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from tests.support.cli import run_postroom
from tests.support.pg import pg_url  # noqa: F401 - fixture
from tests.support.smtpd import Recorder, SMTPServer
from tests.support.waiting import wait_until

from postroom import ConfigError, Postroom
from postroom.delivery.worker import Worker
from postroom.store.engine import make_engine
from postroom.store.migrate import is_current, open_database, upgrade
from postroom.store.schema import metadata


def test_migrations_produce_the_same_schema_as_a_fresh_create(pg_url: str) -> None:  # noqa: F811
    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert diff == []


def _older_schema(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine, "0006")  # as an earlier release left it
    engine.dispose()


def test_an_older_schema_asks_for_db_upgrade(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    _older_schema(pg_url)
    with (
        Postroom(tmp_path, settings={"database.url": pg_url}) as postroom,
        pytest.raises(ConfigError, match="run `postroom db upgrade`"),
    ):
        postroom.send(to="a@example.org", subject="s", text="t")


def test_an_empty_database_is_initialised_once_by_the_first_of_many(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    done: list[bool] = []

    def first_use() -> None:
        engine = open_database(pg_url)
        done.append(is_current(engine))
        engine.dispose()

    starters = [threading.Thread(target=first_use) for _ in range(4)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(timeout=120)
    assert done == [True] * 4
    with Postroom(tmp_path, settings={"database.url": pg_url}) as postroom:
        assert postroom.send(to="a@example.org", subject="s", text="t") == 1


def test_concurrent_claims_never_share_a_message(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    with Postroom(tmp_path, settings={"database.url": pg_url}) as postroom:
        postroom.send_many(
            [{"to": f"u{i}@example.org", "subject": "s", "text": "t"} for i in range(400)]
        )
        claimed: dict[str, list[int]] = {}

        def claim(owner: str) -> None:
            got: list[int] = []
            while batch := postroom.outbox.claim(owner, limit=25, lease_seconds=60):
                got.extend(m.pk for m in batch)
            claimed[owner] = got

        threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    everything = [pk for pks in claimed.values() for pk in pks]
    assert len(everything) == 400
    assert len(set(everything)) == 400


def test_cli_delivers_through_postgresql(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    smtp_server: SMTPServer,
) -> None:
    flags = [f"--set=database.url={pg_url}", "--set=mail.enabled=true"]
    flags += [f"--set={k}={v}" for k, v in smtp_server.settings_flags().items()]
    assert run_postroom(tmp_path, *flags, "db", "upgrade").code == 0
    sent = run_postroom(
        tmp_path, *flags, "send", "--to", "ada@example.org", "--subject", "via pg", "--text", "x"
    )
    assert sent.code == 0, sent.stderr
    worker = run_postroom(tmp_path, *flags, "worker", "--once")
    assert worker.code == 0, worker.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ada@example.org"]]
    listing = run_postroom(tmp_path, *flags, "outbox", "list", "--json")
    assert '"status": "sent"' in listing.stdout
    assert "password" not in worker.stderr


def test_worker_survives_the_database_dropping_its_connections(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    smtp_server: SMTPServer,
) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    settings = {"database.url": pg_url, "mail.enabled": "true", **smtp_server.settings_flags()}
    settings["delivery.poll_interval"] = "0.1"
    with Postroom(tmp_path, settings=settings) as postroom:
        worker = Worker(postroom.config, postroom.outbox, concurrency=1)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            postroom.send(to="first@example.org", subject="before", text="t")
            wait_until(lambda: len(smtp_server.messages) == 1)
            database = pg_url.rpartition("/")[2]
            with engine.connect() as admin:
                admin.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :database AND pid <> pg_backend_pid()"
                    ),
                    {"database": database},
                )
            postroom.send(to="second@example.org", subject="after", text="t")
            wait_until(lambda: len(smtp_server.messages) == 2)
        finally:
            worker.stop()
            thread.join(timeout=30)
    engine.dispose()
    assert not thread.is_alive()
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["first@example.org"],
        ["second@example.org"],
    ]


@dataclass
class _BreaksTheOutbox(Recorder):
    """Takes each message, but first renames the outbox's attempts table away, so the
    worker cannot record the result; remembers each QUIT it hears."""

    pg_url: str = ""
    quits: int = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        engine = make_engine(self.pg_url)
        try:
            with engine.begin() as admin:
                admin.execute(text("ALTER TABLE attempts RENAME TO attempts_gone"))
        finally:
            engine.dispose()
        return await super().handle_DATA(server, session, envelope)

    async def handle_QUIT(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.quits += 1
        return "221 Bye"


def test_worker_closes_its_smtp_connection_when_results_cannot_be_recorded(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    make_smtp_server: Callable[..., SMTPServer],
) -> None:
    upgrade_engine = make_engine(pg_url)
    upgrade(upgrade_engine)
    upgrade_engine.dispose()
    handler = _BreaksTheOutbox(pg_url=pg_url)
    server = make_smtp_server(handler)
    settings = {"database.url": pg_url, "mail.enabled": "true", **server.settings_flags()}
    with Postroom(tmp_path, settings=settings) as postroom:
        postroom.send(to="first@example.org", subject="unrecorded", text="t")
        worker = Worker(postroom.config, postroom.outbox, concurrency=1)
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            wait_until(lambda: len(server.messages) == 1)
            # The connection is closed politely at once, not left to the garbage
            # collector; the message stays leased, to go again when the lease ends.
            wait_until(lambda: handler.quits == 1)
            wait_until(lambda: worker.stats.errors >= 1)  # counted after the QUIT
        finally:
            worker.stop()
            thread.join(timeout=30)
    assert not thread.is_alive()


def test_worker_processes_on_an_older_schema_stop_at_once(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    _older_schema(pg_url)
    run = run_postroom(
        tmp_path, "--set", f"database.url={pg_url}", "worker", "--once", "--processes", "3"
    )
    assert run.code == 2
    assert "run `postroom db upgrade`" in run.stderr
    assert "postroom worker " not in run.stderr  # no worker process was started
