"""postroom.toml: read into dotted keys, written atomically with mode 0600."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from postroom.errors import ConfigError, storage_error


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key in sorted(flat):
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = flat[key]
    return nested


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's values by dotted key; an absent file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start})",
            fix="save it as UTF-8, or remove it and set the values again",
        ) from None
    except OSError as exc:
        raise storage_error(exc, doing="read") from None
    try:
        return _flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc})", fix="fix the file or remove the broken line"
        ) from None


def write_config_file(path: Path, values: dict[str, Any]) -> None:
    """Replace the file with ``values`` in one step: a reader sees old or new, never half.
    A file system that refuses (read-only, full, no permission) is a StorageError."""
    try:
        _write(path, values)
    except OSError as exc:
        raise storage_error(exc, doing="write") from None


def _write(path: Path, values: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    header = "# postroom settings: edit with `postroom config set KEY VALUE`.\n"
    data = header + tomli_w.dumps(_nest(values))
    fd, temp_name = tempfile.mkstemp(prefix=".postroom.toml.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
