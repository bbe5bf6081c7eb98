"""`postroom worker --processes N`: several worker processes over one outbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.support.cli import run_postroom
from tests.support.smtpd import SMTPServer
from tests.support.waiting import wait_until

from postroom import Postroom


def _settings(server: SMTPServer) -> dict[str, str]:
    return {**server.settings_flags(), "mail.enabled": "true", "delivery.batch_size": "5"}


def _flags(settings: dict[str, str]) -> list[str]:
    return [f"--set={key}={value}" for key, value in settings.items()]


def _queue(home: Path, settings: dict[str, str], count: int) -> None:
    with Postroom(home, settings=settings) as postroom:
        postroom.send_many(
            [{"to": f"u{i}@example.org", "subject": f"n{i}", "text": "t"} for i in range(count)]
        )


def test_processes_deliver_each_message_once(tmp_path: Path, smtp_server: SMTPServer) -> None:
    settings = _settings(smtp_server)
    _queue(tmp_path, settings, 60)
    run = run_postroom(tmp_path, *_flags(settings), "worker", "--once", "--processes", "2")
    assert run.code == 0, run.stderr
    assert run.stderr.count("postroom worker ") == 2  # each process says where it sends
    received = Counter(m.rcpt_tos[0] for m in smtp_server.messages)
    assert len(received) == 60
    assert set(received.values()) == {1}
    listed = run_postroom(
        tmp_path, *_flags(settings), "outbox", "list", "--status", "sent", "--limit", "100"
    )
    assert listed.stdout.count("@example.org") == 60


def test_sigterm_stops_every_process_and_leaves_no_lease(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    settings = _settings(smtp_server)
    _queue(tmp_path, settings, 10)
    parent, log = _start_two_workers(tmp_path, settings)
    wait_until(lambda: len(smtp_server.messages) == 10)
    wait_until(lambda: log.read_text().count("postroom worker ") == 2)  # both started
    time.sleep(0.5)  # and are past setting their own signal handlers
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)
    output = log.read_text()
    assert parent.returncode == 0, output
    assert output.count("SIGTERM: finishing messages in flight") == 2
    assert output.count("delivered ") == 2  # each child's closing summary
    listed = run_postroom(tmp_path, *_flags(settings), "outbox", "list", "--status", "sending")
    assert "@example.org" not in listed.stdout


def _start_two_workers(
    home: Path, settings: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """`postroom worker --processes 2` in the background; its stderr goes to the log."""
    log = home / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_HOME"] = str(home)
    with open(log, "w") as stderr:
        parent = subprocess.Popen(
            [sys.executable, "-m", "postroom", *_flags(settings), "worker", "--processes", "2"],
            env=env,
            stderr=stderr,
        )
    return parent, log


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def test_a_killed_process_is_started_again(tmp_path: Path, smtp_server: SMTPServer) -> None:
    settings = _settings(smtp_server)
    parent, log = _start_two_workers(tmp_path, settings)
    try:
        wait_until(lambda: log.read_text().count("postroom worker ") == 2)
        first, second = _children(parent.pid)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "starting another in 1s" in log.read_text())
        wait_until(lambda: log.read_text().count("postroom worker ") == 3)
        assert f"worker process {first} ended by itself (killed by SIGKILL)" in log.read_text()
        replacement = next(pid for pid in _children(parent.pid) if pid != second)
        assert replacement != first
        os.kill(second, signal.SIGKILL)  # the replacement alone must deliver now
        _queue(tmp_path, settings, 5)
        wait_until(lambda: len(smtp_server.messages) == 5)
        # Ended again soon after it started: the next start waits twice as long (a
        # crash loop backs off), and a SIGTERM meanwhile still stops everything.
        os.kill(replacement, signal.SIGKILL)
        wait_until(lambda: "starting another in 2s" in log.read_text())
    finally:
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
    assert parent.returncode == 0, log.read_text()
