"""``postroom group``: groups of the directory and their members."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postroom.cli.common import out, print_json
from postroom.cli.users import JsonOption, describe, open_postroom

app = typer.Typer(help="Groups of the directory: add, list, members.")

GroupArgument = Annotated[str, typer.Argument(metavar="GROUP", help="Group name or id.")]


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name, e.g. lab-admins.")],
    json_: JsonOption = False,
) -> None:
    """Add a group."""
    with open_postroom(ctx) as postroom:
        group = postroom.users.add_group(name)
    if json_:
        print_json(group.to_json())
    else:
        out.print(f"added group {group.name} (id {group.id})", markup=False)


@app.command("list")
def list_(ctx: typer.Context, json_: JsonOption = False) -> None:
    """List groups with their number of members."""
    with open_postroom(ctx) as postroom:
        found = postroom.users.groups()
    if json_:
        print_json([group.to_json() for group in found])
        return
    if not found:
        out.print("no groups yet; add one with `postroom group add NAME`", markup=False)
        return
    table = Table("id", "name", "members")
    for group in found:
        table.add_row(str(group.id), escape(group.name), str(group.members))
    out.print(table)


@app.command("members")
def members(
    ctx: typer.Context,
    group: GroupArgument,
    add: Annotated[
        list[str] | None,
        typer.Option("--add", metavar="USER", help="Add this user (repeatable)."),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="USER", help="Remove this user (repeatable)."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Show a group's members, after adding and removing the users given."""
    with open_postroom(ctx) as postroom:
        name, found = postroom.users.members(group, add=add or (), remove=remove or ())
    if json_:
        print_json([user.to_json() for user in found])
        return
    out.print(f"group {name}: {len(found)} member(s)", markup=False)
    for user in found:
        out.print(f"  {describe(user)}", markup=False)
