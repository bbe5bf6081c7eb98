"""``postroom emit``, ``heartbeat``, ``templates`` and ``user prefs``: event
notifications from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from postroom.cli.common import err, out, print_json, state
from postroom.cli.users import JsonOption, UserArgument, open_postroom
from postroom.errors import EXIT_BAD_INPUT, EventError
from postroom.notify import Templates
from postroom.settings.senders import EVENT_KINDS, EVENTS_BY_NAME
from postroom.settings.values import parse_duration

TYPES = ", ".join(kind.name for kind in EVENT_KINDS)
DataOption = Annotated[
    str | None,
    typer.Option("--data", metavar="JSON|@FILE", help="The event's data: JSON, or @file.json."),
]


def read_data(raw: str | None) -> dict[str, Any]:
    """--data as a mapping: inline JSON or @file; a one-line error otherwise."""
    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        path = Path(raw[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EventError(f"--data {raw}: {exc.strerror}; give a readable JSON file") from None
        except UnicodeDecodeError:
            raise EventError(f"--data {raw} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventError(
            f"--data is not valid JSON ({exc.msg} at character {exc.pos}); "
            """write e.g. --data '{"name": "omero-1"}'""",
            field="data",
        ) from None
    if not isinstance(data, dict):
        raise EventError("--data must be a JSON object", field="data")
    return data


def emit(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(metavar="TYPE", help=f"One of: {TYPES}.")],
    actor: Annotated[
        str | None, typer.Option("--actor", metavar="USER", help="Who caused it (username or id).")
    ] = None,
    data: DataOption = None,
) -> None:
    """Emit an event: its notification mail is queued for the right people. Prints
    the result as JSON (ids, recipients, skipped users)."""
    payload = read_data(data)
    with open_postroom(ctx) as postroom:
        result = postroom.notifications.emit(event.strip(), actor=actor, data=payload)
    print_json(result.to_json())


def heartbeat(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The host app, e.g. omero-1.")],
    every: Annotated[
        str, typer.Option("--every", metavar="DURATION", help="How often it beats (60s, 5m).")
    ] = "60s",
    stop: Annotated[
        bool, typer.Option("--stop", help="The app stops on purpose: forget it, no server.down.")
    ] = False,
) -> None:
    """Record one heartbeat of a host app; run it from the app's scheduler every
    --every. When beats stop, a worker mails server.down to the admins."""
    if stop:
        with open_postroom(ctx) as postroom:
            known = postroom.notifications.stop_beating(name.strip())
        if not known:
            raise EventError(f"no host app {name!r} beats here; nothing to stop", field="name")
        out.print(f"{name}: heartbeat stopped; its silence sends no mail", markup=False)
        return
    try:
        seconds = parse_duration(every)
    except ValueError as exc:
        raise EventError(f"--every: {exc}", field="every") from None
    with open_postroom(ctx) as postroom:
        recovered = postroom.notifications.beat(name.strip(), seconds)
    if recovered:
        out.print(f"{name}: back after a silence; server.up sent", markup=False)


templates_app = typer.Typer(help="Notification templates: check them, preview a mail.")


@templates_app.command("check")
def check(ctx: typer.Context) -> None:
    """Parse and render every template (shipped and overridden) with sample data; exit
    2 naming template, line and variable for the first problems found."""
    home = state(ctx).home
    templates = Templates(home.path / "templates")
    problems = templates.check()
    for problem in problems:
        err.print(f"[red]error:[/red] {escape(str(problem))}")
    if problems:
        raise typer.Exit(EXIT_BAD_INPUT)
    overridden = templates.overridden()
    where = (
        f"; overridden in {home.path / 'templates'}: {', '.join(overridden)}" if overridden else ""
    )
    out.print(f"templates OK ({len(EVENT_KINDS)} types{where})", markup=False)


@templates_app.command("render")
def render(
    ctx: typer.Context,
    event: Annotated[str, typer.Argument(metavar="TYPE", help=f"One of: {TYPES}.")],
    data: DataOption = None,
    actor: Annotated[str | None, typer.Option("--actor", metavar="USER")] = None,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML form.")] = False,
) -> None:
    """Preview the mail TYPE makes (sample data unless --data is given)."""
    if event not in EVENTS_BY_NAME:
        raise EventError(f"unknown event type {event!r}; use one of {TYPES}", field="type")
    with open_postroom(ctx) as postroom:
        rendered = postroom.notifications.preview(
            event, read_data(data) if data is not None else None, actor=actor
        )
    out.print(f"Subject: {rendered.subject}\n", markup=False)
    out.print(rendered.html if html else rendered.text, markup=False, end="")


def prefs(
    ctx: typer.Context,
    user: UserArgument,
    off: Annotated[
        list[str] | None, typer.Option("--off", metavar="TYPE", help="Stop this type (repeat).")
    ] = None,
    on: Annotated[
        list[str] | None, typer.Option("--on", metavar="TYPE", help="Send this type again.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Show or change which notification types a user gets."""
    with open_postroom(ctx) as postroom:
        found = postroom.users.get(user)
        if off or on:
            stopped = postroom.notifications.set_prefs(found.id, off=off or [], on=on or [])
        else:
            stopped = postroom.notifications.opted_out(found.id)
    if json_:
        print_json({"user": found.username, "off": stopped, "on": _on(stopped)})
        return
    for kind in EVENT_KINDS:
        mark = "off" if kind.name in stopped else "on"
        note = "" if kind.opt_out else "  (always sent)"
        out.print(f"{kind.name:<30} {mark}{note}", markup=False)


def _on(stopped: list[str]) -> list[str]:
    return [kind.name for kind in EVENT_KINDS if kind.name not in stopped]
