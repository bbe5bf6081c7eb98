"""What an admin asks to broadcast, checked; and its audience once names became ids.

Pure: values in, checked values (or a BroadcastError / AddressError naming the fault
and the fix) out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from postroom.addresses import parse_address
from postroom.errors import BroadcastError, ConfigError
from postroom.settings.values import RateLimit, parse_rate

#: The notification type of broadcast mail (in the type header).
BROADCAST_TYPE = "broadcast"


@dataclass(frozen=True, slots=True, kw_only=True)
class BroadcastRequest:
    """``postroom admin email`` as arguments: who gets it, and what."""

    subject: str
    body: str
    html: bool = False
    everyone: bool = False
    group_names: tuple[str, ...] = ()
    group_ids: tuple[int, ...] = ()
    user_names: tuple[str, ...] = ()
    user_ids: tuple[int, ...] = ()
    include_inactive: bool = False
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    rate: str | None = None
    idempotency_key: str | None = None
    created_by: str = ""

    @property
    def names_anyone(self) -> bool:
        return bool(
            self.everyone or self.group_names or self.group_ids or self.user_names or self.user_ids
        )


@dataclass(frozen=True, slots=True)
class Copies:
    """The --cc and --bcc addresses, normalised, without repeats (cc wins over bcc)."""

    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Messages they take: one for all of cc, one per bcc address."""
        return (1 if self.cc else 0) + len(self.bcc)


def check_request(request: BroadcastRequest) -> tuple[Copies, RateLimit | None]:
    """Refuse a blank subject or body, no recipients, bad cc/bcc addresses or rate."""
    if not request.subject.strip():
        raise BroadcastError("the subject is blank; give the broadcast a subject")
    if not request.body.strip():
        raise BroadcastError(
            "the body is blank; give it as TEXT after the subject, or on standard input"
        )
    if not request.names_anyone:
        raise BroadcastError(
            "no recipients: give --everyone, --group-name/--group-id or --user-name/--user-id"
        )
    try:
        rate = parse_rate(request.rate) if request.rate else None
    except ValueError as exc:
        raise ConfigError(f"--rate: {exc}") from None
    return _copies(request.cc, request.bcc), rate


def _copies(cc: tuple[str, ...], bcc: tuple[str, ...]) -> Copies:
    seen: set[str] = set()
    lists: list[list[str]] = [[], []]
    for index, group in enumerate((cc, bcc)):
        for text in group:
            address = parse_address(text, allow_name=False).addr_spec
            if address.lower() not in seen:
                seen.add(address.lower())
                lists[index].append(address)
    return Copies(tuple(lists[0]), tuple(lists[1]))


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a broadcast is for, by id; stored with the job so a resume selects the same."""

    everyone: bool = False
    group_ids: frozenset[int] = field(default_factory=frozenset)
    user_ids: frozenset[int] = field(default_factory=frozenset)
    include_inactive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "everyone": self.everyone,
            "group_ids": sorted(self.group_ids),
            "user_ids": sorted(self.user_ids),
            "inactive": self.include_inactive,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Audience:
        data = json.loads(text)
        return cls(
            everyone=bool(data.get("everyone")),
            group_ids=frozenset(int(i) for i in data.get("group_ids", ())),
            user_ids=frozenset(int(i) for i in data.get("user_ids", ())),
            include_inactive=bool(data.get("inactive")),
        )
