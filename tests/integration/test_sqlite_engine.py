"""The embedded SQLite engine: many connections opening a new file at once."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from postroom.store.engine import make_engine


def test_connections_opening_a_new_file_at_once_all_get_in(tmp_path: Path) -> None:
    # Switching a new file to WAL needs it to itself, and SQLite then says "database
    # is locked" at once instead of waiting: two workers starting on a fresh home hit
    # it about one start in fifteen before the engine retried.
    failures: list[BaseException] = []
    for trial in range(40):
        path = tmp_path / f"fresh-{trial}.db"
        barrier = threading.Barrier(8)

        def open_and_write(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            engine = make_engine(f"sqlite:///{path}")
            try:
                barrier.wait(timeout=30)
                with engine.begin() as connection:
                    connection.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
                    connection.execute(text("INSERT INTO t VALUES (1)"))
            except BaseException as exc:
                failures.append(exc)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=open_and_write) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, f"trial {trial}: {failures[0]}"
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 8
        engine.dispose()
