"""Event notifications benchmark: ``emit`` fanning out against ``send_many`` of the same mail.

Run from the repository root (by hand; it is not part of the tests)::

    .venv/bin/python bench/events.py [--rounds 600] [--max-seconds 90] [--text-only]

In one process, on a fresh SQLite home (``tempfile.mkdtemp``, removed at the end) with
``mail.transport = memory`` (nothing is delivered; every call commits to the outbox):

1. 101 users: ``actor`` and ``u0`` … ``u99``, each with an address;
2. for each fan-out N in 1, 10, 100, ``emit("comment.created")`` by ``actor`` on a new
   object owned by ``u0`` whose comment @mentions ``u1`` … ``u(N-1)``: N messages, checked;
   beside it ``send_many`` of N messages, one recipient each, with the subject and plain
   text, HTML and List-Unsubscribe headers of a message that emit composed: the same
   messages (``--text-only``: the subject and plain text alone, a lighter baseline);
3. warm-up rounds, then ``--rounds`` rounds (or until ``--max-seconds``), each one emit
   and one send_many call per N, the two alternating which goes first, so the machine's
   noise hits both; every call timed with ``perf_counter_ns``;
4. a table (per-call p50/p99, messages committed per second, emit/send_many ratios),
   ``bench/out/events.json``, ``bench/out/events.md`` and the chart ``docs/img/events.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH, ROOT, tools_venv, write_json
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from postroom import Postroom

FANOUTS = (1, 10, 100)
TARGET = 1.5  # emit may cost at most this many times send_many of the same messages
KINDS = ("emit", "send_many")


class Case:
    """One fan-out size: the emit payload and the send_many batch of the same mail."""

    def __init__(self, fanout: int) -> None:
        self.fanout = fanout
        self.mentions = " ".join(f"@u{i}" for i in range(1, fanout))
        self.batch: list[dict[str, Any]] = []
        self.times: dict[str, list[int]] = {kind: [] for kind in KINDS}

    def emit(self, pr: Postroom, object_id: int) -> list[int]:
        data = {
            "object": {
                "kind": "image",
                "id": object_id,
                "title": "Plate 7",
                "owner": "u0",
                "url": f"https://example.org/images/{object_id}",
            },
            "text": f"{self.mentions} Lovely plate, the colours came out well.".lstrip(),
        }
        ids = pr.emit("comment.created", actor="actor", data=data)
        assert len(ids) == self.fanout, f"emit queued {len(ids)}, not {self.fanout}"
        return ids

    def copy(self, database: Path, message_id: int, html: bool) -> None:
        """send_many's batch: an emitted message's subject, text, HTML and headers
        (with ``html`` false: the subject and text alone)."""
        with contextlib.closing(sqlite3.connect(database)) as db:
            (raw,) = db.execute("SELECT raw FROM messages WHERE id = ?", (message_id,)).fetchone()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        item = {"subject": str(parsed["Subject"])}
        for part in ("plain", "html") if html else ("plain",):
            body = parsed.get_body((part,))
            item["text" if part == "plain" else "html"] = body.get_content()
        if html:
            names = ("List-Unsubscribe", "List-Unsubscribe-Post")
            item["headers"] = {name: str(parsed[name]) for name in names}
            item["type"] = "comment"
            item["automatic"] = True
        self.batch = [{**item, "to": f"u{i}@example.org"} for i in range(self.fanout)]

    def send_many(self, pr: Postroom) -> None:
        ids = pr.send_many(self.batch)
        assert len(ids) == self.fanout


def percentile(sorted_ns: list[int], share: float) -> float:
    """Milliseconds at ``share`` (nearest rank) of sorted nanosecond timings."""
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * share))] / 1e6


def figures(case: Case) -> dict[str, Any]:
    found: dict[str, Any] = {"fanout": case.fanout, "calls": len(case.times["emit"])}
    for kind in KINDS:
        times = sorted(case.times[kind])
        found[kind] = {
            "p50_ms": percentile(times, 0.50),
            "p99_ms": percentile(times, 0.99),
            "messages_per_s": case.fanout * len(times) / (sum(times) / 1e9),
            "samples_ms": [t / 1e6 for t in case.times[kind]],
        }
    emit, many = found["emit"], found["send_many"]
    found["ratio_p50"] = emit["p50_ms"] / many["p50_ms"]
    found["ratio_time"] = many["messages_per_s"] / emit["messages_per_s"]  # total time
    found["ratio_rounds_median"] = statistics.median(
        e / s for e, s in zip(case.times["emit"], case.times["send_many"], strict=True)
    )
    found["met"] = max(found["ratio_p50"], found["ratio_time"]) <= TARGET
    return found


def facts() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_start": os.getloadavg(),
    }


def run(options: argparse.Namespace, home: Path, console: Console) -> dict[str, Any]:
    machine = facts()
    cases = [Case(n) for n in FANOUTS]
    object_id = 0
    with Postroom(home=home, settings={"mail.transport": "memory"}) as pr:
        pr.users.add("actor", full_name="Actor Person", email="actor@example.org")
        for i in range(max(FANOUTS)):
            pr.users.add(f"u{i}", full_name=f"User {i}", email=f"u{i}@example.org")
        for case in cases:
            object_id += 1
            case.copy(home / "postroom.db", case.emit(pr, object_id)[-1], options.with_html)
        for _ in range(options.warmup):
            for case in cases:
                object_id += 1
                case.emit(pr, object_id)
                case.send_many(pr)
        clock = time.perf_counter_ns
        deadline = time.monotonic() + options.max_seconds
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, refresh_per_second=4) as progress:
            task = progress.add_task("rounds (emit, send_many)", total=options.rounds, note="")
            for number in range(options.rounds):
                if time.monotonic() > deadline:
                    console.print(f"--max-seconds reached after {number} rounds")
                    break
                for case in cases:
                    object_id += 1
                    for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
                        began = clock()
                        if kind == "emit":
                            case.emit(pr, object_id)
                        else:
                            case.send_many(pr)
                        case.times[kind].append(clock() - began)
                last = cases[-1].times
                note = f"N=100 emit/send_many {sum(last['emit']) / sum(last['send_many']):.2f}×"
                progress.update(task, advance=1, note=note)
    with contextlib.closing(sqlite3.connect(home / "postroom.db")) as db:
        sizes = {
            kind: {"messages": count, "mean_bytes": round(size)}
            for kind, count, size in db.execute(
                "SELECT type, count(*), avg(size) FROM messages GROUP BY type"
            )
        }
    return {
        "machine": {**machine, "loadavg_at_end": os.getloadavg()},
        "command": " ".join(["bench/events.py", *sys.argv[1:]]),
        "warmup_rounds": options.warmup,
        "with_html": options.with_html,
        "target": TARGET,
        "stored": sizes,
        "cases": [figures(case) for case in cases],
    }


def rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    found = []
    for case in results["cases"]:
        emit, many = case["emit"], case["send_many"]
        found.append(
            (
                f"{case['fanout']}",
                f"{case['calls']}",
                f"{emit['p50_ms']:.2f} / {emit['p99_ms']:.2f}",
                f"{many['p50_ms']:.2f} / {many['p99_ms']:.2f}",
                f"{emit['messages_per_s']:,.0f}",
                f"{many['messages_per_s']:,.0f}",
                f"{case['ratio_p50']:.2f}×",
                f"{case['ratio_time']:.2f}×",
                "yes" if case["met"] else "no",
            )
        )
    return found


HEADERS = (
    "N",
    "calls",
    "emit p50 / p99 ms",
    "send_many p50 / p99 ms",
    "emit msg/s",
    "send_many msg/s",
    "emit/send_many p50",
    "emit/send_many time",
    "≤ 1.5×",
)


def report(results: dict[str, Any], console: Console, out: Path) -> None:
    table = Table(title="emit(comment.created) vs send_many, per call", title_justify="left")
    for name in HEADERS:
        table.add_column(name, justify="left" if name == "≤ 1.5×" else "right")
    for row in rows(results):
        table.add_row(*row[:-1], "[green]yes" if row[-1] == "yes" else "[red]no")
    console.print(table)
    sizes = ", ".join(f"{k}: {v['mean_bytes']:,} bytes" for k, v in results["stored"].items())
    console.print(
        f"mean stored message ({'with' if results['with_html'] else 'no'} HTML in "
        f"send_many): {sizes}"
    )
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---:|" * (len(HEADERS) - 1) + "---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += [
        "",
        "Median of the rounds' own emit/send_many ratios: "
        + ", ".join(f"N={c['fanout']} {c['ratio_rounds_median']:.2f}×" for c in results["cases"])
        + ".",
        f"Mean stored message: {sizes}.",
        f"Load average at start and end: "
        f"{results['machine']['loadavg_at_start'][0]:.2f}, "
        f"{results['machine']['loadavg_at_end'][0]:.2f}.",
    ]
    (out / "events.md").write_text("\n".join(lines) + "\n")
    write_json(out / "events.json", results)
    console.print(f"results: {out / 'events.json'}, {out / 'events.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=600, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=20, help="rounds run first, not counted")
    parser.add_argument("--max-seconds", type=float, default=90, help="stop measuring after")
    parser.add_argument(
        "--text-only",
        dest="with_html",
        action="store_false",
        help="send_many carries only subject and text (not the same messages: lighter)",
    )
    parser.add_argument("--skip-charts", action="store_true")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    options = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="postroom-bench-events-"))
    try:
        results = run(options, home, console)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(results, console, out)
    if not options.skip_charts:
        chart = ROOT / "docs" / "img" / "events.png"
        plot = BENCH / "_plot_events.py"
        python = tools_venv(console.print)
        subprocess.run([str(python), str(plot), str(out / "events.json"), str(chart)], check=True)
        console.print(f"chart: {chart.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
