"""``Broadcasts``: admin email as a durable job (DESIGN §5).

``submit`` checks the request, commits the job row (``fanning-out``) with the cc/bcc
copies, then fans out: users stream from the directory in address order, the pure
rules of :mod:`postroom.broadcast.recipients` decide, and every chunk of
:data:`CHUNK` messages commits together with its recipients' links. When ``submit``
returns, every message is in the outbox: the admin can close the terminal.

A fan-out that dies (killed, machine down) leaves its job ``fanning-out`` with a lease
that expires after :data:`LEASE` seconds; ``resume`` (``postroom broadcast resume``)
or any delivery worker then finishes it, skipping users already linked.
"""

from __future__ import annotations

import builtins
import os
import socket
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from postroom.addresses import Address
from postroom.broadcast.body import html_to_text
from postroom.broadcast.checker import AddressChecker
from postroom.broadcast.pacing import due_times
from postroom.broadcast.recipients import (
    DUPLICATE,
    INACTIVE,
    INVALID,
    NO_ADDRESS,
    Candidate,
    Decision,
    decide,
    selected,
)
from postroom.broadcast.request import (
    BROADCAST_TYPE,
    Audience,
    BroadcastRequest,
    Copies,
    check_request,
)
from postroom.errors import BroadcastError
from postroom.message import ComposedMessage, ComposePolicy, OutgoingMessage, compose
from postroom.message.personal import PersonalCopies
from postroom.settings.values import parse_rate
from postroom.store import broadcast_queries as queries
from postroom.store.broadcast_queries import BroadcastDetail, BroadcastSummary
from postroom.store.broadcasts import BroadcastStore, CandidateRow, JobRow, Link, NewBroadcast
from postroom.store.directory_schema import FANNING_OUT
from postroom.store.engine import reading
from postroom.store.records import NewMessage
from postroom.users import Users

CHUNK = 1000  # messages (and links) committed per transaction
LEASE = 60.0  # seconds a fan-out holds its job between chunks; then another may take it
DONE_CHECK_EVERY = 60.0  # seconds between housekeeping's checks for finished jobs

Progress = Callable[[int], None]  # users handled so far


@dataclass(frozen=True, slots=True)
class BroadcastReport:
    """What ``admin email`` prints: ``Queued S of T emails`` and who got nothing."""

    id: int
    created: bool  # False: the idempotency key matched an earlier job, this is that one
    status: str
    total: int
    queued: int
    copies: int
    no_address: tuple[str, ...] = ()
    invalid: tuple[tuple[str, str], ...] = ()  # (username, address)
    inactive: tuple[str, ...] = ()
    duplicates: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "status": self.status,
            "total": self.total,
            "queued": self.queued,
            "copies": self.copies,
            "without_address": list(self.no_address),
            "invalid_addresses": [{"user": u, "address": a} for u, a in self.invalid],
            "inactive": list(self.inactive),
            "duplicates": self.duplicates,
        }


class Broadcasts:
    """Broadcast jobs: submit, preview, resume, cancel, look at."""

    def __init__(self, engine: Engine, policy: ComposePolicy, users: Users) -> None:
        self.engine = engine
        self.policy = policy
        self.users = users
        self.store = BroadcastStore(engine)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._done_checked = 0.0

    # -- planning --------------------------------------------------------------------

    def audience(self, request: BroadcastRequest) -> Audience:
        """Names and ids checked against the directory; unknown ones are one error."""
        groups: list[str | int] = [*request.group_names, *request.group_ids]
        people: list[str | int] = [*request.user_names, *request.user_ids]
        group_ids = self.users.group_ids(groups) if groups else []
        user_ids = self.users.user_ids(people) if people else []
        return Audience(
            everyone=request.everyone,
            group_ids=frozenset(group_ids),
            user_ids=frozenset(user_ids),
            include_inactive=request.include_inactive,
        )

    def count(self, request: BroadcastRequest) -> int:
        """Users the broadcast is for (T of ``Queued S of T``), without checking
        addresses: for the confirmation asked above 100 recipients."""
        check_request(request)
        audience = self.audience(request)
        with self._candidates(None, audience, cutoff=time.time()) as stream:
            return sum(1 for _ in selected(audience, stream))

    def preview(self, request: BroadcastRequest) -> Iterator[Decision]:
        """``--dry-run``: every decision, in order; nothing is written."""
        check_request(request)
        audience = self.audience(request)
        self._probe(request)
        with self._candidates(None, audience, cutoff=time.time()) as stream:
            yield from decide(audience, stream)

    # -- submitting and fanning out --------------------------------------------------

    def submit(
        self,
        request: BroadcastRequest,
        *,
        progress: Progress | None = None,
        fan_out: bool = True,
    ) -> BroadcastReport:
        """Commit the job and all its messages; return the report.

        Refused before anything is stored: blank subject or body, unknown users or
        groups, bad cc/bcc addresses or rate, a message that cannot be composed, and a
        broadcast nobody selected could receive. With ``fan_out=False`` only the job is
        committed (status fanning-out, leased to this process): the caller finishes it
        with :meth:`resume` (``force=False``), or any worker does once the lease ends.
        """
        copies, rate = check_request(request)
        audience = self.audience(request)
        text, html = _bodies(request.body, request.html)
        self._probe(request)
        if not copies.count:
            self._check_someone(audience)
        now = time.time()
        job = NewBroadcast(
            subject=request.subject.strip(),
            body=request.body,
            html=request.html,
            type=BROADCAST_TYPE,
            audience=audience.dumps(),
            cc=copies.cc,
            bcc=copies.bcc,
            rate=str(rate) if rate else None,
            idempotency_key=request.idempotency_key,
            created_by=request.created_by,
        )
        broadcast_id, created = self.store.create(
            job,
            self._copies(job.subject, text, html, copies),
            owner=self.owner,
            lease=LEASE,
            now=now,
        )
        if not fan_out:
            pass
        elif created:
            self._fan_out(broadcast_id, progress=progress)
        else:
            known = self.store.load(broadcast_id)
            if known and known.status == FANNING_OUT and self._take(broadcast_id, force=False):
                self._fan_out(broadcast_id, progress=progress)
        return self.report(broadcast_id, created=created)

    def resume(
        self, broadcast_id: int, *, force: bool = True, progress: Progress | None = None
    ) -> BroadcastReport:
        """Finish a job still fanning out. ``force`` takes it even from a live lease:
        safe, since its holder's next chunk then fails and stops it."""
        job = self.store.load(broadcast_id)
        if job is None:
            raise BroadcastError(f"no broadcast {broadcast_id}; see `postroom broadcast list`")
        if job.status == FANNING_OUT:
            if not self._take(broadcast_id, force=force):
                raise BroadcastError(
                    f"broadcast {broadcast_id} is being fanned out by {job.lease_owner}; "
                    "resume with force to take it over"
                )
            self._fan_out(broadcast_id, progress=progress, resumed=True)
        return self.report(broadcast_id, created=False)

    def housekeeping(self, now: float | None = None) -> builtins.list[int]:
        """For delivery workers, each poll: finish jobs whose fan-out died (lease
        expired); now and then mark jobs with nothing left to send done."""
        now = time.time() if now is None else now
        resumed = []
        for broadcast_id in self.store.stalled(now=now):
            if self._take(broadcast_id, force=False, now=now):
                self._fan_out(broadcast_id, resumed=True)
                resumed.append(broadcast_id)
        if now - self._done_checked >= DONE_CHECK_EVERY:
            self._done_checked = now
            self.store.mark_done(now=now)
        return resumed

    def cancel(self, broadcast_id: int) -> int:
        """Cancel a job: messages not sent yet are held (``outbox purge --status held``
        removes them). Returns how many were held."""
        held = self.store.cancel(broadcast_id, now=time.time())
        if held is None:
            found = self.store.load(broadcast_id)
            if found is None:
                raise BroadcastError(f"no broadcast {broadcast_id}; see `postroom broadcast list`")
            raise BroadcastError(f"broadcast {broadcast_id} is {found.status}; nothing to cancel")
        return held

    # -- reading ---------------------------------------------------------------------

    def get(self, broadcast_id: int) -> BroadcastDetail:
        found = queries.get_broadcast(self.engine, broadcast_id)
        if found is None:
            raise BroadcastError(f"no broadcast {broadcast_id}; see `postroom broadcast list`")
        return found

    def list(self, *, limit: int = 50) -> builtins.list[BroadcastSummary]:
        return queries.list_broadcasts(self.engine, limit=limit)

    def report(self, broadcast_id: int, *, created: bool) -> BroadcastReport:
        detail = self.get(broadcast_id)
        summary = detail.summary
        return BroadcastReport(
            id=broadcast_id,
            created=created,
            status=summary.status,
            total=summary.total,
            queued=summary.queued,
            copies=summary.copies,
            no_address=tuple(s.username for s in detail.by_reason(NO_ADDRESS)),
            invalid=tuple((s.username, s.address or "") for s in detail.by_reason(INVALID)),
            inactive=tuple(s.username for s in detail.by_reason(INACTIVE)),
            duplicates=len(detail.by_reason(DUPLICATE)),
        )

    # -- internals -------------------------------------------------------------------

    def _take(self, broadcast_id: int, *, force: bool, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return self.store.take(broadcast_id, self.owner, lease=LEASE, now=now, force=force)

    def _fan_out(
        self, broadcast_id: int, *, progress: Progress | None = None, resumed: bool = False
    ) -> None:
        for attempt in range(1, 4):
            job = self.store.load(broadcast_id)
            if job is None or job.status != FANNING_OUT:
                return
            try:
                if self._fan_out_once(job, progress=progress, resumed=resumed):
                    self.store.finish(broadcast_id, self.owner, now=time.time())
                return
            except IntegrityError:
                # A chunk met links another process committed after our snapshot began:
                # nothing of the chunk was stored; read again and carry on from there.
                if attempt == 3:
                    raise
                resumed = True

    def _fan_out_once(self, job: JobRow, *, progress: Progress | None, resumed: bool) -> bool:
        """One pass over the users; False when the job was cancelled or taken over."""
        audience = Audience.loads(job.audience)
        rate = parse_rate(job.rate) if job.rate else None
        text, html = _bodies(job.body, job.html)
        resumed_at = time.time() if resumed else None
        next_index = job.queued
        handled = 0
        copies = PersonalCopies(
            OutgoingMessage(
                subject=job.subject, text=text, html=html, type=BROADCAST_TYPE, automatic=True
            ),
            self.policy,
        )
        with self._candidates(job.id, audience, cutoff=job.created_at) as stream:
            decisions = decide(audience, stream, parse=AddressChecker().parse)
            for chunk in _chunks(decisions, CHUNK):
                new = [
                    _new_message(copies.copy_for(Address(d.address or "", smtputf8=d.smtputf8)))
                    for d in chunk
                    if d.queued
                ]
                due = due_times(
                    rate,
                    start=job.created_at,
                    first=next_index,
                    count=len(new),
                    resumed_at=resumed_at,
                    resumed_from=job.queued,
                )
                links = [Link(d.user_id, "user", d.address, d.skipped) for d in chunk]
                if not self.store.write_chunk(
                    job.id,
                    self.owner,
                    lease=LEASE,
                    now=time.time(),
                    links=links,
                    messages_=new,
                    due=due,
                ):
                    return False
                next_index += len(new)
                handled += len(chunk)
                if progress is not None:
                    progress(handled)
        return True

    def _candidates(
        self, broadcast_id: int | None, audience: Audience, *, cutoff: float
    ) -> _Stream:
        return _Stream(self, broadcast_id, audience, cutoff)

    def _check_someone(self, audience: Audience) -> None:
        """Refuse a broadcast that would reach nobody, naming who had no address."""
        tally: dict[str, list[str]] = {}
        total = 0
        with self._candidates(None, audience, cutoff=time.time()) as stream:
            for decision in decide(audience, stream):
                if decision.queued:
                    return
                total += 1
                tally.setdefault(decision.skipped or "", []).append(decision.username)
        if not total:
            raise BroadcastError("no recipients: nobody is selected (are the users active?)")
        words = {NO_ADDRESS: "without an address", INVALID: "invalid address", INACTIVE: "inactive"}
        parts = [
            f"{words.get(reason, reason)}: {', '.join(names[:10])}"
            + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            for reason, names in sorted(tally.items())
        ]
        raise BroadcastError(
            f"no recipients: none of the {total} user(s) selected has a usable address "
            f"({'; '.join(parts)}); set one with `postroom user update USER email=ADDRESS`"
        )

    def _probe(self, request: BroadcastRequest) -> None:
        """Compose once, so a message that cannot be made fails before any job exists."""
        text, html = _bodies(request.body, request.html)
        self._compose(request.subject.strip(), text, html, to=("postroom-probe@example.org",))

    def _compose(
        self,
        subject: str,
        text: str,
        html: str | None,
        *,
        to: tuple[str, ...] = (),
        cc: tuple[str, ...] = (),
        bcc: tuple[str, ...] = (),
    ) -> ComposedMessage:
        outgoing = OutgoingMessage(
            to=to,
            cc=cc,
            bcc=bcc,
            subject=subject,
            text=text,
            html=html,
            type=BROADCAST_TYPE,
            automatic=True,
        )
        return compose(outgoing, self.policy)

    def _copies(
        self, subject: str, text: str, html: str | None, copies: Copies
    ) -> builtins.list[tuple[NewMessage, builtins.list[Link]]]:
        """One message for all --cc addresses (shown in Cc), one per --bcc address (in
        the envelope only: no header names it)."""
        made = []
        if copies.cc:
            composed = self._compose(subject, text, html, cc=copies.cc)
            made.append((_new_message(composed), [Link(None, "cc", a) for a in copies.cc]))
        for address in copies.bcc:
            composed = self._compose(subject, text, html, bcc=(address,))
            made.append((_new_message(composed), [Link(None, "bcc", address)]))
        return made


class _Stream:
    """The candidate users of one pass, on a read connection held for the pass."""

    def __init__(
        self, owner: Broadcasts, broadcast_id: int | None, audience: Audience, cutoff: float
    ) -> None:
        self._owner = owner
        self._args = (broadcast_id, audience, cutoff)
        self._connection: Connection | None = None
        self._rows: Generator[CandidateRow, None, None] | None = None

    def __enter__(self) -> Iterator[Candidate]:
        broadcast_id, audience, cutoff = self._args
        self._connection = reading(self._owner.engine.connect())
        rows = self._rows = self._owner.store.candidates(
            self._connection,
            broadcast_id if broadcast_id is not None else -1,
            group_ids=sorted(audience.group_ids),
            user_ids=sorted(audience.user_ids),
            everyone=audience.everyone,
            cutoff=cutoff,
        )
        return (
            Candidate(r.user_id, r.username, r.email, r.active, r.in_group, r.done) for r in rows
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._rows is not None:
            self._rows.close()
        if self._connection is not None:
            self._connection.close()


def _bodies(body: str, is_html: bool) -> tuple[str, str | None]:
    return (html_to_text(body), body) if is_html else (body, None)


def _new_message(composed: ComposedMessage) -> NewMessage:
    return NewMessage.from_composed(composed, type=BROADCAST_TYPE)


def _chunks(decisions: Iterable[Decision], size: int) -> Iterator[Sequence[Decision]]:
    chunk: list[Decision] = []
    for decision in decisions:
        chunk.append(decision)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
