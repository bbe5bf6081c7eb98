"""``postroom broadcast``: broadcast jobs (list, show, cancel, resume).

``show`` counts the job's messages by outbox state (queued, sent, deferred, failed)
with a progress bar; ``--watch`` follows it until nothing is left to send.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live

from postroom.cli import broadcast_render as render
from postroom.cli.admin import print_report
from postroom.cli.common import out, print_json
from postroom.cli.users import JsonOption, open_postroom

app = typer.Typer(help="Broadcast jobs (admin email): list, show, cancel, resume.")

JobArgument = Annotated[int, typer.Argument(metavar="ID", help="Broadcast id (see `list`).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    json_: JsonOption = False,
) -> None:
    """List broadcasts, newest first, with their progress."""
    with open_postroom(ctx) as postroom:
        found = postroom.broadcasts.list(limit=limit)
    if json_:
        print_json([job.to_json() for job in found])
        return
    if not found:
        out.print("no broadcasts yet; `postroom admin email --help` makes one", markup=False)
        return
    out.print(render.jobs_table(found, now=time.time()))


@app.command("show")
def show(
    ctx: typer.Context,
    job: JobArgument,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow the job until nothing is left to send.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between refreshes (--watch).")
    ] = 1.0,
    json_: JsonOption = False,
) -> None:
    """Show a broadcast: who it is for, its messages by state, and its progress."""
    with open_postroom(ctx) as postroom:
        detail = postroom.broadcasts.get(job)
        if json_:
            print_json(detail.to_json())
            return
        if not watch:
            out.print(render.detail(detail, now=time.time()))
            return
        with Live(render.detail(detail, now=time.time()), console=out, auto_refresh=False) as live:
            while render.running(detail.summary):
                time.sleep(interval)
                detail = postroom.broadcasts.get(job)
                live.update(render.detail(detail, now=time.time()), refresh=True)


@app.command("cancel")
def cancel(ctx: typer.Context, job: JobArgument, json_: JsonOption = False) -> None:
    """Cancel a broadcast: its messages not sent yet are held (a worker finishes those it
    is sending); `postroom outbox purge --status held` removes them."""
    with open_postroom(ctx) as postroom:
        held = postroom.broadcasts.cancel(job)
    if json_:
        print_json({"id": job, "status": "cancelled", "held": held})
        return
    out.print(f"broadcast {job} cancelled; {held} message(s) not sent yet are held", markup=False)


@app.command("resume")
def resume(ctx: typer.Context, job: JobArgument, json_: JsonOption = False) -> None:
    """Finish queueing a broadcast whose `admin email` was killed halfway (workers do it
    by themselves after a minute). Users already queued are never mailed twice."""
    with open_postroom(ctx) as postroom:
        report = postroom.broadcasts.resume(job)
    if json_:
        print_json(report.to_json())
    else:
        print_report(report, resumed=True)
