"""``postroom user passwd USER``: set the console password of a user.

The password is read from a hidden prompt (asked twice) when standard input is a
terminal, else from the first line of standard input (``--stdin`` says so
explicitly), never from the command line, where ``ps`` and shell history would keep it.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from postroom.cli.common import out
from postroom.cli.users import UserArgument, open_postroom
from postroom.errors import DirectoryError


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New console password: ")
    if getpass.getpass("Again: ") != first:
        raise DirectoryError("the two passwords differ; nothing was changed")
    return first


def command(
    ctx: typer.Context,
    user: UserArgument,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the password from standard input.")
    ] = False,
    remove: Annotated[
        bool, typer.Option("--remove", help="Remove the password: the user cannot log in.")
    ] = False,
) -> None:
    """Set the console password of USER (only active admins can log in with one)."""
    with open_postroom(ctx) as postroom:
        if remove:
            found = postroom.users.set_password(user, None)
            out.print(f"{found.username} has no console password now", markup=False)
            return
        found = postroom.users.set_password(user, _read_password(stdin))
    note = "" if found.admin and found.active else " (not an active admin: cannot log in yet)"
    out.print(f"console password of {found.username} set{note}", markup=False)
