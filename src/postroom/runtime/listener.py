"""Across machines: a PostgreSQL ``LISTEN`` that rings this process's doorbell.

Every transaction that makes mail due on PostgreSQL also sends ``NOTIFY
postroom_outbox`` (see :func:`postroom.store.outbox.tell_listeners`), delivered when it
commits. This thread keeps one connection listening and rings the doorbell for each
notification, so a worker on one machine wakes within milliseconds of an enqueue on
another. When the connection is lost it reconnects with backoff; the workers' polling
covers the gap, and a ring on reconnecting covers what was missed.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from postroom.delivery.doorbell import Doorbell
from postroom.store.outbox import WAKE_CHANNEL

logger = logging.getLogger("postroom.worker")

CHECK_EVERY = 1.0  # seconds between looks at the stop flag while listening
RETRY_FIRST = 1.0
RETRY_MOST = 30.0


def conninfo(url: str) -> str:
    """A libpq connection string from a SQLAlchemy ``postgresql+psycopg://`` URL."""
    parsed = make_url(url)
    args = parsed.translate_connect_args(username="user", database="dbname")
    query = {key: str(value) for key, value in parsed.query.items()}
    return make_conninfo(**{**query, **{k: str(v) for k, v in args.items()}})


class WakeListener:
    def __init__(self, url: str, doorbell: Doorbell) -> None:
        self._conninfo = conninfo(url)
        self._doorbell = doorbell
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="postroom-listen", daemon=True)
        self.listening = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=CHECK_EVERY * 3)

    def _run(self) -> None:
        delay = RETRY_FIRST
        told = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {WAKE_CHANNEL}")
                    self.listening.set()
                    if told:
                        logger.warning("listening for new mail again (LISTEN %s)", WAKE_CHANNEL)
                    delay, told = RETRY_FIRST, False
                    self._doorbell.ring()  # whatever was committed while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=CHECK_EVERY):
                            self._doorbell.ring()
            except psycopg.Error as exc:
                self.listening.clear()
                if not told:
                    told = True
                    logger.warning(
                        "cannot LISTEN for new mail (%s); workers poll meanwhile",
                        " ".join(str(exc).split()),
                    )
                self._stop.wait(delay)
                delay = min(RETRY_MOST, delay * 2)
