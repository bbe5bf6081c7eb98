"""``postroom config import --from omero|kallithea|labkey FILE``.

The importer says what maps; this command shows it and applies it in one
``change_settings`` call, so a bad value or a conflict leaves postroom.toml untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postroom.cli.common import out, print_json, state, warn
from postroom.errors import ConfigError, ConfigImportError
from postroom.runtime.settings import change_settings
from postroom.settings import Configuration, Home, load, spec_for
from postroom.settings.configfile import read_config_file
from postroom.settings.importers import (
    ImportPlan,
    check_plan,
    explain_error,
    import_peer_config,
)
from postroom.settings.loader import parse_value


def _preview(home: Home, values: Mapping[str, str]) -> Configuration:
    """What ``change_settings`` would produce, checked the same way, without writing."""
    stored = dict(read_config_file(home.config_file))
    for key, raw in values.items():
        spec = spec_for(key)
        stored[spec.key] = spec.kind.to_toml(parse_value(spec.key, raw))
    config = load(home, file_values=stored)
    config.check()
    return config


def _apply(home: Home, plan: ImportPlan, *, dry_run: bool) -> Configuration:
    check_plan(plan)
    values = plan.values()
    try:
        if dry_run or not values:
            return _preview(home, values)
        return change_settings(home, set_values=values)
    except ConfigError as exc:
        raise explain_error(plan, exc) from None


def _print_plan(plan: ImportPlan) -> None:
    """Mapped keys with their values (secrets masked, notes dimmed under the value)."""
    if plan.mapped:
        table = Table(box=None, pad_edge=False, title_justify="left")
        table.title = f"Mapped from {escape(str(plan.path))}"
        table.add_column("peer key", no_wrap=True)
        table.add_column("postroom key", no_wrap=True)
        table.add_column("value", overflow="fold")
        for item in plan.mapped:
            value = escape(item.shown)
            if item.note:
                value += f"\n[dim]{escape(item.note)}[/dim]"
            table.add_row(escape(item.source_key), item.key, value)
        out.print(table)
    if plan.ignored:
        table = Table(box=None, pad_edge=False, title="Ignored", title_justify="left")
        table.add_column("peer key", no_wrap=True)
        table.add_column("why it is not imported")
        for ignored in plan.ignored:
            table.add_row(escape(ignored.source_key), escape(ignored.reason))
        out.print(table)


def import_(
    ctx: typer.Context,
    from_: Annotated[
        str,
        typer.Option(
            "--from", help="Whose file it is: omero, kallithea or labkey.", show_default=False
        ),
    ],
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="omero: `omero config get` output; kallithea: production.ini; "
            "labkey: application.properties, labkey.xml or a startup/*.properties file.",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be imported; write nothing.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Map a peer's mail settings onto postroom's, in one all-or-nothing write."""
    cli = state(ctx)
    plan = import_peer_config(from_, file)
    unusable = plan.unusable_mail_settings()
    if not plan.mapped and unusable:
        reasons = "; ".join(f"{i.source_key}: {i.reason}" for i in unusable[:5])
        raise ConfigImportError(
            f"holds {plan.kind} mail settings, but none could be imported ({reasons}); "
            "nothing was written",
            path=str(file),
        )
    if not plan.mapped:
        raise ConfigImportError(
            f"holds no {plan.kind} mail settings: is it {plan.kind}'s file? (--from omero "
            "takes `omero config get` output, kallithea its .ini, labkey application.properties "
            "or labkey.xml); nothing was written",
            path=str(file),
        )
    config = _apply(cli.home, plan, dry_run=dry_run)
    written = not dry_run and bool(plan.mapped)
    if json_:
        print_json(
            {
                "mapped": [
                    {
                        "source_key": m.source_key,
                        "key": m.key,
                        "value": m.shown,
                        "secret": m.secret,
                        "note": m.note,
                    }
                    for m in plan.mapped
                ],
                "ignored": [{"source_key": i.source_key, "reason": i.reason} for i in plan.ignored],
                "written": written,
                "file": str(cli.home.config_file),
            }
        )
    else:
        _print_plan(plan)
        if dry_run:
            out.print("Nothing written (dry run)")
        else:
            count = len(plan.mapped)
            noun = "setting" if count == 1 else "settings"
            out.print(f"Imported {count} {noun} into {escape(str(cli.home.config_file))}")
    for key in sorted({m.key for m in plan.mapped}):
        if config.sources[key] == "env":
            warn(
                f"note: {key} is overridden by the environment ({spec_for(key).env}); "
                "the imported value applies once that is removed"
            )
    for problem in config.warnings():
        warn(problem.message)
