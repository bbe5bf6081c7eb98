"""The delivery guarantee under faults, on SQLite and on PostgreSQL.

Each case runs real ``postroom worker`` processes on one HOME against a counting sink,
prints ``N enqueued, N delivered, L lost, D duplicated`` and holds postroom to: 0 lost
everywhere; 0 duplicated except after SIGKILL, where each kill may repeat at most the
message whose reply was not yet journaled on each of the killed worker's connections.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.faults.harness import (
    DATABASES,
    CountingSink,
    Run,
    TricklingProxy,
    fault_run,
    report,
)
from tests.support.pgcluster import private_cluster
from tests.support.waiting import wait_until

from postroom.store.engine import make_engine
from postroom.store.migrate import upgrade

COUNT = 5000
CONNECTIONS = 2  # per worker process


@pytest.mark.parametrize("db", DATABASES)
def test_three_workers_racing_deliver_each_message_once(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_run(tmp_path, db, CountingSink()) as run:
        run.enqueue(COUNT)
        for _ in range(3):
            run.start_worker("--concurrency", str(CONNECTIONS))
        run.wait_for_all()
        run.stop_workers()
        report(capsys, run.figure(f"3 workers racing, {db}"))
        assert run.counts() == (0, 0)


@pytest.mark.parametrize("db", DATABASES)
def test_sigkilled_workers_repeat_at_most_one_message_per_connection(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(12)
    # A lease well past a batch's half-lease deadline, short enough that messages a
    # killed worker had claimed but not sent come back within the case.
    with fault_run(tmp_path, db, CountingSink(delay=0.004), delivery__lease="8") as run:
        run.enqueue(COUNT)
        for _ in range(3):
            run.start_worker("--concurrency", str(CONNECTIONS))
        kills = 0
        while kills < 6 and run.delivered() < COUNT - 800:
            target = run.delivered() + 600
            wait_until(lambda: run.delivered() >= target, timeout=60, step=0.05)  # noqa: B023
            victim = rng.choice([w for w in run.workers if w.poll() is None])
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            kills += 1
            run.start_worker("--concurrency", str(CONNECTIONS))  # as systemd would
        run.wait_for_all()
        run.stop_workers()
        report(capsys, run.figure(f"{kills} SIGKILLs, {db}"))
        lost, duplicated = run.counts()
        assert kills >= 3
        assert lost == 0
        assert duplicated <= kills * CONNECTIONS


def _lock_sqlite_for(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holds the database file's write lock for ``seconds``."""
    script = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "db.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.mark.parametrize("db", DATABASES)
def test_a_ten_second_database_outage_mid_batch_loses_and_repeats_nothing(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = CountingSink(delay=0.004)
    if db == "sqlite":
        with fault_run(tmp_path, db, sink) as run:
            run.enqueue(COUNT)
            for _ in range(2):
                run.start_worker("--concurrency", str(CONNECTIONS))
            wait_until(lambda: run.delivered() >= 1000, timeout=60, step=0.05)
            holder = _lock_sqlite_for(run.home / "postroom.db", 10)
            holder.communicate(timeout=30)
            assert holder.returncode == 0
            _finish(run, capsys, "SQLite file locked by another process for 10 s")
        return
    with private_cluster() as cluster:
        engine = make_engine(cluster.url)
        upgrade(engine)
        engine.dispose()
        with fault_run(tmp_path, "sqlite", sink, database__url=cluster.url) as run:
            run.enqueue(COUNT)
            for _ in range(2):
                run.start_worker("--concurrency", str(CONNECTIONS))
            wait_until(lambda: run.delivered() >= 1000, timeout=60, step=0.05)
            cluster.stop("immediate")
            time.sleep(10)  # the outage itself
            cluster.start()
            _finish(run, capsys, "PostgreSQL stopped -m immediate for 10 s")


def _finish(run: Run, capsys: pytest.CaptureFixture[str], case: str) -> None:
    run.wait_for_all()
    run.stop_workers()
    report(capsys, run.figure(case))
    assert run.counts() == (0, 0)
    assert "database" in run.logs()  # the outage was seen, and said


@pytest.mark.parametrize("db", DATABASES)
def test_a_server_that_leaves_every_500_messages_costs_nothing(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_run(tmp_path, db, CountingSink(leave_after=500)) as run:
        run.enqueue(COUNT)
        run.start_worker("--concurrency", str(CONNECTIONS))
        run.wait_for_all()
        run.stop_workers()
        report(capsys, run.figure(f"421 after every 500 messages, {db}"))
        assert run.counts() == (0, 0)
        assert run.handler.refusals >= COUNT // 500 - 1


@pytest.mark.parametrize("db", DATABASES)
def test_a_trickling_server_is_given_up_on_time_and_nothing_is_lost(
    tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_run(tmp_path, db, CountingSink()) as run:
        proxy = TricklingProxy(run.sink, trickled=4)
        run.settings.update({**proxy.settings_flags(), "mail.timeout": "1s"})
        try:
            run.enqueue(500)
            started = time.monotonic()
            worker = run.start_worker("--concurrency", str(CONNECTIONS), "--once")
            run.wait_for_all(timeout=60)
            assert worker.wait(timeout=30) == 0
            took = time.monotonic() - started
        finally:
            proxy.close()
        report(capsys, run.figure(f"4 trickling connections, mail.timeout 1s, {db}"))
        assert run.counts() == (0, 0)
        assert "deferred 4," in run.logs()  # one message per trickled connection
        # Four greetings of one deadline (1 s) each over two connections, then the rest
        # at full speed: seconds, where a trickle used to hold a worker for minutes.
        assert took < 10


def test_a_worker_whose_clock_is_ten_minutes_off_takes_no_lease_early(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL only: workers of one SQLite file share one machine's clock."""
    faketime = shutil.which("faketime") or os.environ.get("POSTROOM_FAKETIME")
    if faketime is None:
        pytest.fail("no faketime: install Debian's package (apt-get install faketime)")
    with fault_run(tmp_path, "postgresql", CountingSink(delay=0.002)) as run:
        run.settings["delivery.lease"] = "30"
        run.enqueue(COUNT)
        run.start_worker("--concurrency", str(CONNECTIONS))
        run.start_worker("--concurrency", str(CONNECTIONS), prefix=(faketime, "-f", "+10m"))
        run.start_worker("--concurrency", str(CONNECTIONS), prefix=(faketime, "-f", "-10m"))
        run.wait_for_all()
        run.stop_workers()
        report(capsys, run.figure("one worker 10 min ahead, one 10 min behind, postgresql"))
        assert run.counts() == (0, 0)


def test_the_sqlite_lock_helper_really_locks(tmp_path: Path) -> None:
    """The outage above is real: while held, a writer is refused."""
    path = tmp_path / "x.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x)")
        db.commit()
    holder = _lock_sqlite_for(path, 2)
    with (
        contextlib.closing(sqlite3.connect(path, timeout=0.1)) as db,
        pytest.raises(sqlite3.OperationalError, match="locked"),
    ):
        db.execute("INSERT INTO t VALUES (1)")
    holder.communicate(timeout=10)
