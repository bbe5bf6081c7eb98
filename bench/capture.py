"""Ingest rate of ``postroom catch`` against a bare aiosmtpd server and smtp-sink.

One command, run by hand (not a test)::

    .venv/bin/python bench/capture.py                       # 12,000 messages a run, 3 rounds
                                                            # (~15 minutes on 2 vCPUs)
    .venv/bin/python bench/capture.py --messages 3000 --rounds 1 --sessions 4

Postfix's ``smtp-source`` sends N messages to each server in turn, on 127.0.0.1 and a
free port, in two ways and at several concurrencies (``--sessions``, default 1, 4,
16 and 32 concurrent sessions):

- **new connection per message**: ``smtp-source -s S -m N`` (connect, EHLO, MAIL,
  RCPT, DATA, QUIT for each message);
- **connection reuse**: ``smtp-source -s S -d -m N`` (each session sends message
  after message on one connection).

smtp-source waits for each reply before the next command, so with S sessions at most
S messages wait for a commit at once: with one session group commit has nothing to
group, and every message waits for its own commit.

The servers:

- ``postroom catch``: the real CLI, a fresh home each run, default settings (SQLite in
  WAL mode with ``synchronous=FULL``, ``capture.max_messages`` = 10,000, so the run
  prunes once past it); it answers 250 only once a message is committed. After each
  run the record is checked: every message got an id (the newest is N) and the
  journal is WAL.
- bare aiosmtpd: the same aiosmtpd, ``SMTP(handler)`` whose ``handle_DATA`` answers
  ``250 OK`` and keeps nothing (this script with ``--serve-bare PORT``).
- Postfix's ``smtp-sink``: the C reference, which also keeps nothing.

Each server is started and stopped by this script; in each round the cells (way x
sessions) run one after another and, within a cell, the servers in an order that
rotates every round, so that the machine's drift hits all of them alike. The rate is N
over smtp-source's wall time; the server's CPU time during the run (user + system,
all threads, from /proc) is reported per message too, as it is less noisy than wall
time on a shared machine. Ratios are postroom catch over the bare aiosmtpd of the
same round and cell (range over rounds, and their median). Results go to
``bench/out/capture.json`` and ``capture.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
TARGETS = ("postroom catch", "bare aiosmtpd", "smtp-sink")
WAYS = {"new": "new connection per message", "reuse": "connection reuse"}
TARGET_RATIO = 0.9  # postroom catch against the bare aiosmtpd (issue 14)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    round: int
    way: str
    sessions: int
    target: str
    messages: int
    seconds: float
    cpu_seconds: float
    check: dict[str, int] | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_greeting(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(100).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing greets on 127.0.0.1:{port}")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextlib.contextmanager
def running(
    args: list[str], port: int, *, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server child in its own process group; TERM (then KILL) when done."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            wait_for_greeting(port, proc)
            yield proc
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    continue
            if proc.returncode not in (0, -signal.SIGTERM):
                log.seek(0)
                tail = log.read().decode(errors="replace")[-600:]
                print(f"  server exited with {proc.returncode}:\n{tail}", file=sys.stderr)


def source(
    proc: subprocess.Popen[bytes], port: int, messages: int, sessions: int, reuse: bool
) -> tuple[float, float]:
    """smtp-source's wall time, and the server's CPU time meanwhile."""
    args = [SOURCE, "-s", str(sessions), *(["-d"] if reuse else []), "-m", str(messages)]
    cpu_before = cpu_seconds(proc.pid)
    started = time.perf_counter()
    subprocess.run([*args, f"127.0.0.1:{port}"], check=True, timeout=1800)
    seconds = time.perf_counter() - started
    return seconds, cpu_seconds(proc.pid) - cpu_before


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}


def run_postroom(messages: int, sessions: int, reuse: bool) -> tuple[float, float, dict[str, int]]:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="postroom-bench-capture-"))
    try:
        args = [sys.executable, "-m", "postroom", "--home", str(home), "catch"]
        args += ["--bind", f"127.0.0.1:{port}", "--quiet"]
        with running(args, port, env=clean_env()) as proc:
            seconds, cpu = source(proc, port, messages, sessions, reuse)
        with contextlib.closing(sqlite3.connect(home / "postroom.db")) as db:
            count, newest = db.execute("SELECT count(*), max(id) FROM captured").fetchone()
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        check = {"kept": count, "newest_id": newest or 0, "journal_wal": int(mode == "wal")}
        return seconds, cpu, check
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_bare(messages: int, sessions: int, reuse: bool) -> tuple[float, float]:
    port = free_port()
    with running([sys.executable, __file__, "--serve-bare", str(port)], port) as proc:
        return source(proc, port, messages, sessions, reuse)


def run_sink(messages: int, sessions: int, reuse: bool) -> tuple[float, float]:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with running([SINK, "-4", *user, f"127.0.0.1:{port}", "1000"], port) as proc:
        return source(proc, port, messages, sessions, reuse)


def serve_bare(port: int) -> None:
    """aiosmtpd with a handler that answers 250 and keeps nothing (like its Sink)."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", port)
        await stop.wait()
        server.close()

    asyncio.run(main())


def machine() -> dict[str, object]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), cpu)
    postfix = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "postfix"], capture_output=True, text=True
    ).stdout
    import aiosmtpd

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "aiosmtpd": aiosmtpd.__version__,
        "postfix": postfix or "unknown",
        "loadavg_at_start": os.getloadavg(),
    }


def one_run(round_no: int, way: str, sessions: int, target: str, messages: int) -> Run:
    reuse = way == "reuse"
    check = None
    if target == "postroom catch":
        seconds, cpu, check = run_postroom(messages, sessions, reuse)
    elif target == "bare aiosmtpd":
        seconds, cpu = run_bare(messages, sessions, reuse)
    else:
        seconds, cpu = run_sink(messages, sessions, reuse)
    return Run(round_no, way, sessions, target, messages, seconds, cpu, check)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=12000, help="messages a run")
    parser.add_argument(
        "--sessions", default="1,4,16,32", help="concurrent smtp-source sessions, comma-separated"
    )
    parser.add_argument("--ways", default="new,reuse", help="new, reuse or both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    for tool in (SINK, SOURCE):
        if not Path(tool).exists():
            sys.exit(f"{tool} is missing: install Debian's postfix package (no configuration)")

    sessions = [int(s) for s in args.sessions.split(",")]
    ways = [w.strip() for w in args.ways.split(",")]
    if unknown := set(ways) - set(WAYS):
        sys.exit(f"unknown --ways {', '.join(sorted(unknown))}: use new, reuse or both")
    cells = [(way, s) for way in ways for s in sessions]
    facts = machine()
    print(
        f"{args.messages} messages a run, sessions {sessions}, {args.rounds} round(s); "
        f"load {facts['loadavg_at_start']}"
    )
    runs: list[Run] = []
    for round_no in range(1, args.rounds + 1):
        shift = (round_no - 1) % len(TARGETS)
        order = TARGETS[shift:] + TARGETS[:shift]
        for way, s in cells:
            for target in order:
                run = one_run(round_no, way, s, target, args.messages)
                runs.append(run)
                print(
                    f"  round {round_no} {way:5} {s:2} sessions: {target:15} "
                    f"{run.rate:8.0f} msg/s ({run.seconds:.2f} s, "
                    f"CPU {run.cpu_seconds / run.messages * 1e6:.0f} us/msg)",
                    flush=True,
                )

    result = summarise(runs, cells, args, facts)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "capture.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = summary_markdown(result)
    (args.out / "capture.md").write_text(summary)
    print()
    print(summary)


def summarise(
    runs: list[Run],
    cells: list[tuple[str, int]],
    args: argparse.Namespace,
    facts: dict[str, object],
) -> dict[str, object]:
    table = []
    for way, s in cells:
        mine = [r for r in runs if (r.way, r.sessions) == (way, s)]
        by_target = {t: [r for r in mine if r.target == t] for t in TARGETS}
        bare = {r.round: r.rate for r in by_target["bare aiosmtpd"]}
        ratios = [r.rate / bare[r.round] for r in by_target["postroom catch"]]
        table.append(
            {
                "way": way,
                "sessions": s,
                "rates": {t: [r.rate for r in rs] for t, rs in by_target.items()},
                "median": {t: statistics.median(r.rate for r in rs) for t, rs in by_target.items()},
                "cpu_us_per_message": {
                    t: statistics.median(r.cpu_seconds / r.messages * 1e6 for r in rs)
                    for t, rs in by_target.items()
                },
                "catch_to_bare_per_round": ratios,
                "catch_to_bare_median": statistics.median(ratios),
                "target_met": min(ratios) >= TARGET_RATIO,
            }
        )
    checks = [r.check for r in runs if r.check is not None]
    return {
        "messages": args.messages,
        "rounds": args.rounds,
        "machine": facts,
        "cells": table,
        "runs": [asdict(r) for r in runs],
        "every_message_stored": all(
            c["newest_id"] == args.messages and c["journal_wal"] for c in checks
        ),
    }


def summary_markdown(result: dict[str, object]) -> str:
    cells = result["cells"]
    assert isinstance(cells, list)
    lines = [
        f"{result['messages']} messages a run, {result['rounds']} round(s); rates are "
        "medians over rounds, ratios are postroom catch / bare aiosmtpd of the same round.",
        "",
        "| way | sessions | server | msg/s (median) | rounds | server CPU µs/msg | "
        "catch / bare (rounds) |",
        "|---|---:|---|---:|---|---:|---|",
    ]
    for cell in cells:
        for target in TARGETS:
            each = ", ".join(f"{r:.0f}" for r in cell["rates"][target])
            ratio = ""
            if target == "postroom catch":
                per_round = cell["catch_to_bare_per_round"]
                ratio = (
                    f"**{cell['catch_to_bare_median']:.2f}×** "
                    f"({min(per_round):.2f}–{max(per_round):.2f})"
                )
            lines.append(
                f"| {WAYS[cell['way']]} | {cell['sessions']} | {target} | "
                f"{cell['median'][target]:,.0f} | {each} | "
                f"{cell['cpu_us_per_message'][target]:.0f} | {ratio} |"
            )
    lines += [
        "",
        f"target: postroom catch >= {TARGET_RATIO}x bare aiosmtpd in every round",
        "",
        "| way | sessions | catch / bare, median (range) | met |",
        "|---|---:|---|---|",
    ]
    for cell in cells:
        per_round = cell["catch_to_bare_per_round"]
        lines.append(
            f"| {WAYS[cell['way']]} | {cell['sessions']} | "
            f"{cell['catch_to_bare_median']:.2f}× ({min(per_round):.2f}–{max(per_round):.2f}) | "
            f"{'yes' if cell['target_met'] else 'no'} |"
        )
    lines += [
        "",
        f"every message stored (newest id = N, WAL): {result['every_message_stored']}",
        f"machine: {json.dumps(result['machine'])}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
