"""Enqueue benchmark: ``send_many`` as the outbox grows, beside raw SQLite, and ``send`` latency.

Run from the repository root (by hand; it is not part of the tests)::

    .venv/bin/python bench/enqueue.py [--rows 1000000] [--batch 1000] [--size 2048]

In one process, on fresh SQLite files (``tempfile.mkdtemp``, removed at the end), both
committed as postroom commits (WAL, ``synchronous=FULL``, postroom's page size):

1. **Growth.** Batches of ``--batch`` messages of about ``--size`` bytes (plain text in
   72-character lines, one recipient each) through ``Postroom.send_many`` into an outbox
   growing from empty to ``--rows``. Beside each batch, alternating which goes first, the
   floor: a batch like it (other addresses, which send_many's composing never finds
   already parsed) composed by ``Postroom.prepare`` (timed apart: what composing
   costs) and its rows written by ``sqlite3`` alone, one ``executemany`` per table in one
   ``BEGIN IMMEDIATE`` transaction, into a second file made by postroom's migrations
   (the same tables, indexes and settings). Rates per slice of ``--slice`` rows.
2. **Single.** ``--runs`` runs of ``--single`` calls of ``Postroom.send`` into the grown
   outbox, each call timed with ``perf_counter_ns``, each beside a one-row commit by
   ``sqlite3`` into the floor's file (what one fsync'd commit costs here).
3. A table, ``bench/out/enqueue.json``, and ``bench/out/enqueue.png`` (msg/s against
   outbox rows) drawn by ``bench/_plot_enqueue.py`` in the tools virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from _common import BENCH, machine, terminate_on_sigterm, tools_venv, write_json
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from postroom import Postroom
from postroom.store.engine import SQLITE_BUSY_TIMEOUT_MS
from postroom.store.migrate import open_database
from postroom.store.records import NewMessage
from postroom.store.schema import messages, recipients

TARGETS = {"send_many_rate": 20_000.0, "flat": 0.10, "single_p99_ms": 2.0}
SETTINGS = {"mail.transport": "memory"}
FLOOR = 1_000_000_000  # message indexes of the floor's copies, apart from send_many's
TEXT = (
    "the outbox keeps every message it accepts until the server has taken it and each "
    "recipient has its own state so a refusal by one server never holds back the rest"
)
_MESSAGE_COLUMNS = tuple(c.name for c in messages.c if not c.primary_key)
_RECIPIENT_COLUMNS = tuple(c.name for c in recipients.c if not c.primary_key)


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# -- messages ------------------------------------------------------------------------


def body_text(length: int) -> str:
    """Plain text of about ``length`` characters in lines of at most 72 (7bit)."""
    words = TEXT.split()
    lines, line, total, index = [], "", 0, 0
    while total < length:
        word = words[index % len(words)]
        index += 1
        if len(line) + 1 + len(word) > 72:
            lines.append(line)
            total += len(line) + 1
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines)


class Messages:
    """Items for ``send``/``send_many`` whose composed size is about ``size`` bytes."""

    def __init__(self, postroom: Postroom, size: int) -> None:
        overhead = len(postroom.prepare(self._item(0, "")).raw)
        self.body = body_text(max(0, size - overhead - 8))
        self.bytes = len(postroom.prepare(self.item(0)).raw)

    @staticmethod
    def _item(index: int, body: str) -> dict[str, Any]:
        return {
            "to": f"user{index}@example.com",
            "subject": f"Enqueue benchmark {index}",
            "text": f"Message {index}.\n{body}\n",
        }

    def item(self, index: int) -> dict[str, Any]:
        return self._item(index, self.body)

    def batch(self, first: int, count: int) -> list[dict[str, Any]]:
        return [self.item(index) for index in range(first, first + count)]


# -- the floor: sqlite3 alone --------------------------------------------------------


class Floor:
    """A file with postroom's schema and settings, written by ``sqlite3`` alone."""

    def __init__(self, path: Path) -> None:
        open_database(f"sqlite:///{path}").dispose()  # same tables, indexes, page size
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in (
            f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
        ):
            self.db.execute(f"PRAGMA {pragma}")
        self.page_size = self.db.execute("PRAGMA page_size").fetchone()[0]
        self.insert_message = _insert_sql("messages", _MESSAGE_COLUMNS)
        self.insert_recipient = _insert_sql("recipients", _RECIPIENT_COLUMNS)

    @staticmethod
    def rows(items: Sequence[NewMessage], now: float) -> list[tuple[Any, ...]]:
        """Message rows in _MESSAGE_COLUMNS order (built before the clock starts)."""
        values = {
            "status": "queued",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
            "queued_at": now,
            "next_attempt_at": now,
        }
        return [
            tuple(
                values[name] if name in values else _field(item, name) for name in _MESSAGE_COLUMNS
            )
            for item in items
        ]

    def write(self, rows: list[tuple[Any, ...]], items: Sequence[NewMessage], now: float) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()[0]
        db.executemany(self.insert_message, rows)
        db.executemany(
            self.insert_recipient,
            [
                (first + offset, r.address, r.kind, "queued", None, None, 0, now)
                for offset, item in enumerate(items)
                for r in item.recipients
            ],
        )
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def _field(item: NewMessage, name: str) -> Any:
    if name == "size":
        return len(item.raw)
    return getattr(item, name, None)


# -- measuring -----------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def latency(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    return {
        "median_ms": statistics.median(ordered) / 1e6,
        "p90_ms": percentile(ordered, 0.90) / 1e6,
        "p99_ms": percentile(ordered, 0.99) / 1e6,
        "max_ms": ordered[-1] / 1e6,
    }


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, console: Console) -> None:
        self.args = args
        self.work = work
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
        )

    def task(self, description: str, total: int) -> TaskID:
        return self.progress.add_task(description, total=total, note="")

    def note(self, task: TaskID, note: str) -> None:
        self.progress.update(task, note=note)
        if not self.console.is_terminal:  # a log file gets one line per step instead
            self.progress.console.print(f"{self.progress.tasks[task].description}: {note}")

    def run(self) -> dict[str, Any]:
        args = self.args
        results: dict[str, Any] = {
            "machine": machine(),
            "command": " ".join(["bench/enqueue.py", *sys.argv[1:]]),
            "targets": TARGETS,
        }
        with (
            Postroom(self.work / "postroom", settings=SETTINGS) as postroom,
            contextlib.closing(Floor(self.work / "floor.db")) as floor,
            self.progress,
        ):
            made = Messages(postroom, args.size)
            results.update(message_bytes=made.bytes, batch=args.batch, page_size=floor.page_size)
            results["slices"] = self.grow(postroom, floor, made)
            results["single"] = [
                self.single(postroom, floor, made, number) for number in range(args.runs)
            ]
        results["machine"]["loadavg_at_end"] = os.getloadavg()
        return results

    def grow(self, postroom: Postroom, floor: Floor, made: Messages) -> list[dict[str, Any]]:
        args = self.args
        task = self.task(f"send_many of {args.batch:,} to {args.rows:,}", args.rows)
        clock = time.perf_counter
        slices: list[dict[str, Any]] = []
        current: dict[str, list[float]] = {"send_many": [], "floor": [], "prepare": []}
        done = 0
        while done < args.rows:
            count = min(args.batch, args.rows - done)
            items = made.batch(done, count)
            # The floor's copy has addresses of its own: composing the same ones again
            # would find them parsed already, and send_many would look cheaper.
            copy = made.batch(FLOOR + done, count)
            started = clock()
            prepared = [postroom.prepare(item, index=i) for i, item in enumerate(copy)]
            current["prepare"].append(clock() - started)
            now = time.time()
            rows = floor.rows(prepared, now)
            sides = ("send_many", "floor") if (done // args.batch) % 2 else ("floor", "send_many")
            for side in sides:
                started = clock()
                if side == "send_many":
                    stored = len(postroom.send_many(items))
                else:
                    floor.write(rows, prepared, now)
                current[side].append(clock() - started)
            assert stored == count
            done += count
            self.progress.update(task, completed=done)
            if done % args.slice == 0 or done == args.rows:
                figures = self.slice_figures(current, done - sum(s["rows"] for s in slices))
                figures["outbox_rows"] = done
                slices.append(figures)
                self.note(
                    task,
                    f"at {done:,}: send_many {figures['send_many_rate']:,.0f} msg/s, "
                    f"floor {figures['floor_rate']:,.0f}",
                )
                current = {key: [] for key in current}
        return slices

    @staticmethod
    def slice_figures(times: dict[str, list[float]], rows: int) -> dict[str, Any]:
        many, floor, prepare = (sum(times[k]) for k in ("send_many", "floor", "prepare"))
        batches = sorted(times["send_many"])
        return {
            "rows": rows,
            "send_many_rate": rows / many,
            "floor_rate": rows / floor,
            "vs_floor": floor / many,
            "compose_us": prepare / rows * 1e6,
            "store_us": max(0.0, many - prepare) / rows * 1e6,
            "floor_us": floor / rows * 1e6,
            "batch_p50_ms": statistics.median(batches) * 1e3,
            "batch_p90_ms": percentile(batches, 0.90) * 1e3,
            "batch_max_ms": batches[-1] * 1e3,
        }

    def single(
        self, postroom: Postroom, floor: Floor, made: Messages, number: int
    ) -> dict[str, Any]:
        calls = self.args.single
        task = self.task(f"send, run {number + 1} of {self.args.runs}", calls)
        clock = time.perf_counter_ns
        send = postroom.send
        times: dict[str, list[int]] = {"send": [], "floor": []}
        first = 10_000_000 * (number + 1)  # indexes apart from the growth's
        for index in range(first, first + calls):
            item = made.item(index)
            prepared = postroom.prepare(made.item(FLOOR + index))
            now = time.time()
            rows = floor.rows([prepared], now)
            for side in ("send", "floor") if index % 2 == 0 else ("floor", "send"):
                began = clock()
                if side == "send":
                    send(**item)
                else:
                    floor.write(rows, [prepared], now)
                times[side].append(clock() - began)
            if index % 250 == 249:
                self.progress.advance(task, 250)
        with postroom.engine.connect() as connection:
            outbox = connection.exec_driver_sql("SELECT max(id) FROM messages").scalar()
        found = {"calls": calls, "outbox_rows": outbox}
        found.update({side: latency(ns) for side, ns in times.items()})
        self.progress.update(task, completed=calls)
        s = found["send"]
        self.note(task, f"median {s['median_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms")
        return found


# -- reporting -----------------------------------------------------------------------


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    slices = results["slices"]
    rates = [s["send_many_rate"] for s in slices]
    ratios = [s["vs_floor"] for s in slices]

    def spread(values: list[float]) -> float:
        middle = statistics.median(values)
        return max(abs(v / middle - 1) for v in values)

    worst_p99 = max(run["send"]["p99_ms"] for run in results["single"])
    flat = TARGETS["flat"]
    return [
        (
            "send_many, slowest slice",
            f"{min(rates):,.0f} msg/s",
            f"≥ {TARGETS['send_many_rate']:,.0f} msg/s",
            min(rates) >= TARGETS["send_many_rate"],
        ),
        (
            "send_many flat, every slice vs their median",
            f"±{spread(rates):.0%}",
            f"±{flat:.0%}",
            spread(rates) <= flat,
        ),
        (
            "send_many/floor flat (machine noise cancelled)",
            f"±{spread(ratios):.0%}",
            f"±{flat:.0%}",
            spread(ratios) <= flat,
        ),
        (
            "send p99, worst run",
            f"{worst_p99:.2f} ms",
            f"≤ {TARGETS['single_p99_ms']} ms",
            worst_p99 <= TARGETS["single_p99_ms"],
        ),
    ]


def report(results: dict[str, Any], console: Console) -> None:
    growth = Table(
        title=(
            f"send_many of {results['batch']:,} × {results['message_bytes']:,}-byte messages "
            f"as the outbox grows (page size {results['page_size']:,})"
        ),
        title_justify="left",
    )
    for name in (
        "outbox rows",
        "send_many msg/s",
        "floor msg/s",
        "send_many/floor",
        "compose µs/msg",
        "store µs/msg",
        "floor µs/msg",
        "batch p50 / p90 / max ms",
    ):
        growth.add_column(name, justify="right")
    start = 0
    for s in results["slices"]:
        growth.add_row(
            f"{start:,}–{s['outbox_rows']:,}",
            f"{s['send_many_rate']:,.0f}",
            f"{s['floor_rate']:,.0f}",
            f"{s['vs_floor']:.2f}",
            f"{s['compose_us']:.1f}",
            f"{s['store_us']:.1f}",
            f"{s['floor_us']:.1f}",
            f"{s['batch_p50_ms']:.0f} / {s['batch_p90_ms']:.0f} / {s['batch_max_ms']:.0f}",
        )
        start = s["outbox_rows"]
    single = Table(title="send, one message a call (ms)", title_justify="left")
    for name in ("run", "outbox rows", "calls", "send median / p90 / p99 / max"):
        single.add_column(name, justify="right")
    single.add_column("floor (sqlite3 one-row commit) median / p90 / p99 / max", justify="right")
    for number, run in enumerate(results["single"], 1):
        cells = [
            " / ".join(f"{run[side][k]:.2f}" for k in ("median_ms", "p90_ms", "p99_ms", "max_ms"))
            for side in ("send", "floor")
        ]
        single.add_row(str(number), f"{run['outbox_rows']:,}", f"{run['calls']:,}", *cells)
    targets = Table(title="Targets", title_justify="left")
    for name in ("target", "measured", "goal", "met"):
        targets.add_column(name)
    found = verdicts(results)
    for name, measured, goal, met in found:
        targets.add_row(name, measured, goal, "[green]yes" if met else "[red]no")
    results["verdicts"] = found
    console.print(growth)
    console.print(
        "compose: Postroom.prepare of a like batch, timed apart; store: send_many's time "
        "less that; floor: sqlite3 executemany of the same rows into the same schema."
    )
    console.print(single)
    console.print(targets)
    m = results["machine"]
    console.print(
        f"{m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, SQLite {m['sqlite']}, "
        f"postroom {m['postroom_commit']}; load average {m['loadavg_at_start'][0]:.2f} at "
        f"the start, {m['loadavg_at_end'][0]:.2f} at the end"
    )


def chart(out: Path, console: Console) -> None:
    python = tools_venv(console.print)
    image = out / "enqueue.png"
    subprocess.run(
        [str(python), str(BENCH / "_plot_enqueue.py"), str(out / "enqueue.json"), str(image)],
        check=True,
    )
    console.print(f"chart: {image}")


# -- command line --------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="outbox grown to this")
    parser.add_argument("--batch", type=int, default=1000, help="messages per send_many")
    parser.add_argument("--size", type=int, default=2048, help="bytes per composed message")
    parser.add_argument("--slice", type=int, default=100_000, help="rows per reported slice")
    parser.add_argument("--single", type=int, default=5000, help="send calls per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of --single calls")
    parser.add_argument("--skip-charts", action="store_true", help="no PNG")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args(argv)
    if args.slice % args.batch:
        parser.error("--slice must be a multiple of --batch")
    return args


@contextlib.contextmanager
def work_folder(keep: bool, console: Console) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="postroom-bench-enqueue-"))
    try:
        yield folder
    finally:
        if keep:
            console.print(f"work folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_sigterm()
    console = Console(width=None if sys.stdout.isatty() else 140)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with work_folder(args.keep, console) as work:
            results = Bench(args, work, console).run()
    except KeyboardInterrupt:
        console.print("[red]interrupted: work folder removed")
        return 130
    report(results, console)
    write_json(out / "enqueue.json", results)
    console.print(f"results: {out / 'enqueue.json'}")
    if not args.skip_charts:
        chart(out, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
