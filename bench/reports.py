"""Error reports benchmark: what the middleware adds to a failing request, and what a
burst of identical errors from several processes turns into.

Run from the repository root (by hand; it is not part of the tests)::

    .venv/bin/python bench/reports.py [--requests 2000] [--burst 10000] [--processes 4]

1. **Added latency.** A Flask app whose route raises, called in-process through WSGI
   (no HTTP, so only the middleware's cost differs): ``--requests`` failing requests
   to the bare app and as many to the same app wrapped in ``ErrorReportMiddleware``,
   alternating, each timed with ``perf_counter_ns``. Fresh SQLite home, memory
   transport. Every request fails with the same error, so the first is mailed and the
   rest are counted (what a flood looks like). Target: p99 added ≤ 5 ms.
2. **Burst.** ``--processes`` processes report ``--burst`` identical errors between
   them into one SQLite home, then a worker's summary pass runs after the throttle
   window: how many mails result. Target: ≤ 3.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH, write_json
from rich.console import Console
from rich.table import Table

from postroom import Postroom
from postroom.reports import ErrorReportMiddleware
from postroom.reports.request import RequestInfo

SETTINGS = {"mail.transport": "memory", "mail.admins": "ops@example.org"}


def flask_app() -> Any:
    from flask import Flask
    from flask.logging import default_handler

    app = Flask("bench")
    # Flask's own stderr log of each error is not what is measured (both apps drop it);
    # the record still reaches the root logger, where the middleware's handler listens.
    app.logger.removeHandler(default_handler)

    @app.route("/orders/<int:order>")
    def failing(order: int) -> str:
        raise ValueError(f"order {order} cannot be shipped")

    return app


def call(app: Any, path: str) -> int:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "page=2",
        "SERVER_NAME": "bench.example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.10",
        "HTTP_HOST": "bench.example.org",
        "HTTP_USER_AGENT": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.input": __import__("io").BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status: list[str] = []
    body = app(environ, lambda s, h, *a: status.append(s))
    b"".join(body)
    getattr(body, "close", lambda: None)()
    return int(status[0].split()[0])


def latency(home: Path, requests: int) -> dict[str, Any]:
    with Postroom(home / "latency", settings=SETTINGS) as postroom:
        bare = flask_app()
        wrapped = flask_app()
        wrapped.wsgi_app = ErrorReportMiddleware(wrapped.wsgi_app, postroom=postroom)
        for _ in range(50):  # warm-up
            call(bare, "/orders/1")
            call(wrapped, "/orders/1")
        times: dict[str, list[int]] = {"bare": [], "with_reports": []}
        for number in range(requests):
            order = [("bare", bare), ("with_reports", wrapped)]
            for name, app in order if number % 2 else order[::-1]:
                began = time.perf_counter_ns()
                assert call(app, f"/orders/{number}") == 500
                times[name].append(time.perf_counter_ns() - began)
        with postroom.engine.connect() as connection:
            mails = connection.exec_driver_sql("SELECT count(*) FROM messages").scalar()
    assert mails == 1, f"the first failing request should be mailed, the rest counted: {mails}"
    found: dict[str, Any] = {"requests": requests, "mails": mails}
    for name, samples in times.items():
        ordered = sorted(samples)
        found[name] = {
            "p50_ms": ordered[len(ordered) // 2] / 1e6,
            "p99_ms": ordered[int(len(ordered) * 0.99)] / 1e6,
            "mean_ms": statistics.fmean(ordered) / 1e6,
        }
    found["added_p50_ms"] = found["with_reports"]["p50_ms"] - found["bare"]["p50_ms"]
    found["added_p99_ms"] = found["with_reports"]["p99_ms"] - found["bare"]["p99_ms"]
    return found


def _burst(home: str, count: int) -> None:
    with Postroom(home, settings=SETTINGS) as postroom:
        reporter = postroom.error_reports
        request = RequestInfo("GET", "http://bench/orders/1", "/orders/1", client="192.0.2.1")
        for number in range(count):
            try:
                raise TimeoutError(f"the database did not answer ({number})")
            except TimeoutError as error:
                reporter.exception(error, request)


def burst(home: Path, total: int, processes: int) -> dict[str, Any]:
    target = home / "burst"
    with Postroom(target, settings=SETTINGS) as postroom:
        _ = postroom.engine
    context = multiprocessing.get_context("fork")
    each = total // processes
    began = time.perf_counter()
    workers = [context.Process(target=_burst, args=(str(target), each)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    with Postroom(target, settings=SETTINGS) as postroom:
        reporter = postroom.error_reports
        reporter.flush_due(reporter.clock() + postroom.config.settings.reports.throttle + 1)
        with postroom.engine.connect() as connection:
            mails = connection.exec_driver_sql("SELECT count(*) FROM messages").scalar()
            total_seen = connection.exec_driver_sql("SELECT sum(total) FROM error_reports").scalar()
    return {
        "errors": each * processes,
        "processes": processes,
        "seconds": seconds,
        "errors_per_s": each * processes / seconds,
        "counted": total_seen,
        "mails": mails,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    options = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="postroom-bench-reports-") as folder:
        home = Path(folder)
        console.print(f"latency: {options.requests} failing requests each way ...")
        timed = latency(home, options.requests)
        console.print(f"burst: {options.burst} errors from {options.processes} processes ...")
        flood = burst(home, options.burst, options.processes)
    table = Table("", "p50 ms", "p99 ms", "mean ms", title="A failing request (Flask, in-process)")
    for name in ("bare", "with_reports"):
        row = timed[name]
        table.add_row(name, f"{row['p50_ms']:.3f}", f"{row['p99_ms']:.3f}", f"{row['mean_ms']:.3f}")
    table.add_row("added", f"{timed['added_p50_ms']:.3f}", f"{timed['added_p99_ms']:.3f}", "")
    console.print(table)
    console.print(
        f"mails from the latency run: {timed['mails']}; target p99 added ≤ 5 ms: "
        f"{'met' if timed['added_p99_ms'] <= 5 else 'NOT met'}"
    )
    console.print(
        f"burst: {flood['errors']:,} errors from {flood['processes']} processes in "
        f"{flood['seconds']:.1f} s ({flood['errors_per_s']:,.0f}/s), {flood['counted']:,} "
        f"counted, {flood['mails']} mail(s); target ≤ 3: "
        f"{'met' if flood['mails'] <= 3 else 'NOT met'}"
    )
    write_json(
        options.out / "reports.json",
        {
            "command": " ".join(["bench/reports.py", *sys.argv[1:]]),
            "loadavg": os.getloadavg(),
            "latency": timed,
            "burst": flood,
        },
    )


if __name__ == "__main__":
    main()
