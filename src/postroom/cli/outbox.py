"""``postroom outbox``: look at the queue and act on it as an admin.

list, show, retry, hold, release, purge and stats; each takes ``--json``. Reading goes
through :mod:`postroom.store.queries`, actions through :class:`~postroom.store.outbox.Outbox`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from postroom.app import Postroom
from postroom.capture import recording_warning
from postroom.cli import outbox_render as render
from postroom.cli.common import fail, more_note, out, print_json, state, warn
from postroom.store import queries
from postroom.store.schema import (
    DEFERRED,
    FAILED,
    HELD,
    MESSAGE_STATES,
    QUEUED,
    SENDING,
    SENT,
)

app = typer.Typer(help="Look at the outbox and act on its messages (retry, hold, purge).")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
MessageArgument = Annotated[int, typer.Argument(metavar="ID", help="Message id (see `list`).")]

UNFINISHED = (QUEUED, SENDING, DEFERRED)
HOLDABLE = (QUEUED, DEFERRED, FAILED)


@contextmanager
def _postroom(ctx: typer.Context) -> Iterator[Postroom]:
    postroom = Postroom(config=state(ctx).config())
    try:
        if note := recording_warning(postroom.config):
            warn(note)
        yield postroom
    finally:
        postroom.close()


def _check_status(status: str, allowed: tuple[str, ...] = MESSAGE_STATES) -> str:
    if status not in MESSAGE_STATES:
        fail(f"unknown status {status!r}; the states are {', '.join(MESSAGE_STATES)}")
    if status not in allowed:
        fail(f"--status {status} is not allowed here; use {', '.join(allowed)}")
    return status


def _no_such(pk: int) -> str:
    return f"no message {pk} in the outbox; see `postroom outbox list`"


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option("--status", help=f"Only messages in this state: {', '.join(MESSAGE_STATES)}."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Show at most this many, newest first.")
    ] = 50,
    all_: Annotated[bool, typer.Option("--all", help="Show every message.")] = False,
    json_: JsonOption = False,
) -> None:
    """List messages, newest first, with their state, age, recipients and last reply."""
    if status is not None:
        _check_status(status)
    with _postroom(ctx) as postroom:
        found = queries.list_messages(postroom.engine, status=status, limit=None if all_ else limit)
        total = len(found) if all_ else queries.count_messages(postroom.engine, status=status)
        mail_enabled = postroom.config.settings.mail.enabled
    if json_:
        print_json([message.to_json() for message in found])
        return
    if not found:
        out.print(f"no {status} messages in the outbox" if status else "the outbox is empty")
        return
    out.print(render.messages_table(found, now=time.time()))
    more_note(len(found), total)
    for note in render.undelivered_notes(found, mail_enabled=mail_enabled):
        warn(note)


@app.command()
def show(
    ctx: typer.Context,
    message: MessageArgument,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Print only the raw RFC 5322 message, to copy into a client."),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Show one message: headers, text, each recipient's state and every attempt."""
    if raw and json_:
        fail("choose one of --raw and --json")
    with _postroom(ctx) as postroom:
        detail = queries.get_message(postroom.engine, message)
    if detail is None:
        fail(_no_such(message))
    if json_:
        print_json(detail.to_json())
    elif raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(detail.raw)
        sys.stdout.buffer.flush()
    else:
        render.print_detail(out, detail, now=time.time())


@app.command()
def retry(
    ctx: typer.Context,
    message: Annotated[
        int | None, typer.Argument(metavar="ID", help="Retry this message now.")
    ] = None,
    all_deferred: Annotated[
        bool, typer.Option("--all-deferred", help="Retry every deferred message now.")
    ] = False,
    all_failed: Annotated[
        bool, typer.Option("--all-failed", help="Give every failed message a new try now.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Make messages due now: one by id, or every deferred or failed one. Failed
    recipients are tried again; recipients that were already sent are never sent twice."""
    if sum((message is not None, all_deferred, all_failed)) != 1:
        fail("give exactly one of ID, --all-deferred or --all-failed")
    with _postroom(ctx) as postroom:
        if message is None:
            count = postroom.outbox.retry(statuses=(DEFERRED,) if all_deferred else (FAILED,))
        else:
            current = queries.message_status(postroom.engine, message)
            if current is None:
                fail(_no_such(message))
            count = postroom.outbox.retry([message])
            if count == 0:
                current = queries.message_status(postroom.engine, message) or current
                fail(_cannot_retry(message, current))
    if json_:
        print_json({"retried": count})
        return
    out.print(f"{count} message(s) queued for retry now")


def _cannot_retry(pk: int, current: str) -> str:
    if current == SENT:
        return f"message {pk} was sent; a sent message cannot be retried"
    if current == SENDING:
        return f"message {pk} is being delivered by a worker right now; nothing to retry"
    if current == HELD:
        return f"message {pk} is held; release it with `postroom outbox release {pk}`"
    return f"message {pk} is {current} and cannot be retried"


@app.command()
def hold(ctx: typer.Context, message: MessageArgument, json_: JsonOption = False) -> None:
    """Hold a message: no worker sends it until it is released."""
    with _postroom(ctx) as postroom:
        if not postroom.outbox.hold(message):
            _refuse(postroom, message, f"only {', '.join(HOLDABLE)} messages can be held")
    if json_:
        print_json({"id": message, "status": HELD})
        return
    out.print(f"message {message} is held; `postroom outbox release {message}` lets it go")


@app.command()
def release(ctx: typer.Context, message: MessageArgument, json_: JsonOption = False) -> None:
    """Release a held message: it is queued for delivery now."""
    with _postroom(ctx) as postroom:
        if not postroom.outbox.release_held(message):
            _refuse(postroom, message, "only held messages can be released")
    if json_:
        print_json({"id": message, "status": QUEUED})
        return
    out.print(f"message {message} released and queued for delivery now")


def _refuse(postroom: Postroom, pk: int, rule: str) -> None:
    current = queries.message_status(postroom.engine, pk)
    if current is None:
        fail(_no_such(pk))
    fail(f"message {pk} is {current}; {rule}")


@app.command()
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            metavar="DAYS",
            min=0,
            help="Delete messages last changed more than DAYS days ago.",
        ),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only messages in this state (repeatable): sent, failed or held. Default: sent.",
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Delete finished messages (with their recipients and attempts) older than DAYS."""
    statuses = status or [SENT]
    for item in statuses:
        if item in UNFINISHED:
            fail(
                f"--status {item}: {item} messages are not finished and are never purged; "
                f"use {', '.join(s for s in MESSAGE_STATES if s not in UNFINISHED)}"
            )
        _check_status(item)
    cutoff = time.time() - older_than * 86400
    with _postroom(ctx) as postroom:
        count = postroom.outbox.purge(older_than=cutoff, statuses=tuple(dict.fromkeys(statuses)))
    if json_:
        print_json({"purged": count})
        return
    out.print(f"Purged {count} message(s)")


@app.command()
def stats(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Messages by state, the oldest pending one, and pending recipients by domain and
    age (like Postfix's qshape)."""
    with _postroom(ctx) as postroom:
        result = queries.stats(postroom.engine, time.time())
    if json_:
        print_json(result.to_json())
        return
    render.print_stats(out, result)
