"""Environments that fail: a small or read-only file system (a tmpfs of the test's own),
and a database address where nothing listens.

Mounting needs root (CI runs as root here); where it cannot be done the test is
skipped, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(path: Path, *, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` for the block."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def read_only(path: Path) -> None:
    """Remount the tmpfs at ``path`` read-only."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def writable(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True)


def fill(path: Path) -> Path:
    """Fill the file system of ``path`` to the last byte; returns the filler file."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()
    with contextlib.suppress(OSError), filler.open("ab") as handle:  # the last few bytes
        while True:
            handle.write(b"\0")
            handle.flush()
    statvfs = os.statvfs(path)
    assert statvfs.f_bavail == 0, errno.ENOSPC
    return filler
