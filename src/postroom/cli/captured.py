"""``postroom captured``: read and clear the mail record.

list, show and clear; each takes ``--json``. Reading goes through
:mod:`postroom.store.capture_queries`, clearing through
:class:`~postroom.store.capture.CaptureStore`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer

from postroom.app import Postroom
from postroom.capture import recording_warning
from postroom.cli import captured_render as render
from postroom.cli.common import fail, more_note, out, print_json, state, warn
from postroom.errors import EXIT_FAILED
from postroom.settings.values import parse_duration
from postroom.store.capture import CaptureStore
from postroom.store.capture_queries import count_matching, get_captured, list_captured

app = typer.Typer(help="Read the mail record: what `postroom catch` and recording mode kept.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


@contextmanager
def _postroom(ctx: typer.Context) -> Iterator[Postroom]:
    postroom = Postroom(config=state(ctx).config())
    try:
        warning = recording_warning(postroom.config)
        if warning:
            warn(warning)
        yield postroom
    finally:
        postroom.close()


def parse_since(text: str, *, now: float) -> float:
    """``10m``, ``2h``, ``1d`` (that long ago) or an ISO 8601 time (local if no zone)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        fail(
            f"--since {text!r} is neither a duration (30s, 10m, 2h, 1d) "
            "nor a time (2024-05-01 or 2024-05-01T12:00:00Z)"
        )


@app.command("list")
def list_(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="ADDR",
            help="Only mail for this envelope recipient (any case); a part such as "
            "example.org or ada matches every recipient containing it.",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", metavar="TEXT", help="Only subjects containing TEXT."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="T", help="Only mail received since T: 10m, 2h, or a time."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Show at most this many, newest first.")
    ] = 50,
    all_: Annotated[bool, typer.Option("--all", help="Show every captured message.")] = False,
    json_: JsonOption = False,
) -> None:
    """List captured mail, newest first: envelope sender and recipients, subject, size."""
    now = time.time()
    since_epoch = None if since is None else parse_since(since, now=now)
    with _postroom(ctx) as postroom:
        found = list_captured(
            postroom.engine,
            to=to,
            subject=subject,
            since=since_epoch,
            limit=None if all_ else limit,
        )
        total = (
            len(found)
            if all_
            else count_matching(postroom.engine, to=to, subject=subject, since=since_epoch)
        )
    if json_:
        print_json([message.to_json() for message in found])
        return
    if not found:
        filtered = to or subject or since
        out.print("no captured message matches" if filtered else "the mail record is empty")
        return
    out.print(render.captured_table(found, now=now))
    more_note(len(found), total)
    if any(message.source == "transport" for message in found):
        warn(render.RECORDED_NOTE)


@app.command()
def show(
    ctx: typer.Context,
    message: Annotated[int, typer.Argument(metavar="ID", help="Message id (see `list`).")],
    raw: Annotated[bool, typer.Option("--raw", help="Only the message as received.")] = False,
    html: Annotated[bool, typer.Option("--html", help="Only the HTML part.")] = False,
    text: Annotated[bool, typer.Option("--text", help="Only the text part.")] = False,
    headers: Annotated[bool, typer.Option("--headers", help="Only the header lines.")] = False,
    json_: JsonOption = False,
) -> None:
    """Show one captured message: envelope, session, headers and text."""
    if sum((raw, html, text, headers, json_)) > 1:
        fail("choose one of --raw, --html, --text, --headers and --json")
    with _postroom(ctx) as postroom:
        detail = get_captured(postroom.engine, message)
    if detail is None:
        fail(f"no message {message} in the mail record; see `postroom captured list`")
    if json_:
        print_json(detail.to_json())
    elif raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(detail.raw)
        sys.stdout.buffer.flush()
    elif html or text:
        part = detail.html if html else detail.text
        if part is None:
            fail(f"message {message} has no {'HTML' if html else 'text'} part", EXIT_FAILED)
        sys.stdout.write(part if part.endswith("\n") else part + "\n")
    elif headers:
        for name, value in detail.headers:
            sys.stdout.write(f"{name}: {value}\n")
    else:
        render.print_detail(out, detail, now=time.time())


@app.command()
def clear(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonOption = False,
) -> None:
    """Delete every message in the mail record."""
    if not yes:
        if not sys.stdin.isatty():
            fail("clearing the mail record deletes every captured message; add --yes to confirm")
        typer.confirm("Delete every message in the mail record?", abort=True)
    with _postroom(ctx) as postroom:
        count = CaptureStore(postroom.engine).clear()
    if json_:
        print_json({"deleted": count})
        return
    out.print(f"Deleted {count} captured message(s)")
