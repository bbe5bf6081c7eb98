"""delivery.rate_limit is one rate for every worker that shares the database."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.pg import postroom_on
from tests.support.smtpd import SMTPServer

from postroom import Postroom
from postroom.delivery.worker import Worker
from postroom.store.pacing import give_back_slots, reserve_slots


@pytest.fixture(params=["sqlite", "postgresql"])
def postroom(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Postroom]:
    with postroom_on(request.param, tmp_path) as instance:
        yield instance


def test_concurrent_reservations_get_disjoint_slots(postroom: Postroom) -> None:
    engine = postroom.outbox.engine
    starts: list[float] = []
    lock = threading.Lock()

    def reserve_some() -> None:
        for _ in range(10):
            start, _end = reserve_slots(engine, "test", count=5, interval=0.1, now=100.0)
            with lock:
                starts.append(start)

    threads = [threading.Thread(target=reserve_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # 40 blocks of 5 slots, 0.1 s apart: back to back from 100.0, none shared.
    assert sorted(starts) == pytest.approx([100.0 + 0.5 * i for i in range(40)])


def test_time_nobody_used_is_not_saved_up(postroom: Postroom) -> None:
    engine = postroom.outbox.engine
    assert reserve_slots(engine, "test", count=2, interval=1.0, now=10.0) == (10.0, 12.0)
    assert reserve_slots(engine, "test", count=2, interval=1.0, now=50.0) == (50.0, 52.0)


def test_unused_slots_go_back_only_from_the_tail(postroom: Postroom) -> None:
    engine = postroom.outbox.engine
    _, first_end = reserve_slots(engine, "test", count=4, interval=1.0, now=10.0)
    _, second_end = reserve_slots(engine, "test", count=4, interval=1.0, now=10.0)
    assert not give_back_slots(engine, "test", end=first_end, count=2, interval=1.0)
    assert give_back_slots(engine, "test", end=second_end, count=2, interval=1.0)
    assert reserve_slots(engine, "test", count=1, interval=1.0, now=10.0) == (16.0, 17.0)


def test_two_worker_processes_keep_to_one_rate(tmp_path: Path, smtp_server: SMTPServer) -> None:
    flags = {
        "mail.enabled": "true",
        **smtp_server.settings_flags(),
        "delivery.rate_limit": "20/s",
        "delivery.batch_size": "5",
    }
    with Postroom(tmp_path, settings=flags) as postroom:
        postroom.send_many(
            [{"to": f"u{i}@example.org", "subject": "s", "text": "t"} for i in range(20)]
        )
    args = [sys.executable, "-m", "postroom"]
    for key, value in flags.items():
        args += ["--set", f"{key}={value}"]
    env = {**os.environ, "POSTROOM_HOME": str(tmp_path)}
    workers = [
        subprocess.Popen([*args, "worker", "--once"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=60)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    times = sorted(m.received_at for m in smtp_server.messages)
    assert len(times) == 20
    # 20 messages at 20/s, shared: at least 19 intervals of 50 ms between the first and
    # the last, whichever worker sent them. (Two separate limits would allow a burst.)
    assert times[-1] - times[0] >= 0.9


def test_a_paced_message_is_not_held_half_sent(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """With pipelining a message's data goes out with the next message's commands; at
    1/s that would hold each message a second with its data unsent (and the last two
    would arrive together). Each must arrive in its own slot instead."""
    flags = {"mail.enabled": "true", **smtp_server.settings_flags(), "delivery.rate_limit": "1/s"}
    with Postroom(tmp_path, settings=flags) as postroom:
        postroom.send_many(
            [{"to": f"u{i}@example.org", "subject": "s", "text": "t"} for i in range(3)]
        )
        stats = Worker(postroom.config, postroom.outbox, concurrency=1).run(once=True)
    assert stats.sent == 3
    times = [m.received_at for m in smtp_server.messages]
    # Held back, the first would arrive with the second's slot and the last two together.
    assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.6
