"""Commands import only what they use: `--help` lists every command from its summary,
and a command that never touches the database never imports SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from postroom.cli import COMMANDS


def _first_paragraph(text: str | None) -> str:
    return (text or "").split("\n\n")[0].strip()


def test_every_listed_summary_is_the_commands_own_help() -> None:
    for name in COMMANDS:
        loaded = COMMANDS[name].load(name)
        assert COMMANDS[name].summary == _first_paragraph(loaded.short_help or loaded.help), name


def test_help_lists_every_command_with_its_summary() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "postroom", "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "300", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    for name, command in COMMANDS.items():
        first_line = command.summary.splitlines()[0]
        assert f" {name} " in done.stdout, name
        assert first_line in done.stdout, name


_IMPORTED = """
import sys
from postroom.cli import main
sys.argv = ["postroom", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
heavy = {"sqlalchemy", "alembic"}
print("\\n" + __import__("json").dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["config", "describe", "mail.host"], ["config", "--help"]],
    ids=" ".join,
)
def test_commands_without_a_database_do_not_import_sqlalchemy(
    args: list[str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *args],
        capture_output=True,
        text=True,
        env={"POSTROOM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == [], done.stdout
