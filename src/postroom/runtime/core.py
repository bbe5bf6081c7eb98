"""``Runtime``: one deployment's moving parts in this process, wired once.

The CLI's ``worker`` and ``serve`` and the HTTP service all start delivery through
here: the library (:class:`~postroom.app.Postroom`: engine, outbox, directory,
broadcasts), the delivery worker with its doorbell, the PostgreSQL listener that
rings it for mail committed elsewhere, the worker's status row, and housekeeping.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from postroom.app import Postroom
from postroom.delivery.doorbell import Doorbell
from postroom.delivery.events import WorkerEvents
from postroom.delivery.results import RunStats
from postroom.delivery.worker import Worker
from postroom.errors import ConfigError, PostroomError
from postroom.runtime.settings import change_settings
from postroom.runtime.status import AllEvents, StatusEvents
from postroom.settings import Configuration, load
from postroom.store.engine import is_sqlite
from postroom.store.web import IdempotentAnswers, Sessions
from postroom.store.workers import WorkerRegistry

if TYPE_CHECKING:
    from postroom.runtime.listener import WakeListener

logger = logging.getLogger("postroom.worker")

#: How often housekeeping drops expired sessions, old idempotency answers and the
#: rows of workers long gone.
TIDY_EVERY = 600.0
#: How often a worker sends digests whose window closed and checks heartbeats.
NOTIFY_EVERY = 5.0
#: How long a clean stop waits for its server.down mail to be handed on.
DOWN_MAIL_WAIT = 10.0
#: How long an answer to an Idempotency-Key is remembered.
IDEMPOTENCY_KEPT = 24 * 3600.0


class Runtime:
    """Built from a checked :class:`Configuration`; ``close()`` (or ``with``) releases it."""

    def __init__(
        self,
        config: Configuration,
        *,
        events: Sequence[WorkerEvents] = (),
        flags: Mapping[str, str] | None = None,
    ) -> None:
        """``flags``: the command-line settings ``config`` was loaded with, kept over a
        :meth:`reload`."""
        self.config = config
        self._flags = dict(flags or {})
        self.doorbell = Doorbell()
        self.postroom = Postroom(config=config, on_due=self.doorbell.ring)
        self._events = tuple(events)
        self._worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._stats: RunStats | None = None
        self._listener: WakeListener | None = None
        self._tidied = 0.0
        self._notified = 0.0

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- delivery --------------------------------------------------------------------

    def add_events(self, listener: WorkerEvents) -> None:
        """Let ``listener`` hear the worker's news too (before the worker is built)."""
        if self._worker is not None:
            raise RuntimeError("add event listeners before the worker is built")
        self._events = (*self._events, listener)

    def worker(self, *, concurrency: int | None = None) -> Worker:
        """The delivery worker of this process (built on first use)."""
        if self._worker is None:
            postroom = self.postroom
            self._worker = Worker(
                self.config,
                postroom.outbox,
                concurrency=concurrency,
                housekeeping=self._housekeeping,
                doorbell=self.doorbell,
                events=AllEvents([StatusEvents(WorkerRegistry(postroom.engine)), *self._events]),
            )
            self._listen()
        return self._worker

    def start_delivery(self, *, concurrency: int | None = None) -> Worker:
        """Run the worker on a thread of its own until :meth:`stop_delivery`."""
        worker = self.worker(concurrency=concurrency)
        if self._thread is None:

            def deliver() -> None:
                self._stats = worker.run()

            self._thread = threading.Thread(target=deliver, name="postroom-worker")
            self._thread.start()
        return worker

    def stop_delivery(self) -> RunStats | None:
        """Finish what is in flight, record it, give the rest back; None if not running."""
        if self._worker is None or self._thread is None:
            return None
        self._worker.stop()
        self._thread.join()
        self._thread = None
        return self._stats

    def _listen(self) -> None:
        """On PostgreSQL, wake for mail committed by other processes and machines."""
        engine = self.postroom.engine
        if is_sqlite(engine) or self._listener is not None:
            return
        from postroom.runtime.listener import WakeListener  # psycopg: PostgreSQL only

        listener = WakeListener(engine.url.render_as_string(hide_password=False), self.doorbell)
        listener.start()
        self._listener = listener

    def _housekeeping(self) -> None:
        self.postroom.broadcasts.housekeeping()
        now = time.time()
        if now - self._notified >= NOTIFY_EVERY:
            self._notified = now
            self.postroom.notifications.tick(now)
            self.postroom.error_reports.flush_due(now)
        if now - self._tidied >= TIDY_EVERY:
            self._tidied = now
            engine = self.postroom.engine
            Sessions(engine).purge(now=now)
            IdempotentAnswers(engine).purge(older_than=now - IDEMPOTENCY_KEPT)
            WorkerRegistry(engine).forget_silent(now=now)

    # -- notifications ----------------------------------------------------------------

    def check_templates(self) -> None:
        """Refuse to start with a template that would fail (unknown variable, syntax)."""
        problems = self.postroom.notifications.templates.check()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(
                f"notification template {problems[0]}{more}",
                fix="fix the file in HOME/templates, or remove it to use the shipped one; "
                "`postroom templates check` lists every problem",
            )

    def server_event(self, event: str) -> list[int]:
        """server.up or server.down for this service; a failure is logged, not raised."""
        name = f"postroom on {socket.gethostname()}"
        try:
            result = self.postroom.notifications.emit(event, data={"name": name})
        except (PostroomError, SQLAlchemyError):
            logger.exception("could not queue %s", event)
            return []
        return result.ids

    def wait_sent(self, ids: Sequence[int], timeout: float = DOWN_MAIL_WAIT) -> bool:
        """Wait (bounded) until the worker has handed ``ids`` on: server.down at a clean
        stop goes out before the worker stops, when the mail server allows."""
        if not ids or self._worker is None:
            return not ids
        deadline = time.monotonic() + timeout
        outbox = self.postroom.outbox
        while time.monotonic() < deadline:
            if not outbox.waiting(ids):
                return True
            self.doorbell.ring()
            time.sleep(0.05)  # a shutdown's bounded wait, not synchronisation in a test
        return False

    # -- settings while running ----------------------------------------------------

    def reload(self) -> Configuration:
        """Read the settings again (file and environment, this run's flags on top) and
        apply mail.* at once: new messages compose with it, and delivery opens new
        connections with it. Other keys apply when the process starts again."""
        config = load(self.config.home, flags=self._flags)
        self.config = config
        self.postroom.reconfigure(config)
        if self._worker is not None:
            self._worker.reconfigure(config)
        return config

    def update_settings(
        self, *, set_values: Mapping[str, str] | None = None, unset: Sequence[str] = ()
    ) -> Configuration:
        """``postroom config set/unset`` for a running service: postroom.toml is
        written all or nothing (a ConfigError names the key and the fix), then reloaded."""
        change_settings(self.config.home, set_values=set_values, unset=unset)
        return self.reload()

    def recording_switchable(self) -> tuple[bool, str]:
        """Whether the console may switch recording mode, and if not, why."""
        for key in ("mail.transport", "mail.enabled"):
            if self.config.sources[key] == "env":
                env = "POSTROOM_" + key.upper().replace(".", "_")
                return False, f"{key} is set by {env}; change the environment and restart"
        return True, ""

    def set_recording(self, on: bool) -> str | None:
        """Recording mode on (mail kept in the mail record) or off (delivered by SMTP).
        A key this run took from the command line (``serve --catch``) changes for this
        run only; otherwise postroom.toml changes. Returns why not, or None."""
        allowed, why = self.recording_switchable()
        if not allowed:
            return why
        wanted = {"mail.transport": "capture" if on else "smtp"}
        if on:
            wanted["mail.enabled"] = "true"
        in_file = {k: v for k, v in wanted.items() if self.config.sources[k] != "flag"}
        try:
            if in_file:
                change_settings(self.config.home, set_values=in_file)
        except ConfigError as exc:
            return str(exc)
        self._flags.update({k: v for k, v in wanted.items() if k not in in_file})
        self.reload()
        return None

    # -- the end ---------------------------------------------------------------------

    def close(self) -> None:
        self.stop_delivery()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self.postroom.close()
