"""Delivery benchmark: postroom's outbox and worker against smtp-source and django-post-office.

Run from the repository root::

    .venv/bin/python bench/delivery.py [--messages N] [--big N] [--skip-django]
                                       [--skip-callgrind] [--out bench/out]

Everything goes to one Postfix ``smtp-sink`` on 127.0.0.1 started for the run. Steps:

1. enqueue N messages one at a time (``Postroom.send``, each call timed), then N in
   batches of 1,000 (``Postroom.send_many``);
2. for each set-up (one process with 1, 2 or 4 connections; two processes with 1 or 2
   each): ``smtp-source -s 4 -d -m N`` (the C client: the machine's limit), then
   ``python -m postroom worker --once [--processes P] --concurrency C`` on a copy of the
   queue, timed from process start to exit while a thread counts sent messages in the
   SQLite file (read-only, every 100 ms) and samples the RSS of the worker processes;
3. django-post-office in a throwaway virtualenv: ``mail.send`` / ``mail.send_many``, then
   ``send_queued_mail`` to the same sink, timed and sampled the same way;
4. CPU instructions per delivered message under ``valgrind --tool=callgrind``;
5. a worker draining ``--big`` queued messages, its RSS sampled over time;
6. a table with the ratios, ``results.json`` and ``summary.md`` in ``--out``, and the
   charts ``docs/img/delivery.png`` and ``docs/img/worker-memory.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    ROOT,
    SOURCE,
    Pinning,
    Processes,
    Sample,
    Sampler,
    callgrind_total,
    ensure_postfix_tools,
    ensure_valgrind,
    machine,
    start_sink,
    steady_rate,
    terminate_on_sigterm,
    tools_venv,
    write_json,
)
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from postroom import Postroom

PYTHON = sys.executable
BATCH = 1000
BATCHED_RUNS = 3
#: (worker processes, connections per process) of each delivery run.
SETUPS = ((1, 1), (1, 2), (1, 4), (2, 1), (2, 2))
SENT_SQL = "SELECT count(*) FROM messages WHERE status = 'sent'"
DJANGO_SENT_SQL = "SELECT count(*) FROM post_office_email WHERE status = 0"

TARGETS = {
    "delivery_vs_smtp_source": 0.25,
    "delivery_vs_smtp_source_stretch": 0.5,
    "delivery_vs_django": 10.0,
    "single_median_ms": 0.5,
    "single_p99_ms": 2.0,
    "batched_rate": 20_000.0,
    "memory_growth": 0.10,  # RSS growth from 10 % drained to the end, as a fraction
}


def setup_label(processes: int, concurrency: int) -> str:
    """The worker flags of a set-up, as in the tables and the chart."""
    flags = f"--concurrency {concurrency}"
    return f"--processes {processes} {flags}" if processes > 1 else flags


#: Lines that pad a message's text to ``--size`` bytes.
FILLER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n"
#: What smtp-source adds to its ``-l`` payload (its own From, To, Date and so on).
SOURCE_HEADERS = 150


def message(index: int, padding: int = 0) -> dict[str, Any]:
    """A small plain-text message (django-post-office's side sends the same), its text
    longer by ``padding`` characters for ``--size``."""
    text = f"Hello,\n\nthis is message {index} of the postroom delivery benchmark.\n"
    if padding > 0:
        text += (FILLER * (padding // len(FILLER) + 1))[:padding]
    return {
        "to": f"user{index}@example.com",
        "subject": f"Delivery benchmark {index}",
        "text": text,
    }


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, out: Path) -> None:
        self.args = args
        self.work = work
        self.out = out
        # A log file gets wide tables; a terminal its own width.
        self.console = Console(width=None if sys.stdout.isatty() else 140)
        self.processes = Processes()
        self.port = 0
        self.pinning = Pinning.choose(not args.no_pin)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<46}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        self.results: dict[str, Any] = {
            "messages": args.messages,
            "size": args.size,
            "targets": TARGETS,
        }
        self.padding = 0  # characters added to each message's text for --size

    # -- helpers -----------------------------------------------------------------------

    def log(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def task(self, description: str, total: int | None) -> TaskID:
        return self.progress.add_task(description, total=total, note="")

    def done(self, task: TaskID, note: str) -> None:
        total = self.progress.tasks[task].total
        self.progress.update(task, completed=total or 1, total=total or 1, note=note)
        if not self.console.is_terminal:  # no live bars in a log file: one line per step
            self.log(f"{self.progress.tasks[task].description}: {note}")

    def home(self, name: str) -> Path:
        return self.work / name

    def size_messages(self) -> None:
        """With ``--size``: the padding that makes a composed message that long."""
        if not self.args.size:
            return
        with Postroom(self.home("sizing")) as postroom:
            for _ in range(3):  # line ends grow by a CR each: correct twice
                raw = postroom.prepare(message(0, self.padding)).raw
                self.padding = max(0, self.padding + self.args.size - len(raw))
        shutil.rmtree(self.home("sizing"), ignore_errors=True)

    def source_length(self) -> list[str]:
        """smtp-source's flags for a message of about ``--size`` bytes."""
        return ["-l", str(max(0, self.args.size - SOURCE_HEADERS))] if self.args.size else []

    def worker_env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
        env.update(
            POSTROOM_HOME=str(home),
            POSTROOM_MAIL_ENABLED="true",
            POSTROOM_MAIL_HOST="127.0.0.1",
            POSTROOM_MAIL_PORT=str(self.port),
            POSTROOM_MAIL_TRANSPORT="smtp",
        )
        return env

    @staticmethod
    def copy_queue(source: Path, target: Path) -> None:
        """A copy of a home's outbox (SQLite backup API: consistent, WAL kept)."""
        target.mkdir(mode=0o700, parents=True)
        with (
            contextlib.closing(sqlite3.connect(source / "postroom.db")) as src,
            contextlib.closing(sqlite3.connect(target / "postroom.db")) as dst,
        ):
            src.backup(dst)

    def enqueue_batched(self, home: Path, total: int, description: str) -> float:
        task = self.task(description, total)
        with Postroom(home) as postroom:
            _ = postroom.outbox  # schema created outside the timing
            started = time.perf_counter()
            for first in range(0, total, BATCH):
                count = min(BATCH, total - first)
                postroom.send_many([message(i, self.padding) for i in range(first, first + count)])
                self.progress.advance(task, count)
            seconds = time.perf_counter() - started
        self.done(task, f"{total / seconds:,.0f} msg/s")
        return seconds

    # -- 1. enqueue --------------------------------------------------------------------

    def enqueue(self) -> None:
        total = self.args.messages
        task = self.task("enqueue one at a time (Postroom.send)", total)
        latencies: list[int] = []
        with Postroom(self.home("single")) as postroom:
            _ = postroom.outbox
            send = postroom.send
            clock = time.perf_counter_ns
            started = time.perf_counter()
            for index in range(total):
                item = message(index, self.padding)
                began = clock()
                send(**item)
                latencies.append(clock() - began)
                if index % 250 == 249:
                    self.progress.advance(task, 250)
            seconds = time.perf_counter() - started
        latencies.sort()
        single = {
            "count": total,
            "seconds": seconds,
            "rate": total / seconds,
            "median_ms": statistics.median(latencies) / 1e6,
            "p90_ms": latencies[int(total * 0.90)] / 1e6,
            "p99_ms": latencies[int(total * 0.99)] / 1e6,
            "max_ms": latencies[-1] / 1e6,
        }
        self.done(task, f"median {single['median_ms']:.2f} ms, p99 {single['p99_ms']:.2f} ms")
        # Three batched runs into fresh outboxes (one sample moves by a third on this
        # machine); the first outbox is the queue the delivery runs copy.
        runs = []
        for attempt in range(BATCHED_RUNS):
            home = self.home("batched" if attempt == 0 else f"batched-{attempt}")
            runs.append(
                self.enqueue_batched(home, total, f"enqueue in batches of {BATCH:,} (send_many)")
            )
            if attempt:
                shutil.rmtree(home)
        with contextlib.closing(sqlite3.connect(self.home("batched") / "postroom.db")) as db:
            size = db.execute("SELECT avg(size) FROM messages").fetchone()[0]
        seconds = min(runs)
        self.results["enqueue"] = {
            "single": single,
            "batched": {
                "count": total,
                "batch": BATCH,
                "seconds": seconds,
                "rate": total / seconds,
                "rates": [total / s for s in runs],
            },
            "message_bytes": round(size),
        }

    # -- 2. delivery -------------------------------------------------------------------

    def smtp_source(self, total: int) -> dict[str, float]:
        command = [SOURCE, "-s", "4", "-d", "-m", str(total), *self.source_length()]
        command.append(f"127.0.0.1:{self.port}")
        command = [*self.pinning.source_prefix(), *command]
        code, seconds = self.processes.run(
            command, timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {code}")
        return {"seconds": seconds, "rate": total / seconds}

    def sampled_run(
        self,
        command: list[str],
        *,
        db: Path,
        count_sql: str,
        total: int,
        env: dict[str, str],
        log_name: str,
        description: str,
        interval: float = 0.1,
        cwd: Path | None = None,
        timeout: float = 900,
    ) -> dict[str, Any]:
        """Run ``command`` to its end, counting sent messages in ``db`` meanwhile."""
        task = self.task(description, total)
        log_path = self.out / "logs" / log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)

        def show(sample: Sample) -> None:
            self.progress.update(task, completed=sample.delivered)

        with open(log_path, "wb") as log:
            started = time.perf_counter()
            proc = self.processes.start(
                command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )
            sampler = Sampler(db, count_sql, proc.pid, started, interval, show)
            with sampler:
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.processes.stop(proc)
                    raise
                seconds = time.perf_counter() - started
        delivered = sampler.count() or 0
        if code != 0 or delivered < total:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(
                f"{description}: exit {code}, {delivered} of {total} sent; {log_path}:\n{tail}"
            )
        rss = [s.rss_kib for s in sampler.samples if s.rss_kib]
        rate = total / seconds
        self.done(task, f"{rate:,.0f} msg/s")
        return {
            "seconds": seconds,
            "delivered": delivered,
            "rate": rate,
            "steady_rate": steady_rate(sampler.samples, total),
            "peak_rss_kib": max(rss, default=None),
            "samples": [vars(s) for s in sampler.samples],
        }

    def worker_command(self, processes: int, concurrency: int) -> list[str]:
        command = [PYTHON, "-m", "postroom", "worker", "--once", "--concurrency", str(concurrency)]
        return command + (["--processes", str(processes)] if processes > 1 else [])

    def deliver(self) -> None:
        total = self.args.messages
        sources: list[dict[str, float]] = []
        runs: list[dict[str, Any]] = []
        for round_number in range(1, self.args.rounds + 1):
            for processes, concurrency in SETUPS:
                setup = setup_label(processes, concurrency)
                task = self.task(f"smtp-source -s 4 -d -m {total}", None)
                source = self.smtp_source(total)
                sources.append(source)
                self.done(task, f"{source['rate']:,.0f} msg/s")
                home = self.home(f"deliver-{round_number}-p{processes}-c{concurrency}")
                self.copy_queue(self.home("batched"), home)
                run = self.sampled_run(
                    self.worker_command(processes, concurrency),
                    db=home / "postroom.db",
                    count_sql=SENT_SQL,
                    total=total,
                    env=self.worker_env(home),
                    log_name=f"worker-r{round_number}-p{processes}-c{concurrency}.log",
                    description=f"postroom worker --once {setup}",
                )
                run.update(
                    setup=setup,
                    processes=processes,
                    concurrency=concurrency,
                    round=round_number,
                    smtp_source_rate=source["rate"],
                    ratio_to_adjacent_smtp_source=run["rate"] / source["rate"],
                )
                runs.append(run)
                shutil.rmtree(home)
        median_source = statistics.median(s["rate"] for s in sources)
        best_source = max(s["rate"] for s in sources)
        best = max(runs, key=lambda r: r["rate"])
        self.results["smtp_source"] = {
            "command": f"smtp-source -s 4 -d -m {total} 127.0.0.1:PORT",
            "runs": sources,
            "median_rate": median_source,
            "best_rate": best_source,
        }
        # One curve per set-up for the chart: the best round of each.
        per_setup = {
            label: max((r for r in runs if r["setup"] == label), key=lambda r: r["rate"])
            for label in (setup_label(p, c) for p, c in SETUPS)
        }
        self.results["postroom_runs"] = list(per_setup.values())
        self.results["postroom_all_runs"] = [
            {k: v for k, v in r.items() if k != "samples"} for r in runs
        ]
        self.results["best_setup"] = best["setup"]
        self.results["best_processes"] = best["processes"]
        self.results["best_concurrency"] = best["concurrency"]
        batched = self.results["enqueue"]["batched"]["rate"]
        self.results["best"] = {
            "end_to_end_rate": total / (total / batched + best["seconds"]),
            "rate": best["rate"],
            "steady_rate": best["steady_rate"],
            "setup": best["setup"],
            # Best against best: the C client's fastest run is the machine's limit.
            "ratio_to_smtp_source": best["rate"] / best_source,
            "ratio_to_median_smtp_source": best["rate"] / median_source,
            "median_adjacent_ratio": statistics.median(
                r["ratio_to_adjacent_smtp_source"] for r in runs if r["setup"] == best["setup"]
            ),
        }

    # -- 3. django-post-office ---------------------------------------------------------

    def django(self, venv_python: Path) -> None:
        total = self.args.messages
        single = min(self.args.django_single, total)
        folder = self.work / "django"
        helper = str(BENCH / "_django_po.py")
        subprocess.run([str(venv_python), helper, "setup", str(folder), str(self.port)], check=True)
        task = self.task(f"django-post-office: enqueue {total:,}", None)
        started = time.perf_counter()
        found = subprocess.run(
            [str(venv_python), helper, "enqueue", str(folder), str(total), str(single)],
            check=True,
            capture_output=True,
            text=True,
        )
        enqueue_seconds = time.perf_counter() - started
        enqueued = json.loads(found.stdout)
        self.done(task, f"{enqueue_seconds:.1f} s")
        task = self.task(f"smtp-source -s 4 -d -m {total}", None)
        source = self.smtp_source(total)
        self.done(task, f"{source['rate']:,.0f} msg/s")
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench_settings", "PYTHONPATH": str(folder)}
        command = [str(venv_python), "-m", "django", "send_queued_mail", "--processes", "1"]
        command += ["--lockfile", str(folder / "post_office")]
        run = self.sampled_run(
            command,
            db=folder / "db.sqlite3",
            count_sql=DJANGO_SENT_SQL,
            total=total,
            env=env,
            cwd=folder,
            log_name="django-send_queued_mail.log",
            description="django-post-office send_queued_mail",
        )
        versions = subprocess.run(
            [
                str(venv_python),
                "-c",
                "from importlib.metadata import version as v; "
                "print(v('django'), v('django-post-office'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        send_many_rate = (
            enqueued["many_count"] / enqueued["many_seconds"] if enqueued["many_count"] else None
        )
        run.update(
            enqueue=enqueued,
            send_many_rate=send_many_rate,
            smtp_source_rate=source["rate"],
            django_version=versions[0],
            post_office_version=versions[1],
        )
        # End to end as an application sees it: queue everything with send_many, then send.
        if send_many_rate:
            run["end_to_end_rate"] = total / (total / send_many_rate + run["seconds"])
        self.results["django"] = run

    # -- 4. callgrind ------------------------------------------------------------------

    def callgrind(self) -> None:
        valgrind = ensure_valgrind(self.log)
        count = self.args.callgrind_messages
        task = self.task(f"callgrind: worker delivering {count:,} vs an empty run", 4)
        empty, full = self.home("cg-empty"), self.home("cg-full")
        with Postroom(empty) as postroom:
            _ = postroom.outbox
        with Postroom(full) as postroom:
            for first in range(0, count, BATCH):
                postroom.send_many(
                    [message(i, self.padding) for i in range(first, min(first + BATCH, count))]
                )

        def instructions(command: list[str], env: dict[str, str] | None, name: str) -> int:
            out_file = self.work / f"callgrind.{name}.out"
            proc = subprocess.run(
                [valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}", *command],
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
            )
            (self.out / "logs").mkdir(parents=True, exist_ok=True)
            (self.out / "logs" / f"callgrind-{name}.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"callgrind {name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
                )
            self.progress.advance(task)
            return callgrind_total(proc.stderr)

        worker = self.worker_command(1, 1)
        base = instructions(worker, self.worker_env(empty), "worker-empty")
        loaded = instructions(worker, self.worker_env(full), "worker-full")
        with contextlib.closing(sqlite3.connect(full / "postroom.db")) as db:
            sent = db.execute(SENT_SQL).fetchone()[0]
        if sent != count:
            raise RuntimeError(f"callgrind run delivered {sent} of {count}")
        target = f"127.0.0.1:{self.port}"
        length = self.source_length()
        source_one = instructions(
            [SOURCE, "-s", "1", "-d", "-m", "1", *length, target], None, "source-1"
        )
        source_all = instructions(
            [SOURCE, "-s", "1", "-d", "-m", str(count + 1), *length, target], None, "source-n"
        )
        result = {
            "messages": count,
            "worker_empty": base,
            "worker_full": loaded,
            "worker_per_message": (loaded - base) / count,
            "smtp_source_per_message": (source_all - source_one) / count,
        }
        result["ratio"] = result["worker_per_message"] / result["smtp_source_per_message"]
        self.results["callgrind"] = result
        self.done(task, f"{result['worker_per_message']:,.0f} instructions/message")

    # -- 5. memory with a big queue ----------------------------------------------------

    def big(self) -> None:
        total = self.args.big
        processes = self.results.get("best_processes", 1)
        concurrency = self.results.get("best_concurrency", 2)
        home = self.home("big")
        seconds = self.enqueue_batched(home, total, f"enqueue {total:,} for the memory run")
        run = self.sampled_run(
            self.worker_command(processes, concurrency),
            db=home / "postroom.db",
            count_sql=SENT_SQL,
            total=total,
            env=self.worker_env(home),
            log_name="worker-big.log",
            description=f"worker draining {total:,} (RSS sampled)",
            interval=0.25,
            timeout=3600,
        )
        samples = [s for s in run["samples"] if s["rss_kib"]]
        tenth = total // 10
        first = next(s["t"] for s in samples if s["delivered"] >= tenth)
        start_last = next(s["t"] for s in samples if s["delivered"] >= total - tenth)
        early = next(s["rss_kib"] for s in samples if s["delivered"] >= 0.1 * total)
        late = [s["rss_kib"] for s in samples if s["delivered"] >= 0.1 * total]
        run.update(
            messages=total,
            setup=setup_label(processes, concurrency),
            concurrency=concurrency,
            enqueue_seconds=seconds,
            rss_at_10pct_kib=early,
            rss_last_kib=samples[-1]["rss_kib"],
            rss_max_after_10pct_kib=max(late),
            growth=max(late) / early - 1,
            rate_first_tenth=tenth / first,  # start-up included
            rate_last_tenth=tenth / (run["seconds"] - start_last),
        )
        self.results["big"] = run
        shutil.rmtree(home)

    # -- 6. report ---------------------------------------------------------------------

    def verdicts(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, measured, goal, met) rows."""
        r, t = self.results, TARGETS
        rows: list[tuple[str, str, str, bool | None]] = []
        best = r["best"]
        ratio = best["ratio_to_smtp_source"]
        note = (
            f" (vs median {best['ratio_to_median_smtp_source']:.2f}×, median of "
            f"side-by-side pairs {best['median_adjacent_ratio']:.2f}×)"
        )
        rows.append(
            (
                "delivery vs smtp-source, best vs best",
                f"{ratio:.2f}×{note}",
                f"≥ {t['delivery_vs_smtp_source']}×",
                ratio >= t["delivery_vs_smtp_source"],
            ),
        )
        rows.append(
            (
                "delivery vs smtp-source (stretch)",
                f"{ratio:.2f}×",
                f"≥ {t['delivery_vs_smtp_source_stretch']}×",
                ratio >= t["delivery_vs_smtp_source_stretch"],
            ),
        )
        if "django" in r:
            vs = best["rate"] / r["django"]["rate"]
            rows.append(
                (
                    "delivery vs django-post-office",
                    f"{vs:.1f}×",
                    f"≥ {t['delivery_vs_django']:.0f}×",
                    vs >= t["delivery_vs_django"],
                ),
            )
        single = r["enqueue"]["single"]
        rows.append(
            (
                "single enqueue median",
                f"{single['median_ms']:.2f} ms",
                f"≤ {t['single_median_ms']} ms",
                single["median_ms"] <= t["single_median_ms"],
            ),
        )
        rows.append(
            (
                "single enqueue p99",
                f"{single['p99_ms']:.2f} ms",
                f"≤ {t['single_p99_ms']} ms",
                single["p99_ms"] <= t["single_p99_ms"],
            ),
        )
        batched = r["enqueue"]["batched"]["rate"]
        rows.append(
            (
                "batched enqueue",
                f"{batched:,.0f} msg/s",
                f"≥ {t['batched_rate']:,.0f} msg/s",
                batched >= t["batched_rate"],
            ),
        )
        if "big" in r:
            big = r["big"]
            early, peak = big["rss_at_10pct_kib"] / 1024, big["rss_max_after_10pct_kib"] / 1024
            rows.append(
                (
                    f"worker RSS flat, {big['messages']:,} queued",
                    f"{early:.0f} → {peak:.0f} MiB ({big['growth']:+.0%})",
                    f"growth ≤ {t['memory_growth']:.0%}",
                    big["growth"] <= t["memory_growth"],
                ),
            )
        return rows

    def figures(self) -> list[tuple[str, str, str]]:
        """(what, figure, note) rows."""
        r = self.results
        rows = []
        source = r["smtp_source"]
        rows.append(
            (
                "smtp-source -s 4 -d (C client)",
                f"{source['best_rate']:,.0f} msg/s",
                f"best of {len(source['runs'])} runs (one before each worker run); "
                f"median {source['median_rate']:,.0f}, "
                f"slowest {min(s['rate'] for s in source['runs']):,.0f}",
            ),
        )
        for processes, concurrency in SETUPS:
            setup = setup_label(processes, concurrency)
            runs = [x for x in r["postroom_all_runs"] if x["setup"] == setup]
            best = max(runs, key=lambda x: x["rate"])
            rates = ", ".join(f"{x['rate']:,.0f}" for x in runs)
            pairs = ", ".join(f"{x['ratio_to_adjacent_smtp_source']:.2f}" for x in runs)
            steady = f"steady {best['steady_rate']:,.0f}; " if best["steady_rate"] else ""
            rss = max(x["peak_rss_kib"] for x in runs) / 1024
            rows.append(
                (
                    f"postroom worker {setup}",
                    f"{best['rate']:,.0f} msg/s",
                    f"best of {rates}; {steady}vs the smtp-source run just before each: "
                    f"{pairs}×; peak RSS {rss:.0f} MiB",
                ),
            )
        if "django" in r:
            d = r["django"]
            e = d["enqueue"]
            rows.append(
                (
                    "django-post-office send_queued_mail",
                    f"{d['rate']:,.0f} msg/s",
                    f"best postroom is {r['best']['rate'] / d['rate']:.1f}× this",
                ),
            )
            if d.get("end_to_end_rate"):
                rows.append(
                    (
                        "django-post-office send_many + send",
                        f"{d['end_to_end_rate']:,.0f} msg/s",
                        f"send_many {d['send_many_rate']:,.0f} msg/s, then sending",
                    ),
                )
                mine = r["best"]["end_to_end_rate"]
                rows.append(
                    (
                        "postroom send_many + worker",
                        f"{mine:,.0f} msg/s",
                        f"{mine / d['end_to_end_rate']:.1f}× django-post-office's end to end",
                    ),
                )
            if e["single_count"]:
                rows.append(
                    (
                        "django-post-office mail.send() latency",
                        f"median {e['single_median_ms']:.2f} ms",
                        f"p99 {e['single_p99_ms']:.2f} ms over {e['single_count']:,} calls",
                    ),
                )
        single = r["enqueue"]["single"]
        rows.append(
            (
                "postroom enqueue one at a time",
                f"median {single['median_ms']:.2f} ms",
                f"p90 {single['p90_ms']:.2f}, p99 {single['p99_ms']:.2f}, "
                f"max {single['max_ms']:.1f} ms; {single['rate']:,.0f} msg/s",
            ),
        )
        batched = r["enqueue"]["batched"]
        rows.append(
            (
                f"postroom enqueue, send_many of {batched['batch']:,}",
                f"{batched['rate']:,.0f} msg/s",
                f"best of {', '.join(f'{x:,.0f}' for x in batched['rates'])}; "
                f"{r['enqueue']['message_bytes']} bytes/message",
            ),
        )
        if "callgrind" in r:
            c = r["callgrind"]
            rows.append(
                (
                    "instructions per delivered message",
                    f"{c['worker_per_message']:,.0f}",
                    f"postroom worker, {c['messages']:,} messages, minus an empty run; "
                    f"smtp-source: {c['smtp_source_per_message']:,.0f} ({c['ratio']:.0f}×)",
                ),
            )
        if "big" in r:
            b = r["big"]
            rows.append(
                (
                    f"worker draining {b['messages']:,}",
                    f"{b['rate']:,.0f} msg/s",
                    f"first tenth {b['rate_first_tenth']:,.0f} msg/s (start-up included), "
                    f"last tenth {b['rate_last_tenth']:,.0f}; RSS "
                    f"{b['rss_at_10pct_kib'] / 1024:.0f} MiB at 10 % drained, "
                    f"max {b['rss_max_after_10pct_kib'] / 1024:.0f} MiB after",
                ),
            )
        return rows

    def report(self) -> None:
        figures = Table(title="Delivery benchmark", title_justify="left")
        for name in ("what", "figure", "note"):
            figures.add_column(name)
        for row in self.figures():
            figures.add_row(*row)
        targets = Table(title="Targets", title_justify="left")
        for name in ("target", "measured", "goal", "met"):
            targets.add_column(name)
        verdicts = self.verdicts()
        for name, measured, goal, met in verdicts:
            targets.add_row(name, measured, goal, "[green]yes" if met else "[red]no")
        self.console.print(figures)
        self.console.print(targets)
        lines = ["| what | figure | note |", "| --- | ---: | --- |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.figures()]
        lines += ["", "| target | measured | goal | met |", "| --- | ---: | --- | --- |"]
        lines += [f"| {a} | {b} | {c} | {'yes' if d else '**no**'} |" for a, b, c, d in verdicts]
        (self.out / "summary.md").write_text("\n".join(lines) + "\n")
        self.results["verdicts"] = verdicts

    def charts(self, venv_python: Path) -> None:
        images = ROOT / "docs" / "img"
        images.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                str(venv_python),
                str(BENCH / "_plot.py"),
                str(self.out / "results.json"),
                str(images / "delivery.png"),
                str(images / "worker-memory.png"),
            ],
            check=True,
        )
        self.log(f"charts: {images / 'delivery.png'}, {images / 'worker-memory.png'}")

    # -- the whole run -----------------------------------------------------------------

    def run(self) -> None:
        args = self.args
        self.results["machine"] = machine()
        self.results["command"] = " ".join(["bench/delivery.py", *sys.argv[1:]])
        self.results["pinning"] = {
            "sink_cpus": self.pinning.sink,
            "smtp_source_cpus": self.pinning.source,
        }
        ensure_postfix_tools(self.console.print)
        venv_python = tools_venv(self.console.print, fresh=args.fresh_venv)
        with (
            self.processes,
            open(self.out / "logs" / "smtp-sink.log", "wb") as sink_log,
            self.progress,
        ):
            self.port, _ = start_sink(self.processes, sink_log, self.pinning)
            pinned = (
                f"; sink on CPU {self.pinning.sink}, smtp-source on CPU {self.pinning.source}"
                if self.pinning.sink
                else ""
            )
            self.log(f"smtp-sink on 127.0.0.1:{self.port}{pinned}; work folder {self.work}")
            self.size_messages()
            self.enqueue()
            self.deliver()
            if not args.skip_django:
                self.django(venv_python)
            if not args.skip_callgrind:
                self.callgrind()
            if args.big:
                self.big()
        self.results["machine"]["loadavg_at_end"] = os.getloadavg()
        self.report()
        write_json(self.out / "results.json", self.results)
        if not args.skip_charts:
            self.charts(venv_python)
        self.console.print(f"results: {self.out / 'results.json'}, {self.out / 'summary.md'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run")
    parser.add_argument(
        "--big", type=int, default=50_000, help="queue drained for the memory run (0: skip)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="repeat the concurrency sweep")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let the scheduler place the sink and smtp-source (default: sink on the first "
        "CPU, smtp-source on the others; the Python senders are never pinned)",
    )
    parser.add_argument("--skip-django", action="store_true")
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--skip-charts", action="store_true")
    parser.add_argument(
        "--django-single",
        type=int,
        default=1000,
        help="of the django-post-office messages, how many to queue one at a time",
    )
    parser.add_argument("--callgrind-messages", type=int, default=2000)
    parser.add_argument(
        "--size",
        type=int,
        default=0,
        help="bytes of each message postroom and smtp-source send (e.g. 2048; default: a "
        "short message, about 430 bytes); django-post-office's side keeps its short one",
    )
    parser.add_argument("--fresh-venv", action="store_true", help="rebuild the tools venv")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    return parser.parse_args(argv)


@contextlib.contextmanager
def work_folder(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="postroom-bench-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_sigterm()
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    with work_folder(args.keep) as work:
        bench = Bench(args, work, out)
        try:
            bench.run()
        except KeyboardInterrupt:
            bench.console.print("[red]interrupted: children stopped, work folder removed")
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
