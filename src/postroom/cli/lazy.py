"""Commands that import their module only when they are chosen.

Every command module pulls in what its work needs (SQLAlchemy, the composer, the
notifier, ...): about a second of imports here, which ``postroom --help`` or
``postroom config describe`` should not pay. The root group knows each command by
name and one-line summary, and imports the module only to run (or show the help of)
that command.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

# Typer 0.29 carries its own copy of click: its types, not the click package's.
Command = TyperCommand | TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """A command by where it lives: ``module:attribute``, a Typer app or a function."""

    target: str
    summary: str
    #: Commands of other modules added to a group once it loads: name -> ``module:function``.
    extra: dict[str, str] = field(default_factory=dict)

    def load(self, name: str) -> Command:
        found = _resolve(self.target)
        if isinstance(found, typer.Typer):
            present = {info.name for info in found.registered_commands}
            for extra_name, extra_target in self.extra.items():
                if extra_name not in present:  # once, however often the group loads
                    found.command(extra_name)(_resolve(extra_target))
            command: Any = typer.main.get_group(found)
        else:
            single = typer.Typer(add_completion=False)
            single.command(name)(found)
            command = typer.main.get_command(single)
        command.name = name
        assert isinstance(command, Command)
        return command


def _resolve(target: str) -> Any:
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


class LazyGroup(TyperGroup):
    """A Typer group whose commands are :class:`LazyCommand` entries, loaded when used.

    Listing them (``--help``, "did you mean") uses the summaries and imports nothing.
    """

    lazy_commands: ClassVar[dict[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._loaded: dict[str, Command] = {}
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy_commands]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = self.lazy_commands.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperCommand(cmd_name, help=entry.summary)
        return self.load(cmd_name)

    def load(self, name: str) -> Command:
        """The real command (imports its module once)."""
        if name not in self._loaded:
            self._loaded[name] = self.lazy_commands[name].load(name)
        return self._loaded[name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def lazy_group(commands: dict[str, LazyCommand]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class for these commands (Typer takes a class, not an instance)."""
    return type("PostroomGroup", (LazyGroup,), {"lazy_commands": commands})
