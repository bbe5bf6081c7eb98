"""The delivery journal: what a worker that dies leaves behind is replayed once, by a
worker that finds it unlocked, and never while its writer lives."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from postroom.delivery.journal import Journal, Replay, decode, encode, replay_orphans
from postroom.store.records import MessageOutcome, RecipientOutcome


def outcome(pk: int) -> MessageOutcome:
    return MessageOutcome(
        pk=pk,
        status="sent",
        counted=True,
        next_attempt_at=1.5,
        last_error=None,
        outcome="sent",
        attempt_outcome="sent",
        detail="250 2.0.0 queued as ÄB",
        started_at=1.0,
        finished_at=2.0,
        recipients=(RecipientOutcome(pk, "sent", 250, "ok"), RecipientOutcome(7, "failed", 5, "")),
        attempt_number=1,
        queued_at=0.5,
    )


Replayed = list[tuple[str, str, list[MessageOutcome]]]


def collect(into: Replayed) -> Replay:
    return lambda owner, worker, outcomes: into.append((owner, worker, outcomes))


def test_an_outcome_survives_the_round_trip_and_a_torn_last_line_is_skipped() -> None:
    data = encode(outcome(1)) + encode(outcome(2)) + encode(outcome(3))[:25]
    assert decode(data) == [outcome(1), outcome(2)]


def test_a_live_journal_is_never_replayed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "host:1:abc:0")
    journal.write(outcome(1))
    replayed: Replayed = []
    assert replay_orphans(tmp_path, collect(replayed)) == 0
    assert replayed == []
    journal.clear()
    journal.close()
    assert list(tmp_path.iterdir()) == []  # all committed: nothing left behind


def test_a_killed_writers_journal_is_replayed_once_then_removed(tmp_path: Path) -> None:
    # A real process writes two outcomes and is killed without a word.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from postroom.delivery.journal import Journal\n"
        "from tests.unit.test_journal import outcome\n"
        "j = Journal(Path(sys.argv[1]), 'host:42:abc:1')\n"
        "j.write(outcome(1)); j.write(outcome(2))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    root = Path(__file__).resolve().parents[2]
    died = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, check=False)
    assert died.returncode == -9
    replayed: Replayed = []
    assert replay_orphans(tmp_path, collect(replayed)) == 2
    assert replayed == [("host:42:abc:1", "host:42:abc", [outcome(1), outcome(2)])]
    assert replay_orphans(tmp_path, collect(replayed)) == 0
    assert list(tmp_path.iterdir()) == []


def test_a_journal_stays_when_the_database_cannot_take_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "host:1:abc:0")
    journal.write(outcome(1))
    journal.close()  # stopped with a result not committed: left for the next worker

    def down(owner: str, worker: str, outcomes: list[MessageOutcome]) -> None:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        replay_orphans(tmp_path, down)
    replayed: Replayed = []
    assert replay_orphans(tmp_path, collect(replayed)) == 1
    assert [pk.pk for pk in replayed[0][2]] == [1]


def test_cleared_outcomes_are_not_replayed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "host:1:abc:0")
    journal.write(outcome(1))
    journal.clear()  # committed
    journal.write(outcome(2))
    os.close(journal._fd)  # type: ignore[arg-type]  # the process is gone
    journal._fd = None
    replayed: Replayed = []
    replay_orphans(tmp_path, collect(replayed))
    assert [o.pk for o in replayed[0][2]] == [2]


def test_a_journal_being_created_is_never_taken_for_a_dead_one(tmp_path: Path) -> None:
    # Another worker scans the folder all the while: it must never replay or remove a
    # journal whose thread lives, however the two interleave.
    done = threading.Event()
    wrongly: Replayed = []

    def scan() -> None:
        while not done.is_set():
            replay_orphans(tmp_path, collect(wrongly))

    scanner = threading.Thread(target=scan)
    scanner.start()
    missing = 0
    try:
        for n in range(1500):
            journal = Journal(tmp_path, f"host:1:abc:{n}")
            journal.write(outcome(n))
            missing += not journal.path.exists()
            journal.clear()
            journal.close()
    finally:
        done.set()
        scanner.join()
    assert (missing, wrongly) == (0, [])
    assert list(tmp_path.iterdir()) == []


def test_a_journal_left_half_created_by_a_dead_worker_is_cleared_away(tmp_path: Path) -> None:
    old, young = (
        tmp_path / "host:9:abc:0.journal-starting",
        tmp_path / "host:9:abc:1.journal-starting",
    )
    old.touch()
    young.touch()
    os.utime(old, (time.time() - 120, time.time() - 120))
    assert replay_orphans(tmp_path, collect([])) == 0
    assert list(tmp_path.iterdir()) == [young]  # may still be on its way to its lock


def test_a_journal_of_json_lines_left_by_an_earlier_version_is_still_read() -> None:
    row = [
        1, "sent", True, 1.5, None, "sent", "sent", "250 2.0.0 queued as ÄB", 1.0, 2.0,
        [[1, "sent", 250, "ok"], [7, "failed", 5, ""]], 1, 0.5,
    ]  # fmt: skip
    line = json.dumps(row, separators=(",", ":")).encode() + b"\n"
    assert decode(line + line.replace(b"[1,", b"[2,", 1)[:-9]) == [outcome(1)]
    assert decode(line + encode(outcome(2))) == [outcome(1), outcome(2)]


def test_a_journal_record_that_names_a_class_or_function_is_not_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = pickle.dumps(_Calls(f"touch {marker}"), protocol=5)
    assert decode(encode(outcome(1)) + hostile + encode(outcome(2))) == [outcome(1)]
    assert not marker.exists()


class _Calls:
    """Pickles as a call of os.system: what a tampered journal could hold."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)
