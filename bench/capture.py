"""Ingest rate of ``postroom catch`` against a bare aiosmtpd server and smtp-sink.

One command, run by hand (not a test)::

    .venv/bin/python bench/capture.py                 # 20,000 messages, 3 rounds
    .venv/bin/python bench/capture.py --messages 5000 --rounds 1

Postfix's ``smtp-source -s 4 -d -m N`` (four sessions, many messages per connection)
sends N messages to each server in turn, on 127.0.0.1 and a free port:

- ``postroom catch``: the real CLI, a fresh home each round, SQLite in WAL mode with
  ``synchronous=FULL``; it answers 250 only once a message is committed. After the
  run the record is checked: every message got an id, and the newest
  ``capture.max_messages`` are there.
- bare aiosmtpd: the same aiosmtpd, with a handler that answers 250 and keeps
  nothing (this script with ``--serve-bare PORT``).
- Postfix's ``smtp-sink``: the C reference, which also keeps nothing.

Each server is started and stopped by this script; the order rotates every round.
The rate is N over smtp-source's wall time; the table reports medians over rounds and
the ratios the targets are stated in (postroom catch >= 1,000 msg/s and >= 0.8x bare
aiosmtpd). Results go to ``bench/out/capture.json`` and ``capture.md``.
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
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
TARGETS = ("postroom catch", "bare aiosmtpd", "smtp-sink")


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


@contextlib.contextmanager
def running(args: list[str], port: int, *, env: dict[str, str] | None = None) -> Iterator[None]:
    """A server child in its own process group; TERM (then KILL) when done."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            wait_for_greeting(port, proc)
            yield
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


def source(port: int, messages: int, sessions: int) -> float:
    """smtp-source's wall time for ``messages`` messages over ``sessions`` sessions."""
    started = time.perf_counter()
    subprocess.run(
        [SOURCE, "-s", str(sessions), "-d", "-m", str(messages), f"127.0.0.1:{port}"],
        check=True,
        timeout=600,
    )
    return time.perf_counter() - started


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}


def run_postroom(messages: int, sessions: int) -> tuple[float, dict[str, int]]:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="postroom-bench-capture-"))
    try:
        args = [sys.executable, "-m", "postroom", "--home", str(home), "catch"]
        args += ["--bind", f"127.0.0.1:{port}", "--quiet"]
        with running(args, port, env=clean_env()):
            seconds = source(port, messages, sessions)
        with contextlib.closing(sqlite3.connect(home / "postroom.db")) as db:
            count, newest = db.execute("SELECT count(*), max(id) FROM captured").fetchone()
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        return seconds, {"kept": count, "newest_id": newest or 0, "journal_wal": mode == "wal"}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_bare(messages: int, sessions: int) -> float:
    port = free_port()
    with running([sys.executable, __file__, "--serve-bare", str(port)], port):
        return source(port, messages, sessions)


def run_sink(messages: int, sessions: int) -> float:
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with running([SINK, "-4", *user, f"127.0.0.1:{port}", "1000"], port):
        return source(port, messages, sessions)


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
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postfix": postfix or "unknown",
        "loadavg_at_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=4)
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

    n, s = args.messages, args.sessions
    rates: dict[str, list[float]] = {t: [] for t in TARGETS}
    checks: list[dict[str, int]] = []
    facts = machine()
    print(f"{n} messages, {s} sessions, {args.rounds} round(s); load {facts['loadavg_at_start']}")
    for round_no in range(args.rounds):
        order = TARGETS[round_no % 3 :] + TARGETS[: round_no % 3]
        for target in order:
            if target == "postroom catch":
                seconds, check = run_postroom(n, s)
                checks.append(check)
            elif target == "bare aiosmtpd":
                seconds = run_bare(n, s)
            else:
                seconds = run_sink(n, s)
            rates[target].append(n / seconds)
            print(f"  round {round_no + 1}: {target:15} {n / seconds:8.0f} msg/s ({seconds:.2f} s)")

    median = {t: statistics.median(r) for t, r in rates.items()}
    paired = [c / b for c, b in zip(rates["postroom catch"], rates["bare aiosmtpd"], strict=True)]
    complete = all(c["newest_id"] == n and c["journal_wal"] for c in checks)
    result = {
        "messages": n,
        "sessions": s,
        "rounds": args.rounds,
        "machine": facts,
        "rates": rates,
        "median": median,
        "ratio_catch_to_bare": median["postroom catch"] / median["bare aiosmtpd"],
        "ratio_catch_to_bare_per_round": paired,
        "ratio_catch_to_sink": median["postroom catch"] / median["smtp-sink"],
        "ratio_bare_to_sink": median["bare aiosmtpd"] / median["smtp-sink"],
        "record_checks": checks,
        "every_message_stored": complete,
    }
    result["targets_met"] = {
        ">= 1000 msg/s": median["postroom catch"] >= 1000,
        ">= 0.8x bare aiosmtpd": result["ratio_catch_to_bare"] >= 0.8,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "capture.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = summary_markdown(result)
    (args.out / "capture.md").write_text(summary)
    print()
    print(summary)


def summary_markdown(result: dict[str, object]) -> str:
    median = result["median"]
    rates = result["rates"]
    assert isinstance(median, dict)
    assert isinstance(rates, dict)
    lines = [
        f"smtp-source -s {result['sessions']} -d -m {result['messages']}, "
        f"median of {result['rounds']} round(s):",
        "",
        "| server | msg/s (median) | rounds | vs bare aiosmtpd | vs smtp-sink |",
        "|---|---:|---|---:|---:|",
    ]
    for target in TARGETS:
        each = ", ".join(f"{r:.0f}" for r in rates[target])
        lines.append(
            f"| {target} | {median[target]:,.0f} | {each} | "
            f"{median[target] / median['bare aiosmtpd']:.2f}x | "
            f"{median[target] / median['smtp-sink']:.3f}x |"
        )
    met = result["targets_met"]
    assert isinstance(met, dict)
    lines += [
        "",
        "postroom catch per round / bare aiosmtpd in the same round: "
        + ", ".join(f"{r:.2f}" for r in result["ratio_catch_to_bare_per_round"]),  # type: ignore[attr-defined]
        f"every message stored (ids 1..N, WAL): {result['every_message_stored']}",
        "targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items()),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
