"""Delivery against real SMTP servers that misbehave: nothing accepted is ever lost.

Every case runs on the embedded SQLite and on PostgreSQL. Each test prints a figure
line such as ``300 enqueued, 300 delivered, 0 lost, 0 duplicated``. Workers that must
die run as real subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from tests.support.flaky_smtp import FlakyServer
from tests.support.pg import throwaway_engine
from tests.support.smtpd import Recorder, SilentServer, start_server
from tests.support.waiting import wait_until

from postroom import Postroom
from postroom.delivery.results import RunStats
from postroom.delivery.worker import Worker
from postroom.store.queries import get_message

FAST_RETRY = {"delivery.backoff_min": "0", "delivery.backoff_max": "0"}


def figure(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n  [figure] {line}")


class FirstAttemptsFail(Recorder):
    """Answers RCPT for matching recipients with ``reply`` the first ``times`` times."""

    def __init__(self, pattern: str, reply: str, times: int) -> None:
        super().__init__()
        self.pattern, self.reply, self.remaining = pattern, reply, times

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.remaining > 0 and fnmatch(address, self.pattern):
            self.remaining -= 1
            self.rcpts.append(address)
            return self.reply
        return await super().handle_RCPT(server, session, envelope, address, options)


class SlowRecorder(Recorder):
    """Takes a little time per message, so that a worker can be killed mid-batch."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.004)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings that put the outbox on the embedded SQLite or on PostgreSQL."""
    if request.param == "sqlite":
        yield {}
        return
    with throwaway_engine() as engine:
        yield {"database.url": engine.url.render_as_string(hide_password=False)}


def _postroom(home: Path, db: dict[str, str], target: dict[str, str], **extra: str) -> Postroom:
    settings = {"mail.enabled": "true", **FAST_RETRY, **db, **target, **extra}
    return Postroom(home, settings=settings)


def _deliver(postroom: Postroom, concurrency: int = 2) -> RunStats:
    return Worker(postroom.config, postroom.outbox, concurrency=concurrency).run(once=True)


def _message_ids(contents: list[bytes]) -> Counter[str]:
    return Counter(str(message_from_bytes(c)["Message-ID"]) for c in contents)


def test_temporary_failure_then_success_delivers_once(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = FirstAttemptsFail("*@example.org", "451 4.3.0 try again later", times=1)
    server = start_server(handler)
    try:
        with _postroom(tmp_path, db, server.settings_flags()) as postroom:
            pk = postroom.send(to="ada@example.org", subject="retry me", text="hi")
            stats = _deliver(postroom)
            detail = get_message(postroom.engine, pk)
    finally:
        server.stop()
    assert detail is not None
    assert (detail.summary.status, len(server.messages)) == ("sent", 1)
    assert [a.outcome for a in detail.attempt_log] == ["deferred", "sent"]
    assert json.loads(detail.attempt_log[0].detail)["recipients"][0]["code"] == 451
    assert "4.3.0 try again later" in detail.attempt_log[0].detail
    figure(capsys, f"1 enqueued, {stats.sent} delivered, 0 lost, 0 duplicated (after one 451)")


def test_permanent_failure_keeps_the_servers_reply(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server(Recorder(rcpt_replies={"*": "550 5.1.1 no such user here"}))
    try:
        with _postroom(tmp_path, db, server.settings_flags()) as postroom:
            pk = postroom.send(to="ghost@example.org", subject="nobody", text="hi")
            stats = _deliver(postroom)
            detail = get_message(postroom.engine, pk)
    finally:
        server.stop()
    assert detail is not None
    assert detail.summary.status == "failed"
    assert [(r.status, r.code, r.reply) for r in detail.summary.recipients] == [
        ("failed", 550, "5.1.1 no such user here")
    ]
    assert stats.failed == 1
    figure(capsys, "1 enqueued, 0 delivered, 1 failed with 550 kept, 0 lost")


def test_mixed_replies_retry_only_the_deferred_recipient(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    handler = FirstAttemptsFail("later@example.org", "450 4.2.1 mailbox busy", times=1)
    handler.rcpt_replies = {"gone@example.org": "550 5.1.1 unknown user"}
    server = start_server(handler)
    try:
        with _postroom(tmp_path, db, server.settings_flags()) as postroom:
            pk = postroom.send(
                to=["ok@example.org", "later@example.org", "gone@example.org"],
                subject="three recipients",
                text="hi",
            )
            _deliver(postroom)
            detail = get_message(postroom.engine, pk)
            # An admin's retry gives the refused recipient another try, only it.
            assert postroom.outbox.retry([pk]) == 1
            handler.rcpt_replies = {}
            _deliver(postroom)
            retried = get_message(postroom.engine, pk)
    finally:
        server.stop()
    assert retried is not None
    assert (retried.summary.status, retried.summary.outcome) == ("sent", "sent")
    assert server.messages[-1].rcpt_tos == ["gone@example.org"]
    server.messages.pop()
    assert detail is not None
    assert [m.rcpt_tos for m in server.messages] == [["ok@example.org"], ["later@example.org"]]
    assert {r.address: r.status for r in detail.summary.recipients} == {
        "ok@example.org": "sent",
        "later@example.org": "sent",
        "gone@example.org": "failed",
    }
    # One recipient refused it for good; the others got it: sent, partly (not failed).
    assert (detail.summary.status, detail.summary.outcome) == ("sent", "partial")
    assert detail.summary.refused == 1
    assert detail.to_json()["failed_recipients"] == 1
    figure(
        capsys,
        "3 recipients (250/450/550): ok once, later once on retry, gone failed; 0 duplicated",
    )


@pytest.mark.parametrize("break_at", ["during-data", "after-dot"])
def test_dropped_connection_defers_and_the_retry_delivers(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str], break_at: str
) -> None:
    server = FlakyServer(break_at=break_at, failures=1)
    try:
        with _postroom(tmp_path, db, server.settings_flags()) as postroom:
            pk = postroom.send(to="ada@example.org", subject=f"dropped {break_at}", text="hi")
            _deliver(postroom, concurrency=1)
            detail = get_message(postroom.engine, pk)
    finally:
        server.stop()
    assert detail is not None
    assert detail.summary.status == "sent"
    assert [a.outcome for a in detail.attempt_log] == ["deferred", "sent"]
    assert len(server.messages) == 1
    figure(capsys, f"connection dropped {break_at}: 1 enqueued, 1 delivered, 0 lost")


def test_server_that_never_greets_times_out_and_the_worker_moves_on(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    silent = SilentServer()
    flags = {"mail.host": silent.host, "mail.port": str(silent.port), "mail.timeout": "1"}
    try:
        with Postroom(
            tmp_path, settings={"mail.enabled": "true", "delivery.backoff_min": "1h", **db, **flags}
        ) as postroom:
            pk = postroom.send(to="ada@example.org", subject="silence", text="hi")
            started = time.monotonic()
            stats = _deliver(postroom, concurrency=1)
            took = time.monotonic() - started
            detail = get_message(postroom.engine, pk)
    finally:
        silent.close()
    assert detail is not None
    assert took < 10
    assert (detail.summary.status, stats.deferred) == ("deferred", 1)
    assert "did not answer greeting within 1s" in (detail.summary.last_error or "")
    figure(capsys, f"silent server: timeout fired after {took:.1f}s, message deferred, 0 lost")


def test_wrong_password_pauses_delivery_and_fails_nothing(
    tmp_path: Path,
    db: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_server(auth=("mailer", "right-password"), auth_required=True)
    flags = {**server.settings_flags(), "mail.username": "mailer", "mail.password": "wrong-pw"}
    try:
        with _postroom(tmp_path, db, flags) as postroom:
            ids = postroom.send_many(
                [{"to": f"u{i}@example.org", "subject": "s", "text": "t"} for i in range(5)]
            )
            with caplog.at_level(logging.ERROR, logger="postroom.worker"):
                stats = _deliver(postroom)
            details = [get_message(postroom.engine, pk) for pk in ids]
    finally:
        server.stop()
    assert stats.failed == 0
    assert stats.paused >= 1
    assert [(d.summary.status, d.summary.attempts) for d in details if d] == [("queued", 0)] * 5
    paused_lines = [r for r in caplog.records if "paused" in r.getMessage()]
    assert len(paused_lines) == 1  # the admin is told once, not once per message
    assert "wrong-pw" not in caplog.text
    figure(capsys, "wrong password: 5 enqueued, 0 failed, 5 still queued, admin told once")


def _worker_process(home: Path, flags: dict[str, str], *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_HOME"] = str(home)
    for key, value in flags.items():
        env["POSTROOM_" + key.upper().replace(".", "_")] = value
    return subprocess.Popen(
        [sys.executable, "-m", "postroom", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _enqueue(home: Path, flags: dict[str, str], count: int) -> set[str]:
    with Postroom(home, settings=flags) as postroom:
        queued = postroom.enqueue(
            [{"to": f"u{i}@example.org", "subject": f"m{i}", "text": "t"} for i in range(count)]
        )
    return {q.message_id for q in queued}


@pytest.mark.slow
def test_killed_worker_loses_nothing_and_a_fresh_worker_finishes(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server(SlowRecorder())
    # Leases far longer than the test: the fresh worker must not wait for them.
    flags = {**server.settings_flags(), **db, "mail.enabled": "true", "delivery.lease": "600"}
    try:
        expected = _enqueue(tmp_path, flags, 300)
        worker = _worker_process(tmp_path, flags, "--concurrency", "2")
        wait_until(lambda: len(server.messages) >= 100)
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=10)
        # It replays the dead worker's journal and gives back what the dead one held,
        # so `--once` finds every message due now, not in ten minutes.
        fresh = _worker_process(tmp_path, flags, "--once")
        _, stderr = fresh.communicate(timeout=60)
        assert fresh.returncode == 0, stderr
        assert "held back in the queue" in stderr
    finally:
        server.stop()
    delivered = _message_ids([m.content for m in server.messages])
    lost = expected - set(delivered)
    duplicated = sum(n - 1 for n in delivered.values())
    figure(
        capsys,
        f"{len(expected)} enqueued, {len(delivered)} delivered, {len(lost)} lost, "
        f"{duplicated} duplicated (SIGKILL mid-batch)",
    )
    assert not lost
    # The fresh worker replays the dead one's journal before it claims anything: only
    # a message whose 250 was not yet journaled may go twice, one per connection.
    assert duplicated <= 2


@pytest.mark.slow
def test_sigterm_finishes_in_flight_and_leaves_no_lease(
    tmp_path: Path, db: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_server(SlowRecorder())
    flags = {**server.settings_flags(), **db, "mail.enabled": "true"}
    try:
        expected = _enqueue(tmp_path, flags, 300)
        worker = _worker_process(tmp_path, flags, "--concurrency", "2")
        wait_until(lambda: len(server.messages) >= 100)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=20)
        assert worker.returncode == 0, stderr
        with Postroom(tmp_path, settings=flags) as postroom, postroom.engine.connect() as sql:
            leased = sql.execute(
                text(
                    "SELECT count(*) FROM messages "
                    "WHERE status = 'sending' OR lease_owner IS NOT NULL"
                )
            ).scalar_one()
        fresh = _worker_process(tmp_path, flags, "--once")
        fresh.communicate(timeout=60)
    finally:
        server.stop()
    delivered = _message_ids([m.content for m in server.messages])
    duplicated = sum(n - 1 for n in delivered.values())
    figure(
        capsys,
        f"{len(expected)} enqueued, {len(delivered)} delivered, "
        f"{len(expected - set(delivered))} lost, {duplicated} duplicated (SIGTERM, then restart)",
    )
    assert leased == 0
    assert set(delivered) == expected
    assert duplicated == 0
