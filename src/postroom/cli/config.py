"""``postroom config``: set, get, unset, list and describe settings."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from postroom.cli.common import fail, out, print_json, state, warn
from postroom.runtime.settings import change_settings
from postroom.settings import GLOSSARY, Configuration, spec_for

app = typer.Typer(help="Read and change settings (postroom.toml in the home folder).")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _entry(config: Configuration, key: str) -> dict[str, object]:
    spec = spec_for(key)
    return {
        "key": spec.key,
        "value": spec.kind.to_json(config.value(spec.key)),
        "source": config.sources[spec.key],
        "secret": spec.secret,
    }


def _print_warnings(config: Configuration) -> None:
    for problem in config.warnings():
        warn(problem.message)


# ignore_unknown_options: a VALUE such as -5 is a value (refused for its range), not
# an option the command does not know.
@app.command("set", context_settings={"ignore_unknown_options": True})
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Setting key, e.g. mail.host.")],
    value: Annotated[
        str | None,
        typer.Argument(
            help="New value (lists: comma-separated or JSON). Leave it out for a secret "
            "to be asked without echo, or use --stdin."
        ),
    ] = None,
    stdin: Annotated[
        bool,
        typer.Option(
            "--stdin",
            help="Read the value from standard input (its first line): a password then "
            "never shows in ps or the shell's history.",
        ),
    ] = False,
) -> None:
    """Store a setting in postroom.toml (written atomically, mode 0600)."""
    value = _value_to_set(key, value, stdin)
    cli = state(ctx)
    cli.home.ensure()
    config = change_settings(cli.home, set_values={key: value})
    spec = spec_for(key)
    out.print(f"{spec.key} = {escape(config.shown(spec.key))}")
    if config.sources[spec.key] != "file":
        warn(
            f"note: {spec.key} is overridden by the {config.sources[spec.key]} "
            f"({spec.env}); the stored value applies once that is removed"
        )
    _print_warnings(config)


def _value_to_set(key: str, value: str | None, from_stdin: bool) -> str:
    if value is not None and from_stdin:
        fail("give the VALUE or --stdin, not both")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if value is not None:
        return value
    spec = spec_for(key)
    if not (spec.secret and sys.stdin.isatty()):
        fail(f"give a value for {spec.key}, or --stdin to read it from standard input")
    return getpass.getpass(f"{spec.key} (not shown): ")


@app.command()
def unset(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Setting key to return to its default.")],
) -> None:
    """Remove a setting from postroom.toml, so its default applies again."""
    cli = state(ctx)
    config = change_settings(cli.home, unset=[key])
    spec = spec_for(key)
    out.print(f"{spec.key} = {escape(config.shown(spec.key))} ({config.sources[spec.key]})")


@app.command()
def get(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Setting key, e.g. mail.host.")],
    json_: JsonOption = False,
) -> None:
    """Print a setting's effective value and where it comes from (flag, env, file, default)."""
    config = state(ctx).config()
    spec = spec_for(key)
    if json_:
        print_json(_entry(config, spec.key))
        return
    out.print(f"{escape(config.shown(spec.key))}\t({config.sources[spec.key]})")


@app.command("list")
def list_(
    ctx: typer.Context,
    json_: JsonOption = False,
    changed: Annotated[
        bool, typer.Option("--changed", help="Only settings not at their default.")
    ] = False,
) -> None:
    """List every setting with its value and source; secrets are masked."""
    config = state(ctx).config()
    keys = [k for k in GLOSSARY if not changed or config.sources[k] != "default"]
    if json_:
        print_json([_entry(config, key) for key in keys])
        return
    table = Table("key", "value", "source", box=None, pad_edge=False)
    for key in keys:
        source = config.sources[key]
        table.add_row(
            key, escape(config.shown(key)), source, style=None if source == "default" else "bold"
        )
    out.print(table)
    out.print(f"[dim]home: {escape(str(config.home.path))}[/dim]")
    _print_warnings(config)


@app.command()
def describe(
    key: Annotated[str | None, typer.Argument(help="Only this key.")] = None,
    json_: JsonOption = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the glossary as a Markdown table.")
    ] = False,
) -> None:
    """Print the glossary: every setting, its kind, default, env variable and meaning."""
    specs = [spec_for(key)] if key else list(GLOSSARY.values())
    rows = [
        {
            "key": spec.key,
            "kind": spec.kind.name,
            "default": spec.kind.to_json(spec.default),
            "default_shown": spec.kind.show(spec.default),
            "secret": spec.secret,
            "env": spec.env,
            "description": spec.description,
        }
        for spec in specs
    ]
    if json_:
        print_json([{k: v for k, v in row.items() if k != "default_shown"} for row in rows])
        return
    if markdown:
        print(glossary_markdown())
        return
    section = ""
    for row in rows:
        key = str(row["key"])
        if key.partition(".")[0] != section:
            section = key.partition(".")[0]
            out.print(f"\n[bold underline]{section}[/bold underline]")
        default = escape(str(row["default_shown"])) or '""'
        secret = ", [red]secret[/red]" if row["secret"] else ""
        out.print(
            f"[bold]{key}[/bold]  [dim]({escape(str(row['kind']))}{secret}, "
            f"default {default}, env {row['env']})[/dim]"
        )
        out.print(f"    {escape(str(row['description']))}")


def glossary_markdown() -> str:
    """docs/settings.md, generated from the glossary in code."""
    lines = [
        "# Settings glossary",
        "",
        "Generated from the code by `postroom config describe --markdown`; do not edit.",
        "Precedence: `--set KEY=VALUE` flag > environment variable > `postroom.toml` > default.",
        "",
        "| key | kind | default | environment | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in GLOSSARY.values():
        default = spec.kind.show(spec.default) or '""'
        secret = " (secret)" if spec.secret else ""
        description = spec.description.replace("|", "\\|")
        lines.append(
            f"| `{spec.key}`{secret} | {spec.kind.name.replace('|', '/')} | `{default}` "
            f"| `{spec.env}` | {description} |"
        )
    return "\n".join(lines)


from postroom.cli.config_import import import_  # noqa: E402

app.command("import")(import_)
