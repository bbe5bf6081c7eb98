"""The home folder that holds a deployment's settings, database and templates."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "POSTROOM_HOME"


@dataclass(frozen=True, slots=True)
class Home:
    path: Path

    @classmethod
    def resolve(
        cls,
        explicit: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Home:
        """``explicit`` if given, else ``$POSTROOM_HOME``, else ``./postroom-home``."""
        environ = os.environ if environ is None else environ
        chosen = explicit if explicit is not None else environ.get(HOME_ENV) or "postroom-home"
        return cls(Path(chosen).expanduser().absolute())

    @property
    def config_file(self) -> Path:
        return self.path / "postroom.toml"

    @property
    def database_file(self) -> Path:
        return self.path / "postroom.db"

    @property
    def templates_dir(self) -> Path:
        return self.path / "templates"

    @property
    def mail_dir(self) -> Path:
        return self.path / "mail"

    def ensure(self) -> Path:
        """Create the folder (private to its owner) if it does not exist yet."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.path
