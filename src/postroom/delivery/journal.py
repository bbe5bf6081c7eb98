"""An append-only journal of delivery outcomes, one per delivery thread.

Outcomes go to the database a group at a time (each commit is an fsync), but each one
is first appended here, in one ``write()`` right after the server's reply. A write
that returned is in the kernel's page cache and survives the process being killed,
so a SIGKILLed worker leaves its sent-but-uncommitted outcomes behind instead of
losing them. Before it claims mail, any worker sharing the folder replays a dead
worker's journal into the database, so those messages are not sent again (a crash
repeats at most the message whose reply was not yet journaled, per connection), and
gives the messages it had claimed but not sent back to the queue at once.

A journal stays locked (``flock``) while its thread lives: one that can be locked
belongs to a worker that is gone. The file is emptied after each commit and removed
when the thread ends cleanly. The journal does not fsync: after a power cut the
database's lease brings the messages back (at least once, never lost).

Each outcome is one pickle (protocol 5) of plain values: numbers, strings, None and
tuples, read back by an unpickler that loads no class, so a journal can hold nothing
but data. Pickle writes floats as their 8 bytes where JSON spells out each timestamp
(a tenth of the worker's CPU per message went on that). Journals of JSON lines, left
by an earlier version, are still read.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from pathlib import Path

from postroom.store.records import MessageOutcome, RecipientOutcome

SUFFIX = ".journal"
STARTING = "-starting"  # a journal being created; renamed once locked
LEFT_BEHIND = 60.0  # seconds after which a journal still being created was abandoned
_OUTCOME_FIELDS = tuple(f.name for f in fields(MessageOutcome))
_RECIPIENTS = _OUTCOME_FIELDS.index("recipients")
_PLAIN_FIELDS = tuple(name for name in _OUTCOME_FIELDS if name != "recipients")
_plain_values = attrgetter(*_PLAIN_FIELDS)
_recipient_values = attrgetter("pk", "status", "code", "reply")
PROTOCOL = 5

#: Called with a dead thread's owner name, its worker's name and what it journaled
#: (perhaps nothing): commit the outcomes, and give back what it still held.
Replay = Callable[[str, str, list[MessageOutcome]], None]


class Journal:
    """The journal of one delivery thread (``owner`` is its lease owner)."""

    def __init__(self, folder: Path, owner: str) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = folder / f"{owner.replace('/', '_')}{SUFFIX}"
        # Locked before it gets its name: a journal seen unlocked is always a dead one.
        # (Created under its final name, another worker could take the empty, not yet
        # locked file for a dead one's and remove it while this one writes to it.)
        starting = self.path.with_name(self.path.name + STARTING)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self._fd: int | None = os.open(starting, flags, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # a scan may hold it for a moment
        os.rename(starting, self.path)
        self._written = 0

    def write(self, outcome: MessageOutcome) -> None:
        if self._fd is None:
            return
        os.write(self._fd, encode(outcome))
        self._written += 1

    def clear(self) -> None:
        """Everything written so far is committed to the database."""
        if self._fd is not None and self._written:
            os.ftruncate(self._fd, 0)
            self._written = 0

    def close(self) -> None:
        """Remove the file when all is committed; otherwise leave it, unlocked, for
        the next worker to replay."""
        if self._fd is None:
            return
        if not self._written:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def replay_orphans(folder: Path, replay: Replay) -> int:
    """Commit the journals of workers that are gone, through ``replay``; returns the
    outcomes replayed. ``replay`` may raise (the database is down): the journal then
    stays for the next try."""
    replayed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.endswith(SUFFIX):
            replayed += _replay_one(Path(entry.path), replay)
        elif entry.name.endswith(SUFFIX + STARTING):
            _remove_if_dead(Path(entry.path))
    return replayed


def _remove_if_dead(path: Path) -> None:
    """A journal whose worker died while creating it holds nothing. (One a minute old:
    a young one may be between its creation and its lock.)"""
    with contextlib.suppress(FileNotFoundError):
        if time.time() - path.stat().st_mtime > LEFT_BEHIND:
            path.unlink()


def _replay_one(path: Path, replay: Replay) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its thread is alive
        if os.fstat(fd).st_nlink == 0:
            return 0  # another worker replayed it first, or its thread ended cleanly
        with os.fdopen(os.dup(fd), "rb") as stream:
            outcomes = decode(stream.read())
        owner = path.name[: -len(SUFFIX)]
        replay(owner, owner.rsplit(":", 1)[0], outcomes)
        path.unlink()
        return len(outcomes)
    finally:
        os.close(fd)


def encode(outcome: MessageOutcome) -> bytes:
    """One outcome as journaled: a pickle of (its fields but recipients, its recipients)."""
    recipients = tuple(map(_recipient_values, outcome.recipients))
    return pickle.dumps((_plain_values(outcome), recipients), PROTOCOL)


def decode(data: bytes) -> list[MessageOutcome]:
    """The outcomes of a journal; a last record cut short by the kill is skipped."""
    outcomes: list[MessageOutcome] = []
    stream = io.BytesIO(data)
    unpickler = _DataOnly(stream)
    while (position := stream.tell()) < len(data):
        if data[position] == ord("["):  # a JSON line of an earlier version
            end = data.find(b"\n", position)
            end = len(data) if end < 0 else end + 1
            stream.seek(end)
            outcome = _from_json(data[position:end])
        else:
            try:
                plain, recipients = unpickler.load()
            except Exception:  # torn by the kill: nothing after it was written
                break
            values = dict(zip(_PLAIN_FIELDS, plain, strict=True))
            outcome = MessageOutcome(
                **values, recipients=tuple(RecipientOutcome(*r) for r in recipients)
            )
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


class _DataOnly(pickle.Unpickler):
    """Loads plain values only: a pickle that names any class or function is refused."""

    def find_class(self, module_name: str, global_name: str, /) -> type:
        raise pickle.UnpicklingError(f"a journal holds no {module_name}.{global_name}")


def _from_json(line: bytes) -> MessageOutcome | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    row[_RECIPIENTS] = tuple(RecipientOutcome(*r) for r in row[_RECIPIENTS])
    return MessageOutcome(**dict(zip(_OUTCOME_FIELDS, row, strict=True)))
