"""What every command shares: the loaded configuration, output helpers, exit codes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from postroom.errors import EXIT_BAD_INPUT, ConfigError

if TYPE_CHECKING:  # settings are imported when a command first needs them, not for --help
    from postroom.settings import Configuration, Home

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    """Options given before the command, kept on the Typer context."""

    home: Home
    flags: dict[str, str] = field(default_factory=dict)
    _config: Configuration | None = None
    _warned: bool = False

    def config(self) -> Configuration:
        if self._config is None:
            from postroom.settings import load
            from postroom.settings.loader import unknown_env_warning

            self._config = load(self.home, flags=self.flags)
            if not self._warned:
                self._warned = True
                for name in self._config.unknown_env:
                    warn(unknown_env_warning(name))
        return self._config

    def reload(self) -> None:
        """Forget the loaded settings (the flags changed): the next config() loads again."""
        self._config = None


def state(ctx: typer.Context) -> CliState:
    found = ctx.find_object(CliState)
    if found is None:  # a command run without the root callback (tests calling it directly)
        from postroom.settings import Home

        found = CliState(home=Home.resolve())
        ctx.obj = found
    return found


def parse_flag_settings(items: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--set {item!r} is not KEY=VALUE", fix="write e.g. --set mail.port=587"
            )
        flags[key.strip()] = value
    return flags


def print_json(data: Any) -> None:
    """JSON only on stdout, so scripts can parse it."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def warn(message: str) -> None:
    err.print(f"[yellow]{message}[/yellow]", markup=True, highlight=False)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def more_note(shown: int, total: int) -> None:
    """Say that a listing stopped short, and how to see the rest."""
    if shown < total:
        warn(f"{shown:,} of {total:,} shown, newest first; use --limit N or --all for more")
