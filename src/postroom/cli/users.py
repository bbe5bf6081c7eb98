"""``postroom user``: the directory's users (add, update, list, (de)activate, import).

Users are named by username or id (``user update root ...`` or ``user update 0 ...``,
as ``omero obj update Experimenter:0``). ``user list --emails`` prints addresses the
way ``omero user email`` does: comma-separated (one per line with ``--one``), the
users without an address named on stderr unless ``--ignore-missing``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.markup import escape
from rich.table import Table

from postroom.addresses import Address
from postroom.app import Postroom
from postroom.cli.common import fail, out, print_json, state, warn
from postroom.errors import MessageError
from postroom.users import User

app = typer.Typer(help="Users of the directory: add, update, list, (de)activate, import.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
UserArgument = Annotated[str, typer.Argument(metavar="USER", help="Username or id.")]


@contextmanager
def open_postroom(ctx: typer.Context) -> Iterator[Postroom]:
    postroom = Postroom(config=state(ctx).config())
    try:
        yield postroom
    finally:
        postroom.close()


def describe(user: User) -> str:
    flags = [f for f, on in (("admin", user.admin), ("inactive", not user.active)) if on]
    address = user.email or "no address"
    extra = f", {', '.join(flags)}" if flags else ""
    return f"{user.username} (id {user.id}, {address}{extra})"


@app.command("add")
def add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(metavar="USERNAME", help="Letters, digits, . _ @ + -")],
    name: Annotated[str, typer.Option("--name", help='Full name, e.g. "Ada Lovelace".')] = "",
    email: Annotated[str | None, typer.Option("--email", metavar="ADDR", help="Address.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", metavar="G", help="Join this group (repeatable; must exist)."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Add a user."""
    with open_postroom(ctx) as postroom:
        user = postroom.users.add(
            username, full_name=name, email=email, admin=admin, groups=group or ()
        )
    if json_:
        print_json(user.to_json())
    else:
        out.print(f"added user {describe(user)}", markup=False)


@app.command("update")
def update(
    ctx: typer.Context,
    user: UserArgument,
    changes: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=VALUE...",
            help="name (or full_name), email (empty removes it), admin, active.",
        ),
    ],
    json_: JsonOption = False,
) -> None:
    """Change a user, e.g. `user update root email=root@university.example`."""
    with open_postroom(ctx) as postroom:
        updated = postroom.users.update_items(user, changes)
    if json_:
        print_json(updated.to_json())
    else:
        out.print(f"updated user {describe(updated)}", markup=False)


@app.command("show")
def show(ctx: typer.Context, user: UserArgument, json_: JsonOption = False) -> None:
    """Show one user with its groups."""
    with open_postroom(ctx) as postroom:
        found = postroom.users.get(user)
    if json_:
        print_json(found.to_json())
        return
    for key, value in found.to_json().items():
        shown = ", ".join(value) if isinstance(value, list) else value
        out.print(f"{key}: {'' if shown is None else shown}", markup=False)


def _set_active(ctx: typer.Context, user: str, active: bool, json_: bool) -> None:
    with open_postroom(ctx) as postroom:
        changed = postroom.users.activate(user) if active else postroom.users.deactivate(user)
    if json_:
        print_json(changed.to_json())
    else:
        word = "activated" if active else "deactivated"
        out.print(f"{word} user {describe(changed)}", markup=False)


@app.command("deactivate")
def deactivate(ctx: typer.Context, user: UserArgument, json_: JsonOption = False) -> None:
    """Deactivate a user: no broadcast reaches it (unless --inactive); nothing is deleted."""
    _set_active(ctx, user, False, json_)


@app.command("activate")
def activate(ctx: typer.Context, user: UserArgument, json_: JsonOption = False) -> None:
    """Activate a user again."""
    _set_active(ctx, user, True, json_)


@app.command("list")
def list_(
    ctx: typer.Context,
    emails: Annotated[
        bool, typer.Option("--emails", help="Print addresses only (comma-separated).")
    ] = False,
    names: Annotated[
        bool, typer.Option("--names", help='Print "Full Name <address>" (implies --emails).')
    ] = False,
    one: Annotated[
        bool, typer.Option("--one", "-1", help="One per line (implies --emails).")
    ] = False,
    ignore_missing: Annotated[
        bool,
        typer.Option("--ignore-missing", help="Do not name the users without an address."),
    ] = False,
    all_: Annotated[bool, typer.Option("--all", help="Inactive users too.")] = False,
    group: Annotated[
        str | None, typer.Option("--group", metavar="G", help="Only members of this group.")
    ] = None,
    json_: JsonOption = False,
) -> None:
    """List users (active ones unless --all), or their addresses as `omero user email`."""
    with open_postroom(ctx) as postroom:
        found = postroom.users.list(include_inactive=all_, group=group)
    if json_:
        print_json([user.to_json() for user in found])
        return
    if emails or names or one:
        _print_addresses(found, names=names, one=one, ignore_missing=ignore_missing)
        return
    table = Table("id", "username", "name", "email", "admin", "active", "groups")
    for user in found:
        table.add_row(
            str(user.id),
            escape(user.username),
            escape(user.full_name),
            escape(user.email or "-"),
            "yes" if user.admin else "",
            "yes" if user.active else "no",
            escape(", ".join(user.groups)),
        )
    out.print(table)


def _print_addresses(found: list[User], *, names: bool, one: bool, ignore_missing: bool) -> None:
    shown = [
        Address(user.email, user.full_name).shown if names and user.full_name else user.email
        for user in found
        if user.email
    ]
    if shown:
        out.print("\n".join(shown) if one else ", ".join(shown), markup=False)
    missing = [user.username for user in found if not user.email]
    if missing and not ignore_missing:
        warn(f"users without an address ({len(missing)}): {escape(', '.join(missing))}")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(metavar="FILE.csv", help="CSV: username,name,email,admin,groups.")
    ],
    no_update: Annotated[
        bool,
        typer.Option("--no-update", help="Refuse rows of existing usernames (default: update)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and count; store nothing.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Import users from CSV with a header row (username required; name, email, admin,
    groups, active optional; groups separated by ; or |). Existing usernames are
    updated; groups named are joined, and created when missing. Every bad row is
    reported by line number, and then nothing at all is imported."""
    with open_postroom(ctx) as postroom, _open_text(file) as stream:
        report = postroom.users.import_csv(stream, update_existing=not no_update, dry_run=dry_run)
    if json_:
        print_json(report.to_json())
        return
    verb = "would import" if dry_run else "imported"
    out.print(
        f"{verb} {report.rows} user(s): {report.created} new, {report.updated} updated, "
        f"{report.unchanged} unchanged",
        markup=False,
    )
    if report.groups_created:
        out.print(f"groups created: {', '.join(report.groups_created)}", markup=False)


@contextmanager
def _open_text(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin
        return
    try:
        stream = Path(path).open(encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        fail(f"{escape(path)}: {exc.strerror}; give a readable CSV file")
    try:
        yield stream
    except UnicodeDecodeError:
        raise MessageError(f"{path} is not UTF-8 text; save it as UTF-8 CSV") from None
    finally:
        stream.close()
