"""Run the real ``postroom`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_postroom(
    home: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> Run:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    environ.update({"POSTROOM_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "postroom", *args],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)
