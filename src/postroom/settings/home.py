"""The home folder that holds a deployment's settings, database and templates."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from postroom.errors import StorageError, storage_error

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
    def journal_dir(self) -> Path:
        """Delivery outcomes not yet committed (see delivery/journal.py)."""
        return self.path / "journal"

    @property
    def mail_dir(self) -> Path:
        return self.path / "mail"

    def ensure(self) -> Path:
        """Create the folder (private to its owner) if it does not exist yet; a path
        that cannot be a folder here is a StorageError."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise StorageError(
                f"the home {self.path} is a file, not a folder",
                fix="choose another home with --home or POSTROOM_HOME",
            ) from None
        except OSError as exc:
            raise storage_error(exc, doing="create the home folder") from None
        return self.path
