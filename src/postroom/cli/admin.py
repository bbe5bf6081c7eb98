"""``postroom admin email``: mail every selected user, one message each (DESIGN §5).

Every message is committed to the outbox before the command returns, so closing the
terminal (or losing the session, OMERO's limitation) loses nothing; a broadcast killed
halfway is finished by ``postroom broadcast resume ID`` or by any worker.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from postroom.app import Postroom
from postroom.broadcast import BroadcastReport, BroadcastRequest
from postroom.broadcast.recipients import Decision, Tally
from postroom.cli.common import err, fail, out, print_json
from postroom.cli.users import JsonOption, open_postroom
from postroom.errors import EXIT_BAD_INPUT, BroadcastError

app = typer.Typer(help="Administration: mail every user (admin email).")

CONFIRM_ABOVE = 100  # recipients above which the command asks first (or wants --yes)
SHOWN = 50  # users named per list in the report


def _body(text: list[str] | None) -> str:
    if not text or text == ["-"]:
        if sys.stdin.isatty():
            err.print("reading the body from standard input (end with Ctrl-D) ...", markup=False)
        return sys.stdin.read()
    return " ".join(text)


@app.command("email")
def email(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="Subject line.")],
    text: Annotated[
        list[str] | None,
        typer.Argument(metavar="[TEXT]...", help="Body (joined by spaces); none or - : stdin."),
    ] = None,
    everyone: Annotated[bool, typer.Option("--everyone", help="Every active user.")] = False,
    group_name: Annotated[
        list[str] | None,
        typer.Option("--group-name", metavar="G", help="Members of this group (repeatable)."),
    ] = None,
    group_id: Annotated[
        list[int] | None,
        typer.Option("--group-id", metavar="N", help="Members of group N (repeatable)."),
    ] = None,
    user_name: Annotated[
        list[str] | None,
        typer.Option("--user-name", metavar="U", help="This user (repeatable)."),
    ] = None,
    user_id: Annotated[
        list[int] | None,
        typer.Option("--user-id", metavar="N", help="User N (repeatable)."),
    ] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Inactive users too.")] = False,
    html: Annotated[
        bool, typer.Option("--html", help="The body is HTML (a text part is made from it).")
    ] = False,
    cc: Annotated[
        list[str] | None,
        typer.Option("--cc", metavar="ADDR", help="One copy, Cc shown (repeatable)."),
    ] = None,
    bcc: Annotated[
        list[str] | None,
        typer.Option("--bcc", metavar="ADDR", help="A private copy each (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print who would get it; queue nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help=f"Do not ask above {CONFIRM_ABOVE} recipients.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Same key, same broadcast: never a second one."),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option("--rate", metavar="N/UNIT", help="Pace the messages, e.g. 50/min."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Mail the selected users, one message each; prints `Queued S of T emails` and who
    had no (valid) address. Exit 2 for no recipients, a blank subject or body."""
    request = BroadcastRequest(
        subject=subject,
        body=_body(text),
        html=html,
        everyone=everyone,
        group_names=tuple(group_name or ()),
        group_ids=tuple(group_id or ()),
        user_names=tuple(user_name or ()),
        user_ids=tuple(user_id or ()),
        include_inactive=inactive,
        cc=tuple(cc or ()),
        bcc=tuple(bcc or ()),
        rate=rate,
        idempotency_key=idempotency_key,
        created_by=_who(),
    )
    with open_postroom(ctx) as postroom:
        if dry_run:
            _dry_run(postroom, request, json_=json_)
            return
        count = None if yes else postroom.broadcasts.count(request)
        if count is not None and count > CONFIRM_ABOVE:
            _confirm(count)
        with _progress(count) as progress:
            report = postroom.broadcasts.submit(request, progress=progress)
    if json_:
        print_json(report.to_json())
    else:
        print_report(report)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _confirm(count: int) -> None:
    if not sys.stdin.isatty():
        fail(
            f"this broadcast goes to {count} users (more than {CONFIRM_ABOVE}); "
            "add --yes to confirm without a terminal",
            EXIT_BAD_INPUT,
        )
    if not typer.confirm(f"Mail {count} users?", default=False, err=True):
        raise typer.Exit(1)


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on a terminal for long fan-outs; nothing otherwise."""
    if not err.is_terminal or (total is not None and total < 5 * 1000):
        yield None
        return
    columns = (
        TextColumn("queueing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("queueing", total=total)
        yield lambda handled: bar.update(task, completed=handled)


def print_report(report: BroadcastReport, *, resumed: bool = False) -> None:
    note = ", resumed" if resumed else ""
    if not report.created and not resumed:
        note = ", already submitted with this idempotency key"
    out.print(
        f"Queued {report.queued} of {report.total} emails (broadcast {report.id}{note})",
        markup=False,
    )
    if report.status == "fanning-out":
        out.print(
            f"broadcast {report.id} is still being queued by another process; "
            f"`postroom broadcast show {report.id}` follows it",
            markup=False,
        )
    if report.copies:
        out.print(f"plus {report.copies} copy message(s) for --cc/--bcc", markup=False)
    if report.no_address:
        out.print(
            f"Users without an address ({len(report.no_address)}): "
            + _some(list(report.no_address), report.id),
            markup=False,
        )
    if report.invalid:
        out.print(
            f"Invalid addresses ({len(report.invalid)}): "
            + _some([f"{user} <{address}>" for user, address in report.invalid], report.id),
            markup=False,
        )
    if report.duplicates:
        out.print(
            f"Shared addresses: {report.duplicates} user(s) share an address with another "
            "user, who got the one message",
            markup=False,
        )
    if report.inactive:
        out.print(
            f"Inactive users not mailed ({len(report.inactive)}): "
            + ", ".join(report.inactive)
            + " (add --inactive to include them)",
            markup=False,
        )


def _some(names: list[str], broadcast_id: int) -> str:
    """At most SHOWN names; all of them are in `broadcast show ID --json`."""
    if len(names) <= SHOWN:
        return ", ".join(names)
    return (
        ", ".join(names[:SHOWN])
        + f" and {len(names) - SHOWN} more (`postroom broadcast show {broadcast_id} --json`)"
    )


def _dry_run(postroom: Postroom, request: BroadcastRequest, *, json_: bool) -> None:
    tally = Tally()
    rows: list[Decision] = []
    for decision in postroom.broadcasts.preview(request):
        tally.add(decision)
        if json_:
            rows.append(decision)
        elif decision.queued:
            out.print(f"would mail  {decision.username} <{decision.address}>", markup=False)
        else:
            out.print(f"skip        {decision.username} ({decision.skipped})", markup=False)
    if json_:
        print_json(
            {
                "dry_run": True,
                "total": tally.total,
                "queued": tally.queued,
                "recipients": [
                    {"user": d.username, "address": d.address, "skipped": d.skipped} for d in rows
                ],
            }
        )
        return
    out.print(f"Would queue {tally.queued} of {tally.total} emails (dry run: nothing queued)")
    if tally.no_address:
        out.print(
            f"Users without an address ({len(tally.no_address)}): {', '.join(tally.no_address)}",
            markup=False,
        )
    if tally.invalid:
        shown = ", ".join(f"{user} <{address}>" for user, address in tally.invalid)
        out.print(f"Invalid addresses ({len(tally.invalid)}): {shown}", markup=False)
    if not tally.queued and not request.cc and not request.bcc:
        raise BroadcastError("no recipients: nobody selected has a usable address")
