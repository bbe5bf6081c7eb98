"""Recipient rules of a broadcast: who is selected, and who of them gets a message.

Pure. The store streams every user as a :class:`Candidate`, ordered by address
(case-insensitively, users without one last), so that users sharing an address are
next to each other; :func:`decide` walks that stream once and holds nothing but the
previous address, whatever the number of users.

Rules:

- selected: ``--everyone``, a member of a chosen group, or a chosen user; and active,
  unless ``--inactive``. A user chosen by name who is inactive is reported (skipped,
  ``inactive``) rather than silently dropped.
- of the selected: no address → skipped ``no-address``; an address that does not
  parse → skipped ``invalid``; the same address (any case) as a user before →
  skipped ``duplicate``; else one message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from postroom.addresses import Address, parse_address
from postroom.broadcast.request import Audience
from postroom.errors import MessageError

NO_ADDRESS = "no-address"
INVALID = "invalid"
DUPLICATE = "duplicate"
INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A user as the fan-out sees it; ``done`` when a resumed job already handled it
    (``email`` is then the address it was handled with)."""

    user_id: int
    username: str
    email: str | None
    active: bool
    in_group: bool = False
    done: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """One selected user: the address to mail, or why not (``skipped``)."""

    user_id: int
    username: str
    address: str | None
    skipped: str | None = None
    smtputf8: bool = False

    @property
    def queued(self) -> bool:
        return self.skipped is None


def is_selected(audience: Audience, candidate: Candidate) -> bool:
    """Whether the audience reaches this user at all (active or not)."""
    return audience.everyone or candidate.in_group or candidate.user_id in audience.user_ids


def selected(audience: Audience, candidates: Iterable[Candidate]) -> Iterator[Candidate]:
    """The users a broadcast is for: reached by the audience, and active unless
    ``--inactive`` (or chosen by name: :func:`decide` reports those as inactive)."""
    for candidate in candidates:
        if not is_selected(audience, candidate):
            continue
        if candidate.active or audience.include_inactive or candidate.user_id in audience.user_ids:
            yield candidate


def decide(
    audience: Audience,
    candidates: Iterable[Candidate],
    *,
    parse: Callable[[str], Address] = parse_address,
) -> Iterator[Decision]:
    """The decision for every selected user not ``done`` yet, in the stream's order.
    ``parse`` checks an address (an :class:`~postroom.broadcast.checker.AddressChecker`'s
    gives the same answers as the default, faster)."""
    previous: str | None = None
    for candidate in selected(audience, candidates):
        if not candidate.active and not audience.include_inactive:
            if not candidate.done:
                yield Decision(candidate.user_id, candidate.username, candidate.email, INACTIVE)
            continue
        if not candidate.email or not candidate.email.strip():
            if not candidate.done:
                yield Decision(candidate.user_id, candidate.username, None, NO_ADDRESS)
            continue
        try:
            parsed = parse(candidate.email.strip())
        except MessageError:
            if not candidate.done:
                yield Decision(candidate.user_id, candidate.username, candidate.email, INVALID)
            continue
        key = parsed.addr_spec.lower()
        repeated = key == previous
        previous = key
        if candidate.done:
            continue
        if repeated:
            yield Decision(candidate.user_id, candidate.username, parsed.addr_spec, DUPLICATE)
        else:
            yield Decision(
                candidate.user_id, candidate.username, parsed.addr_spec, smtputf8=parsed.smtputf8
            )


@dataclass
class Tally:
    """Counts of decisions, and who was skipped, for a report."""

    total: int = 0
    queued: int = 0
    duplicate: int = 0
    no_address: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (username, address)
    inactive: list[str] = field(default_factory=list)

    def add(self, decision: Decision) -> None:
        self.total += 1
        if decision.skipped is None:
            self.queued += 1
        elif decision.skipped == NO_ADDRESS:
            self.no_address.append(decision.username)
        elif decision.skipped == INVALID:
            self.invalid.append((decision.username, decision.address or ""))
        elif decision.skipped == DUPLICATE:
            self.duplicate += 1
        elif decision.skipped == INACTIVE:
            self.inactive.append(decision.username)
