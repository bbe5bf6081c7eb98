"""``postroom token``: API tokens for programs that send mail over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postroom.cli.common import out, print_json
from postroom.cli.users import JsonOption, open_postroom
from postroom.store.service_schema import SCOPE_SEND, TOKEN_SCOPES
from postroom.store.tokens import Tokens
from postroom.store.views import iso_time

app = typer.Typer(help="API tokens: create (shown once), list, revoke.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="What uses it, e.g. omero-server.")],
    scope: Annotated[
        str,
        typer.Option("--scope", help=f"{' or '.join(TOKEN_SCOPES)}: send may only enqueue mail."),
    ] = SCOPE_SEND,
    json_: JsonOption = False,
) -> None:
    """Make a token and print it, this once: only its hash is kept."""
    with open_postroom(ctx) as postroom:
        info, token = Tokens(postroom.engine).create(name, scope=scope.strip().lower())
    if json_:
        print_json({**info.to_json(), "token": token})
        return
    out.print(token, markup=False)
    out.print(
        f"# token {info.name} ({info.scope}): copy it now, it is not shown again. "
        "Send it as the header Authorization: Bearer TOKEN",
        markup=False,
    )


@app.command("list")
def list_(ctx: typer.Context, json_: JsonOption = False) -> None:
    """List tokens (never the tokens themselves), with when each was last used."""
    with open_postroom(ctx) as postroom:
        found = Tokens(postroom.engine).list()
    if json_:
        print_json([info.to_json() for info in found])
        return
    if not found:
        out.print("no tokens yet; make one with `postroom token create NAME`", markup=False)
        return
    table = Table("name", "scope", "token", "created", "last used", "revoked")
    for info in found:
        table.add_row(
            escape(info.name),
            info.scope,
            escape(info.shown),
            iso_time(info.created_at) or "",
            iso_time(info.last_used_at) or "never",
            iso_time(info.revoked_at) or "",
        )
    out.print(table)


@app.command("revoke")
def revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Revoke a token: requests with it are refused from now on (within 5 s)."""
    with open_postroom(ctx) as postroom:
        info = Tokens(postroom.engine).revoke(name)
    out.print(f"token {info.name} revoked", markup=False)
