"""A database outage in the middle of delivery: results the worker already holds are
kept and committed when the database is back, so nothing is sent twice or lost
(PostgreSQL on a private cluster, stopped with pg_ctl -m immediate)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from email import message_from_bytes
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from tests.support.pgcluster import private_cluster
from tests.support.smtpd import Recorder, start_server
from tests.support.waiting import wait_until

from postroom import Postroom
from postroom.delivery.worker import Worker
from postroom.store.engine import make_engine
from postroom.store.migrate import upgrade
from postroom.store.schema import messages

COUNT = 400


class SlowRecorder(Recorder):
    """Takes a little time per message, so that the outage falls mid-batch."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def sent(postroom: Postroom) -> int:
    with postroom.engine.connect() as connection:
        query = select(func.count()).select_from(messages).where(messages.c.status == "sent")
        return int(connection.execute(query).scalar_one())


def test_a_postgresql_outage_mid_batch_sends_nothing_twice(tmp_path: Path) -> None:
    server = start_server(SlowRecorder())
    with private_cluster() as cluster:
        engine = make_engine(cluster.url)
        upgrade(engine)  # an admin's `postroom db upgrade`
        engine.dispose()
        settings = {
            "mail.enabled": "true",
            **server.settings_flags(),
            "database.url": cluster.url,
            "delivery.poll_interval": "0.2",
            # Short enough that results dropped in the outage would be sent again
            # within the test; longer than the outage, so kept ones are not.
            "delivery.lease": "20",
        }
        with Postroom(tmp_path / "home", settings=settings) as postroom:
            postroom.send_many(
                {"to": f"u{n}@example.org", "subject": f"n{n}", "text": "hi"} for n in range(COUNT)
            )
            worker = Worker(postroom.config, postroom.outbox, concurrency=2)
            thread = threading.Thread(target=worker.run)
            thread.start()
            try:
                wait_until(lambda: len(server.messages) >= 60, timeout=60)
                cluster.stop("immediate")  # mid-batch: results are held, not committed
                wait_until(lambda: worker.stats.errors > 0, timeout=60)
                cluster.start()
                wait_until(lambda: sent(postroom) == COUNT, timeout=120, step=0.2)
            finally:
                worker.stop()
                thread.join(timeout=60)
    server.stop()
    ids = Counter(str(message_from_bytes(m.content)["Message-ID"]) for m in server.messages)
    duplicated = sum(n - 1 for n in ids.values())
    lost = COUNT - len(ids)
    print(f"{COUNT} enqueued, {len(ids)} delivered, {lost} lost, {duplicated} duplicated")
    assert (lost, duplicated) == (0, 0)
