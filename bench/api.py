"""HTTP API benchmark: enqueue over HTTP beside in-process, and accepted → 250 latency.

Run from the repository root (by hand; it is not part of the tests)::

    .venv/bin/python bench/api.py [--seconds 10] [--latency-messages 300] [--skip-pg]

In one run, on one machine:

1. ``postroom serve --no-worker`` on a fresh SQLite home; ``wrk`` (Debian's package,
   installed if missing) POSTs one small message per request to ``/api/v1/messages``
   with 1, 8 and 32 keep-alive connections, ``--seconds`` each: requests/s and the
   latency percentiles wrk measures. Beside it, ``Postroom.send`` in-process on the same
   home, one thread, then 8 threads: messages/s and per-call p50/p99.
2. Accepted → 250: ``postroom serve`` with its worker, mail to an aiosmtpd sink in this
   process; messages are POSTed one at a time with the worker idle, and each one's time
   from the POST being sent to the sink's 250 is taken (an upper bound of accepted →
   250: the worker may start before the HTTP answer is written). On SQLite with the
   worker in the service's process (woken in-process), on PostgreSQL with the worker in
   another process (woken by LISTEN/NOTIFY), and, as the old behaviour, on SQLite with
   the worker in another process (nothing wakes it: the 1 s poll).
3. ``bench/out/api.json``, ``bench/out/api.md`` and the chart ``docs/img/api-latency.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _common import ROOT, Processes, apt_install, free_port, machine, tools_venv, write_json
from aiosmtpd.controller import Controller

CLIENTS = (1, 8, 32)
BODY = {"to": "bench@example.org", "subject": "Password reset", "text": "x" * 400}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.body = '{body}'
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update(settings)
    return env


def postroom(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "postroom", *args], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"postroom {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def start_service(processes: Processes, env: dict[str, str], *args: str) -> str:
    port = free_port()
    env = {**env, "POSTROOM_WEB_BIND": f"127.0.0.1:{port}", "POSTROOM_WEB_RATE_LIMIT": ""}
    processes.start(
        [sys.executable, "-m", "postroom", "serve", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("postroom serve did not start")
        time.sleep(0.1)


# -- 1. enqueue throughput -----------------------------------------------------------------


def parse_wrk(text: str) -> dict[str, float]:
    def ms(value: str, unit: str) -> float:
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    found: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        found[f"p{pct}_ms"] = round(ms(value, unit), 3)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    found["requests_per_s"] = float(rate.group(1)) if rate else 0.0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    found["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return found


def http_enqueue(url: str, token: str, seconds: int, work: Path) -> dict[int, dict[str, float]]:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.format(token=token, body=json.dumps(BODY)))
    results = {}
    for clients in CLIENTS:
        threads = min(2, clients)
        done = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{seconds}s", "--latency",
             "-s", str(script), url + "/api/v1/messages"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[clients] = parse_wrk(done.stdout)
        log(f"  HTTP, {clients} client(s): {results[clients]}")
    return results


def in_process_enqueue(home: Path, seconds: int, threads: int) -> dict[str, float]:
    from postroom import Postroom

    with Postroom(home) as pr:
        pr.send(**BODY)  # open the database before the clock starts
        deadline = time.perf_counter() + seconds
        timings: list[list[float]] = [[] for _ in range(threads)]

        def loop(mine: list[float]) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                pr.send(**BODY)
                mine.append(time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(loop, timings))
        elapsed = time.perf_counter() - started
    calls = sorted(t for mine in timings for t in mine)
    result = {
        "messages_per_s": round(len(calls) / elapsed, 1),
        "p50_ms": round(calls[len(calls) // 2] * 1000, 3),
        "p99_ms": round(calls[int(len(calls) * 0.99)] * 1000, 3),
    }
    log(f"  in-process, {threads} thread(s): {result}")
    return result


# -- 2. accepted → 250 -----------------------------------------------------------------


class Sink:
    """An aiosmtpd server that notes when each message's DATA got its 250."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.event = threading.Condition()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        found = re.search(rb"^Subject: (\S+)", envelope.original_content, re.M)
        with self.event:
            self.arrived[found.group(1).decode() if found else "?"] = time.perf_counter()
            self.event.notify_all()
        return "250 OK"

    def wait(self, key: str, timeout: float = 30) -> float:
        with self.event:
            if not self.event.wait_for(lambda: key in self.arrived, timeout):
                raise SystemExit(f"message {key} never reached the sink")
            return self.arrived[key]


def latency(url: str, token: str, sink: Sink, messages: int) -> dict[str, float]:
    samples = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(messages):
            key = uuid.uuid4().hex
            started = time.perf_counter()
            answer = client.post("/api/v1/messages", json={**BODY, "subject": key})
            answer.raise_for_status()
            samples.append(sink.wait(key) - started)
            time.sleep(0.02)  # let the worker go idle again: the case measured
    samples.sort()
    result = {
        "messages": messages,
        "p50_ms": round(samples[len(samples) // 2] * 1000, 2),
        "p99_ms": round(samples[int(len(samples) * 0.99)] * 1000, 2),
        "max_ms": round(samples[-1] * 1000, 2),
        "samples_ms": [round(s * 1000, 3) for s in samples],
    }
    log(f"  {result['p50_ms']} ms p50, {result['p99_ms']} ms p99")
    return result


def latency_case(
    name: str, sink: Sink, messages: int, env: dict[str, str], *, separate_worker: bool
) -> dict[str, float]:
    log(f"accepted → 250: {name}")
    with Processes() as processes:
        args = ("--no-worker",) if separate_worker else ()
        url = start_service(processes, env, *args)
        if separate_worker:
            processes.start(
                [sys.executable, "-m", "postroom", "worker", "--concurrency", "1"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        token = postroom("token", "create", f"bench-{uuid.uuid4().hex[:6]}", env=env).split()[0]
        latency(url, token, sink, 5)  # warm up: connections open, worker started
        return latency(url, token, sink, messages)


def pg_url() -> str | None:
    import psycopg

    name = f"postroom_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        log(f"no PostgreSQL at 127.0.0.1:5432 ({exc}); its case is skipped")
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--latency-messages", type=int, default=300)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-charts", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        apt_install(["wrk"], log)
    results: dict[str, Any] = {"machine": machine(), "seconds": options.seconds}
    with tempfile.TemporaryDirectory(prefix="postroom-bench-api-") as work_dir:
        work = Path(work_dir)
        log("enqueue: HTTP (postroom serve --no-worker) and in-process, same home")
        env = clean_env(POSTROOM_HOME=str(work / "enqueue"))
        with Processes() as processes:
            url = start_service(processes, env, "--no-worker")
            token = postroom("token", "create", "bench", "--scope", "send", env=env).split()[0]
            results["http"] = http_enqueue(url, token, options.seconds, work)
        results["in_process"] = {
            threads: in_process_enqueue(work / "enqueue", options.seconds, threads)
            for threads in (1, 8)
        }
        sink = Sink()
        sink.controller.start()
        try:
            mail = {
                "POSTROOM_MAIL_ENABLED": "true",
                "POSTROOM_MAIL_HOST": "127.0.0.1",
                "POSTROOM_MAIL_PORT": str(sink.controller.port),
            }
            cases: dict[str, Any] = {}
            home = str(work / "latency-sqlite")
            cases["SQLite, worker in the service (woken in-process)"] = latency_case(
                "SQLite, in-process", sink, options.latency_messages,
                clean_env(POSTROOM_HOME=home, **mail), separate_worker=False,
            )  # fmt: skip
            url_pg = None if options.skip_pg else pg_url()
            if url_pg:
                try:
                    pg_env = clean_env(
                        POSTROOM_HOME=str(work / "latency-pg"), POSTROOM_DATABASE_URL=url_pg, **mail
                    )
                    postroom("db", "upgrade", env=pg_env)
                    cases["PostgreSQL, worker in another process (LISTEN/NOTIFY)"] = latency_case(
                        "PostgreSQL, other process", sink, options.latency_messages, pg_env,
                        separate_worker=True,
                    )  # fmt: skip
                finally:
                    drop_pg(url_pg)
            home = str(work / "latency-poll")
            cases["SQLite, worker in another process (1 s poll, as before)"] = latency_case(
                "SQLite, other process (poll)", sink, min(60, options.latency_messages),
                clean_env(POSTROOM_HOME=home, **mail), separate_worker=True,
            )  # fmt: skip
            results["latency"] = cases
        finally:
            sink.controller.stop()
    options.out.mkdir(parents=True, exist_ok=True)
    write_json(options.out / "api.json", results)
    (options.out / "api.md").write_text(summary(results))
    print(summary(results))
    if not options.skip_charts:
        python = tools_venv(log)
        chart = ROOT / "docs" / "img" / "api-latency.png"
        plot = Path(__file__).parent / "_plot_api.py"
        subprocess.run(
            [str(python), str(plot), str(options.out / "api.json"), str(chart)], check=True
        )
        log(f"chart: {chart.relative_to(ROOT)}")


def summary(results: dict[str, Any]) -> str:
    rows = ["| case | requests/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    for clients, found in results["http"].items():
        rows.append(
            f"| HTTP POST /api/v1/messages, {clients} client(s) | {found['requests_per_s']:,.0f} "
            f"| {found.get('p50_ms', '?')} | {found.get('p99_ms', '?')} |"
        )
    for threads, found in results["in_process"].items():
        rows.append(
            f"| in-process Postroom.send, {threads} thread(s) | {found['messages_per_s']:,.0f} "
            f"| {found['p50_ms']} | {found['p99_ms']} |"
        )
    eight = results["http"][8]["requests_per_s"] / results["in_process"][1]["messages_per_s"]
    rows += ["", f"HTTP at 8 clients / in-process (1 thread): {eight:.2f}×", ""]
    rows += ["| accepted → 250 | messages | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for name, found in results["latency"].items():
        rows.append(
            f"| {name} | {found['messages']} | {found['p50_ms']} | {found['p99_ms']} "
            f"| {found['max_ms']} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
