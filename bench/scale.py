"""Growing: delivery rate and duplicates with more workers, on PostgreSQL and SQLite,
with and without workers being killed.

Run from the repository root (by hand; it is not part of the tests)::

    .venv/bin/python bench/scale.py [--messages 10000] [--kill-every 1000] [--rounds 1]

For each set-up (PostgreSQL with 1, 2 and 4 worker processes; SQLite with 1 and 2;
every one of them once plain and once with one SIGKILL per ``--kill-every`` delivered
messages, the killed worker started again at once, as systemd would):

1. a fresh database (SQLite in a fresh HOME, or a throwaway database on the machine's
   PostgreSQL at 127.0.0.1:5432) and ``--messages`` queued with ``send_many``;
2. a fresh Postfix ``smtp-sink -c`` on a free loopback port (its ``mesg=`` counter is
   what the relay accepted, copies included);
3. the workers (``postroom worker --concurrency 2`` each, one shared HOME), timed from
   their start until the outbox says every message is sent;
4. rate = messages / that time; duplicates = what the sink accepted minus messages;
   the bound the guarantee gives = kills x 2 connections.

Results: a table, ``bench/out/scale.json`` and ``bench/out/scale.md``. Set-ups alternate
within each round so that the machine's noise falls on all of them.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    SINK,
    Processes,
    ensure_postfix_tools,
    free_port,
    machine,
    terminate_on_sigterm,
    wait_for_port,
    write_json,
)
from psycopg import sql
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from postroom import Postroom  # noqa: E402
from postroom.store.engine import make_engine  # noqa: E402
from postroom.store.schema import messages  # noqa: E402

CONNECTIONS = 2
SETUPS = [("postgresql", 1), ("postgresql", 2), ("postgresql", 4), ("sqlite", 1), ("sqlite", 2)]
COUNTER = re.compile(rb"mesg=(\d+)")
console = Console()


@contextmanager
def database(kind: str, home: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield {}
        return
    name = f"postroom_bench_{uuid.uuid4().hex[:10]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {"database.url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"}
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


def sent(engine: Any) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(messages).where(messages.c.status == "sent")
        return int(connection.execute(query).scalar_one())


def one_run(
    kind: str, workers: int, kill_every: int | None, total: int, work: Path, seed: int
) -> dict[str, Any]:
    home = work / f"{kind}-{workers}-{'kill' if kill_every else 'plain'}-{seed}"
    home.mkdir()
    rng = random.Random(seed)
    with Processes() as processes, database(kind, home) as db:
        port = free_port()
        sink_log = (home / "sink.log").open("wb")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        sink = processes.start(
            [SINK, "-c", "-4", *user, f"127.0.0.1:{port}", "1000"], stdout=sink_log
        )
        wait_for_port(port)
        settings = {
            "mail.enabled": "true",
            "mail.host": "127.0.0.1",
            "mail.port": str(port),
            "mail.security": "none",
            "delivery.poll_interval": "0.2",
            "delivery.lease": "10",  # a killed worker's claims come back within the run
            **db,
        }
        with Postroom(home, settings=settings) as postroom:
            for start in range(0, total, 1000):
                postroom.send_many(
                    {"to": f"u{n}@example.org", "subject": f"m{n}", "text": "t" * 300}
                    for n in range(start, min(total, start + 1000))
                )
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
        env["POSTROOM_HOME"] = str(home)
        env.update({"POSTROOM_" + k.upper().replace(".", "_"): v for k, v in settings.items()})
        command = [sys.executable, "-m", "postroom", "worker", "--concurrency", str(CONNECTIONS)]
        engine = make_engine(db.get("database.url") or f"sqlite:///{home / 'postroom.db'}")
        started = time.perf_counter()
        running = [
            processes.start(command, env=env, stderr=subprocess.DEVNULL) for _ in range(workers)
        ]
        kills, next_kill = 0, kill_every
        try:
            while (done := sent(engine)) < total:
                if next_kill is not None and kill_every is not None and done >= next_kill:
                    victim = rng.choice(running)
                    victim.kill()
                    victim.wait()
                    running.remove(victim)
                    running.append(processes.start(command, env=env, stderr=subprocess.DEVNULL))
                    kills += 1
                    next_kill += kill_every
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"{home.name}: {done} of {total} sent after 10 minutes")
                time.sleep(0.05)  # polling the outbox, not synchronising
            elapsed = time.perf_counter() - started
        finally:
            engine.dispose()
            for worker in running:
                processes.stop(worker, grace=30)
        processes.stop(sink)
        sink_log.close()
    accepted = [int(m) for m in COUNTER.findall((home / "sink.log").read_bytes())]
    received = max(accepted, default=0)
    shutil.rmtree(home, ignore_errors=True)
    return {
        "database": kind,
        "workers": workers,
        "kills": kills,
        "seconds": round(elapsed, 2),
        "rate": round(total / elapsed),
        "duplicated": received - total,
        "bound": kills * CONNECTIONS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--kill-every", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    terminate_on_sigterm()
    ensure_postfix_tools(console.print)
    work = Path(tempfile.mkdtemp(prefix="postroom-scale-"))
    results: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            for kill_every in (None, args.kill_every):
                for kind, workers in SETUPS:
                    row = one_run(kind, workers, kill_every, args.messages, work, round_)
                    row["round"] = round_ + 1
                    results.append(row)
                    console.print(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table("database", "workers", "SIGKILLs", "msg/s", "duplicated", "window (kills x 2)")
    lines = [
        "| database | workers | SIGKILLs | msg/s | duplicated | window (kills × 2) |",
        "|---|---|---|---|---|---|",
    ]
    for row in results:
        cells = [row["database"], str(row["workers"]), str(row["kills"]), f"{row['rate']:,}",
                 str(row["duplicated"]), str(row["bound"])]  # fmt: skip
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "scale.json", {"machine": machine(), "results": results})
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
