"""The delivery worker: claims due messages, sends them, records every attempt.

Each of ``concurrency`` threads owns one transport (one SMTP connection that carries
many messages) and loops: claim a batch under a lease, send, record the results in a
few transactions, repeat. ``stop()`` (SIGTERM) lets each thread finish the message in
flight, record it, and give the rest of its batch back to the queue. A worker that is
killed leaves leases that expire by themselves; another worker then takes the mail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from sqlalchemy.exc import DBAPIError

from postroom.delivery.doorbell import Doorbell
from postroom.delivery.events import WorkerEvents
from postroom.delivery.journal import Journal, replay_orphans
from postroom.delivery.outage import DatabaseOutage
from postroom.delivery.pause import Pause
from postroom.delivery.policy import RetryPolicy, decide
from postroom.delivery.ratelimit import SharedPace
from postroom.delivery.results import Feed, Results, RunStats
from postroom.errors import TransportConfigError, TransportError
from postroom.message.envelope import Envelope
from postroom.settings import Configuration
from postroom.store.outbox import Outbox
from postroom.store.pacing import give_back_slots, reserve_slots
from postroom.store.records import ClaimedMessage, MessageOutcome
from postroom.transport import SendResult, Transport, build_transport

logger = logging.getLogger("postroom.worker")

#: A message whose data is held back until the next one's commands (pipelining) is
#: sent on its own instead when the rate limit would hold it longer than this.
LONGEST_PIPELINE_WAIT = 0.5
#: The row of the rate_limits table that delivery.rate_limit is kept in.
RATE_LIMIT_NAME = "delivery"


class Worker:
    def __init__(
        self,
        config: Configuration,
        outbox: Outbox,
        *,
        concurrency: int | None = None,
        transport_factory: Callable[[], Transport] | None = None,
        housekeeping: Callable[[], object] | None = None,
        doorbell: Doorbell | None = None,
        events: WorkerEvents | None = None,
    ) -> None:
        """``housekeeping`` runs before delivery starts and then once a poll interval
        (features hook in here: finishing broadcasts whose fan-out died). An idle
        thread waits for ``doorbell`` to ring, at most a poll interval. ``events``
        hears of starts, pauses and recorded outcomes."""
        delivery = config.settings.delivery
        self.config = config
        self.outbox = outbox
        self.concurrency = concurrency or delivery.concurrency
        self.batch_size = delivery.batch_size
        self.lease = delivery.lease
        self.poll_interval = delivery.poll_interval
        self.policy = RetryPolicy.from_settings(delivery)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._factory = transport_factory or (
            lambda: build_transport(self.config.settings, self.config.home)
        )
        self._generation = 0  # bumped by reconfigure(): threads then open new transports
        self._rate = delivery.rate_limit
        self._stop = threading.Event()
        self._housekeeping = housekeeping
        self._housekept_at = float("-inf")
        self.doorbell = doorbell or Doorbell()
        self.events = events or WorkerEvents()
        self.stats = RunStats()
        self.pause = Pause(self.name, self.events, self.stats, self.policy.backoff_max)
        self.outage = DatabaseOutage(self.record, self._stop, self.poll_interval, self.stats)
        self._journal_dir = config.home.journal_dir
        self._journals: dict[str, Journal] = {}  # by owner (delivery thread)
        self._replaying = threading.Lock()

    # -- control ---------------------------------------------------------------------

    def stop(self) -> None:
        """Finish what is in flight, give the rest back, then return from run()."""
        self._stop.set()
        self.doorbell.ring()

    def reconfigure(self, config: Configuration) -> None:
        """Use ``config``'s mail.* from the next connection on, and end a pause now
        (the fault it waited out may be what the change fixed). Other settings of the
        worker (delivery.*) keep their values until it starts again."""
        self.config = config
        self._generation += 1
        self.pause.end()
        self.doorbell.ring()

    def run(self, *, once: bool = False) -> RunStats:
        """Deliver until stopped; with ``once``, until nothing is due, then return."""
        self.events.started(self.name)
        try:
            return self._run(once)
        finally:
            self.events.stopped(self.name)

    def _run(self, once: bool) -> RunStats:
        self._housekeep()
        threads = [
            threading.Thread(target=self._loop, args=(index, once), name=f"postroom-send-{index}")
            for index in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        # Join with a timeout so the main thread stays responsive to signals.
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.2)
        return self.stats

    # -- one connection --------------------------------------------------------------

    def _loop(self, index: int, once: bool) -> None:
        owner = f"{self.name}:{index}"
        transport: Transport | None = None
        rng = random.Random()
        idle_since = time.monotonic()
        pace = self._new_pace()
        generation = self._generation
        journal = self._journals[owner] = Journal(self._journal_dir, owner)
        try:
            while not self._stop.is_set():
                if self.pause.wait_out(once, self._stop):
                    break
                if index == 0:
                    self._housekeep()
                rings = self.doorbell.rings
                try:
                    # Results held through a database outage, and those a dead worker
                    # journaled, go in before anything new is claimed or sent: none is
                    # dropped, so none is sent twice.
                    if self.outage.holds(owner):
                        self.outage.record_kept(owner)
                    with self._replaying:  # no thread claims while another replays
                        replay_orphans(self._journal_dir, self._replay)
                    batch = self.outbox.claim(
                        owner, limit=self.batch_size, lease_seconds=self.lease
                    )
                except DBAPIError as exc:
                    if self.outage.trouble(exc, once):
                        break
                    continue
                self.outage.back()
                if not batch:
                    if once:
                        break
                    if transport is not None and time.monotonic() - idle_since > 30:
                        transport.close()
                        transport = None
                    self.doorbell.wait(rings, self.poll_interval)
                    continue
                if generation != self._generation:
                    generation = self._generation
                    _close(transport)
                    transport = None
                try:
                    transport = self._deliver(owner, batch, transport, rng, pace)
                except DBAPIError as exc:
                    # Results not recorded go out again when their lease expires: the
                    # at-least-once window, never a loss.
                    if self.outage.trouble(exc, once):
                        break
                idle_since = time.monotonic()
        except Exception:
            logger.exception("delivery thread %s stopped by an unexpected error", owner)
            self.outbox.release(owner)
            raise
        finally:
            self.outage.last_record(owner)
            journal.close()
            if transport is not None:
                transport.close()
            if pace is not None:
                with contextlib.suppress(DBAPIError):
                    pace.close()

    def _new_pace(self) -> SharedPace | None:
        """This thread's share of delivery.rate_limit, reserved through the database."""
        if self._rate is None:
            return None
        engine = self.outbox.engine
        return SharedPace(
            self._rate,
            reserve=lambda count, interval, now: reserve_slots(
                engine, RATE_LIMIT_NAME, count=count, interval=interval, now=now
            ),
            give_back=lambda end, count, interval: give_back_slots(
                engine, RATE_LIMIT_NAME, end=end, count=count, interval=interval
            ),
        )

    def _deliver(
        self,
        owner: str,
        batch: list[ClaimedMessage],
        transport: Transport | None,
        rng: random.Random,
        pace: SharedPace | None = None,
    ) -> Transport | None:
        """Send one claimed batch; return the transport to reuse (None if closed).

        Messages go through ``send_many`` (pipelined over SMTP); results come back in
        order, so the i-th result belongs to the i-th message handed out. When the
        connection fails, the message it was on gets the error and the rest of the
        batch carries on over a fresh connection.
        """
        deadline = time.monotonic() + self.lease / 2
        results = Results(self.record, owner, self._journals.get(owner))
        # Every recipient already settled (an earlier attempt was recorded for all of
        # them but the message's own state was not): just close the books.
        todo = [m for m in batch if m.recipients]
        for message in batch:
            if not message.recipients:
                now = time.time()
                results.add(self._decide(message, SendResult(()), None, None, now, rng))
        try:
            position, transport = self._send_all(todo, transport, results, deadline, rng, pace)
            results.flush()
        except DBAPIError:
            # The results cannot be committed now: keep them (the loop commits them
            # before it claims anything new) and send nothing more of this batch. The
            # unsent rest goes out when its lease ends; nothing sent goes out again.
            self.outage.keep(owner, results.unrecorded)
            _close(transport)
            raise
        if position < len(todo):
            self.outbox.release(owner, [m.pk for m in todo[position:]])
        return transport

    def _send_all(
        self,
        todo: list[ClaimedMessage],
        transport: Transport | None,
        results: Results,
        deadline: float,
        rng: random.Random,
        pace: SharedPace | None,
    ) -> tuple[int, Transport | None]:
        """Send ``todo`` in order; return how many got a result, and the transport."""
        position = 0
        while position < len(todo):
            sendable = todo[position:]
            done = 0
            started = time.time()
            feed = Feed()
            try:
                if transport is None:
                    transport = self._factory()
                    transport.open()
                    self.pause.works()
                kind, policy = transport.outcome, self.policy
                for result in transport.send_many(self._items(sendable, deadline, pace, feed)):
                    now = time.time()
                    results.add(
                        decide(
                            sendable[done],
                            result=result,
                            outcome_kind=kind,
                            policy=policy,
                            started_at=started,
                            now=now,
                            rng=rng,
                        )
                    )
                    done += 1
                    started = time.time()
                position += done
                if done < len(sendable) and not feed.waits_for_slot:
                    break  # the items stopped early: stop, pause or deadline
            except DBAPIError:
                _close(transport)
                raise
            except TransportConfigError as exc:
                position += done
                self.pause.fault(exc)
                _close(transport)
                transport = None
                break
            except Exception as exc:
                # The connection is in doubt (refused, dropped, timed out) or the message
                # itself is at fault: this message gets the error; the next ones go on
                # over a fresh connection.
                failing = sendable[done]
                if not isinstance(exc, TransportError):
                    logger.warning("message %s failed: %s", failing.message_id, exc)
                outcome = self._decide(failing, None, exc, transport, started, rng)
                position += done + 1
                _close(transport)
                transport = None
                results.add(outcome)
        return position, transport

    def _items(
        self,
        messages: list[ClaimedMessage],
        deadline: float,
        pace: SharedPace | None,
        feed: Feed,
    ) -> Iterator[tuple[Envelope, bytes]]:
        stop, clock = self._stop, time.monotonic
        for index, message in enumerate(messages):
            now = clock()
            if stop.is_set() or now > deadline or now < self.pause.until:  # or paused
                return
            if pace is not None:
                # The message before this one waits with its data unsent until this
                # one goes (pipelining): for a long wait, end here so that it goes
                # now, and start again with nothing half-sent.
                if index and pace.wait_time() > LONGEST_PIPELINE_WAIT:
                    feed.waits_for_slot = True
                    return
                if not pace.acquire(self._stop):
                    return
            pending = message.recipients
            recipients = (
                (pending[0].address,) if len(pending) == 1 else tuple(r.address for r in pending)
            )
            yield Envelope(message.envelope_from, recipients, message.smtputf8), message.raw

    def _decide(
        self,
        message: ClaimedMessage,
        result: SendResult | None,
        error: BaseException | None,
        transport: Transport | None,
        started: float,
        rng: random.Random,
    ) -> MessageOutcome:
        return decide(
            message,
            result=result,
            error=error,
            outcome_kind=transport.outcome if transport is not None else "sent",
            policy=self.policy,
            started_at=started,
            now=time.time(),
            rng=rng,
        )

    def record(self, owner: str, outcomes: list[MessageOutcome]) -> None:
        if outcomes:
            self.outbox.record(owner, outcomes, worker=self.name)
            journal = self._journals.get(owner)
            if journal is not None:
                journal.clear()
            self.stats.count(outcomes)
            self.events.recorded(outcomes)

    def _replay(self, owner: str, worker: str, outcomes: list[MessageOutcome]) -> None:
        """Commit what a delivery thread that is gone had journaled, and give its other
        claimed messages back now rather than when their lease ends: it is dead (its
        journal was unlocked), so it cannot send them (see delivery/journal.py)."""
        if outcomes:
            self.outbox.record(owner, outcomes, worker=worker)
            self.events.recorded(outcomes)
        released = self.outbox.release(owner)
        if outcomes or released:
            logger.warning(
                "a worker stopped without finishing (%s): %d result(s) recorded from its "
                "journal, %d message(s) it held back in the queue",
                owner,
                len(outcomes),
                released,
            )

    def _housekeep(self) -> None:
        now = time.monotonic()
        if now - self._housekept_at < self.poll_interval:
            return
        self._housekept_at = now
        try:
            self.events.alive(self.name)
            if self._housekeeping is not None:
                self._housekeeping()
        except Exception:
            logger.exception("housekeeping failed; delivery goes on")


def _close(transport: Transport | None) -> None:
    if transport is not None:
        transport.close()
