"""Broadcast benchmark: import 100,000 users, broadcast to everyone, deliver to smtp-sink.

Run from the repository root (by hand, not a test)::

    .venv/bin/python bench/broadcast.py [--users 100000] [--skip-delivery] [--keep]

Every step is the real command in its own process, timed from start to exit:

1. ``postroom user import users.csv``: the users (1 in 100 without an address, 1 in
   10 in group ``staff``, 20 domains);
2. ``postroom admin email --everyone --yes``: returns when every message is committed;
   its RSS and the committed messages are sampled every 50 ms (memory flat: the largest
   RSS after 10 % committed against the RSS at 10 %);
3. ``postroom worker --once`` delivering them all to Postfix's ``smtp-sink`` on
   127.0.0.1 and a free port (started for the run, stopped after).

Results go to ``bench/out/broadcast.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    Pinning,
    Processes,
    Sample,
    Sampler,
    ensure_postfix_tools,
    machine,
    start_sink,
    steady_rate,
    terminate_on_sigterm,
    write_json,
)

PYTHON = sys.executable
TARGETS = {"broadcast_seconds": 10.0, "memory_growth": 0.10}
DOMAINS = 20


def log(text: str) -> None:
    print(text, flush=True)


def write_users(path: Path, count: int) -> tuple[int, int]:
    """username,name,email,admin,groups; returns (users, users with an address)."""
    with_address = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("username,name,email,admin,groups\n")
        for i in range(count):
            email = "" if i % 100 == 99 else f"user{i:06d}@dept{i % DOMAINS}.university.example"
            with_address += bool(email)
            group = "staff" if i % 10 == 0 else ""
            out.write(f"user{i:06d},User {i},{email},false,{group}\n")
    return count, with_address


def environ(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_HOME"] = str(home)
    env.update(extra)
    return env


def run(
    processes: Processes,
    args: list[str],
    env: dict[str, str],
    *,
    sample_sql: str | None = None,
    db: Path | None = None,
    log_file: Path,
) -> dict[str, Any]:
    """Run ``python -m postroom ARGS`` to the end: wall seconds, peak RSS (from the
    kernel, wait4), and samples of a count in the database with the RSS."""
    with log_file.open("wb") as output:
        started = time.perf_counter()
        proc = processes.start(
            [PYTHON, "-m", "postroom", *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )
        sampler = (
            Sampler(db, sample_sql, proc.pid, started, interval=0.05) if sample_sql and db else None
        )
        with sampler or contextlib.nullcontext():
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}); see {log_file}")
    return {
        "seconds": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "samples": sampler.samples if sampler else [],
        "output": log_file.read_text(errors="replace")[:2000],
    }


def memory_growth(samples: list[Sample], total: int) -> tuple[float | None, float | None]:
    """RSS (MiB) at 10 % committed, and the largest after it."""
    with_rss = [s for s in samples if s.rss_kib]
    at = next((s for s in with_rss if s.delivered >= 0.1 * total), None)
    if at is None or at.rss_kib is None:
        return None, None
    after = max((s.rss_kib or 0) for s in with_rss if s.t >= at.t)
    return at.rss_kib / 1024, after / 1024


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    home = work / "home"
    home.mkdir(mode=0o700)
    logs = work / "logs"
    logs.mkdir()
    results: dict[str, Any] = {"users": args.users, "targets": TARGETS, "machine": machine()}
    csv = work / "users.csv"
    users, with_address = write_users(csv, args.users)
    db = home / "postroom.db"
    with Processes() as processes:
        # The schema is made before the timings (the first command of a home does it).
        run(processes, ["db", "upgrade"], environ(home), log_file=logs / "upgrade.log")

        log(f"importing {users:,} users ...")
        imported = run(
            processes, ["user", "import", str(csv)], environ(home), log_file=logs / "import.log"
        )
        results["import"] = {k: v for k, v in imported.items() if k != "samples"}
        log(f"  {imported['seconds']:.2f} s, peak RSS {imported['peak_rss_mib']:.0f} MiB")

        log("admin email --everyone --yes ...")
        sent = run(
            processes,
            ["admin", "email", "--everyone", "--yes", "Maintenance", "Down at 6pm for an hour."],
            environ(home),
            sample_sql="SELECT count(*) FROM messages",
            db=db,
            log_file=logs / "broadcast.log",
        )
        at_tenth, largest = memory_growth(sent["samples"], with_address)
        results["broadcast"] = {
            **{k: v for k, v in sent.items() if k != "samples"},
            "messages": with_address,
            "rate": with_address / sent["seconds"],
            "rss_at_10pct_mib": at_tenth,
            "rss_max_after_mib": largest,
            "samples": [(s.t, s.delivered, s.rss_kib) for s in sent["samples"]],
        }
        first_line = sent["output"].strip().splitlines()[0]
        log(f"  {sent['seconds']:.2f} s ({with_address / sent['seconds']:,.0f} msg/s), "
            f"peak RSS {sent['peak_rss_mib']:.0f} MiB; {first_line}")  # fmt: skip

        if not args.skip_delivery:
            ensure_postfix_tools(log)
            with (logs / "smtp-sink.log").open("wb") as sink_log:
                port, sink = start_sink(processes, sink_log, Pinning.choose(True))
                log(f"worker --once to smtp-sink on 127.0.0.1:{port} ...")
                env = environ(
                    home,
                    POSTROOM_MAIL_ENABLED="true",
                    POSTROOM_MAIL_HOST="127.0.0.1",
                    POSTROOM_MAIL_PORT=str(port),
                    POSTROOM_MAIL_TRANSPORT="smtp",
                )
                delivered = run(
                    processes,
                    ["worker", "--once"],
                    env,
                    sample_sql="SELECT count(*) FROM messages WHERE status = 'sent'",
                    db=db,
                    log_file=logs / "worker.log",
                )
                processes.stop(sink)
            results["delivery"] = {
                **{k: v for k, v in delivered.items() if k != "samples"},
                "rate": with_address / delivered["seconds"],
                "steady_rate": steady_rate(delivered["samples"], with_address),
            }
            log(f"  {delivered['seconds']:.2f} s ({with_address / delivered['seconds']:,.0f} "
                f"msg/s), peak RSS {delivered['peak_rss_mib']:.0f} MiB")  # fmt: skip
    return results


def summary(results: dict[str, Any]) -> str:
    users = results["users"]
    broadcast = results["broadcast"]
    rows = [
        ("users", f"{users:,}", f"{broadcast['messages']:,} with an address"),
        (
            "`user import users.csv`",
            f"{results['import']['seconds']:.2f} s",
            f"{users / results['import']['seconds']:,.0f} users/s, "
            f"peak RSS {results['import']['peak_rss_mib']:.0f} MiB",
        ),
        (
            "`admin email --everyone --yes` (all committed)",
            f"{broadcast['seconds']:.2f} s",
            f"{broadcast['rate']:,.0f} msg/s, peak RSS {broadcast['peak_rss_mib']:.0f} MiB "
            f"({broadcast['rss_at_10pct_mib']:.0f} MiB at 10 % committed, "
            f"{broadcast['rss_max_after_mib']:.0f} MiB max after)",
        ),
    ]
    if "delivery" in results:
        delivery = results["delivery"]
        steady = delivery["steady_rate"]
        rows.append(
            (
                "`worker --once` to smtp-sink",
                f"{delivery['seconds']:.2f} s",
                f"{delivery['rate']:,.0f} msg/s"
                + (f" (steady {steady:,.0f})" if steady else "")
                + f", peak RSS {delivery['peak_rss_mib']:.0f} MiB",
            )
        )
    growth = broadcast["rss_max_after_mib"] / broadcast["rss_at_10pct_mib"] - 1
    lines = ["| step | time | note |", "| --- | ---: | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [
        "",
        "| target | measured | goal | met |",
        "| --- | ---: | --- | --- |",
        f"| broadcast committed | {broadcast['seconds']:.2f} s | ≤ 10 s | "
        f"{'yes' if broadcast['seconds'] <= TARGETS['broadcast_seconds'] else '**no**'} |",
        f"| memory flat during the fan-out | {growth:+.0%} after 10 % | growth ≤ 10 % | "
        f"{'yes' if growth <= TARGETS['memory_growth'] else '**no**'} |",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="users to import")
    parser.add_argument("--skip-delivery", action="store_true", help="no smtp-sink step")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="results folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return parser.parse_args(argv)


@contextlib.contextmanager
def work_folder(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="postroom-bench-broadcast-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_sigterm()
    with work_folder(args.keep) as work:
        results = bench(args, work)
    write_json(args.out / "broadcast.json", results)
    table = summary(results)
    (args.out / "broadcast.md").write_text(table + "\n")
    print()
    print(table)
    print(f"\nload average at start: {results['machine']['loadavg_at_start']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
