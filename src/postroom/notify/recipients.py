"""Who gets an event's mail: pure rules over the directory's answers (DESIGN §6).

:func:`audience` names the candidates of an event; :func:`select` applies the rules
every type shares: the actor never gets their own notification, inactive users and
users without an address are skipped and counted, opted-out users are skipped, and
each address gets one mail however many roles it holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from postroom.notify.payloads import (
    CommentEvent,
    LoginFailed,
    MessageEvent,
    PasswordReset,
    Payload,
    ReviewEvent,
)
from postroom.store.directory_queries import User

# @name in a comment: not inside a word or an address (a@b.org mentions no one).
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_][\w.-]*)")


def mentions(text: str) -> list[str]:
    """Usernames @mentioned in ``text``, in order, each once."""
    seen: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        seen.setdefault(match.group(1).rstrip(".-"), None)
    return list(seen)


@dataclass(frozen=True, slots=True)
class Lookup:
    """The directory as the rules see it (the notifier fills it from the database)."""

    users: Callable[[Iterable[str]], dict[str, User]]
    admins: Callable[[], list[User]]
    participants: Callable[[str], list[User]]
    user_with_email: Callable[[str], User | None]
    mail_admins: tuple[str, ...] = ()
    login_users: tuple[str, ...] = ("all",)
    login_notify_admins: bool = True
    login_notify_user: bool = True


@dataclass(slots=True)
class Audience:
    """Candidates before the shared rules: directory users, and plain addresses."""

    people: list[User] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    fallback: bool = False  # no recipient could be determined: admins + mail.admins, one mail
    unknown: int = 0  # usernames the event named that the directory does not know


def _admins(lookup: Lookup) -> Audience:
    return Audience(people=lookup.admins(), addresses=list(lookup.mail_admins))


def _named(lookup: Lookup, names: Sequence[str | None]) -> Audience:
    wanted = [n for n in names if n]
    found = lookup.users(wanted)
    return Audience(
        people=[found[n] for n in wanted if n in found],
        unknown=len({n for n in wanted if n not in found}),
    )


def _fallback(lookup: Lookup, unknown: int = 0) -> Audience:
    audience = _admins(lookup)
    audience.fallback = True
    audience.unknown = unknown
    return audience


def named_users(event: str, payload: Payload) -> list[str | None]:
    """The usernames an event's payload names as possible recipients, in order."""
    if isinstance(payload, LoginFailed):
        return [payload.user]
    if isinstance(payload, CommentEvent):
        return [payload.object.owner, *mentions(payload.text)]
    if isinstance(payload, ReviewEvent):
        if event in {"pull_request.created", "pull_request.reviewers_added"}:
            names: list[str | None] = list(payload.reviewers)
        else:  # changeset.comment, pull_request.comment
            names = [payload.object.owner, *payload.reviewers]
        return names + list(mentions(payload.text))
    return []


def audience(event: str, payload: Payload, lookup: Lookup) -> Audience:
    """The candidates of one event, by its type's rule."""
    if event in {"server.up", "server.down", "user.created", "user.registered", "group.created"}:
        return _admins(lookup)
    if isinstance(payload, LoginFailed):
        watched = "all" in lookup.login_users or payload.user in lookup.login_users
        if not watched:
            return Audience()
        result = _admins(lookup) if lookup.login_notify_admins else Audience()
        if lookup.login_notify_user:
            result.people += _named(lookup, [payload.user]).people
        return result
    if isinstance(payload, PasswordReset):
        user = lookup.user_with_email(payload.email)
        return Audience(people=[user] if user is not None else [])
    if isinstance(payload, MessageEvent):
        if not payload.to:
            return _fallback(lookup)
        return Audience(addresses=list(payload.to))
    if isinstance(payload, CommentEvent | ReviewEvent):
        result = _named(lookup, named_users(event, payload))
        if event in {"changeset.comment", "pull_request.comment"}:
            result.people += lookup.participants(payload.object.thread)
        if not result.people and result.unknown:
            return _fallback(lookup, result.unknown)
        return result
    raise AssertionError(f"no recipient rule for {event}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    user: User | None  # None: a plain address (mail.admins, message's to)


@dataclass(slots=True)
class Selection:
    recipients: list[Recipient] = field(default_factory=list)
    inactive: int = 0
    no_address: int = 0
    opted_out: int = 0


def select(
    candidates: Audience,
    *,
    actor: User | None,
    actor_name: str | None,
    opted_out: set[int],
) -> Selection:
    """Apply the shared rules to ``candidates``, in order, each address once."""
    result = Selection()
    seen_users: set[int] = set()
    seen_addresses: set[str] = set()
    for user in candidates.people:
        if user.id in seen_users:
            continue
        seen_users.add(user.id)
        if (actor is not None and user.id == actor.id) or (
            actor is None and actor_name is not None and user.username == actor_name
        ):
            continue
        if not user.active:
            result.inactive += 1
        elif not user.email:
            result.no_address += 1
        elif user.id in opted_out:
            result.opted_out += 1
        elif user.email.lower() not in seen_addresses:
            seen_addresses.add(user.email.lower())
            result.recipients.append(Recipient(user.email, user))
    for address in candidates.addresses:
        if address.lower() not in seen_addresses:
            seen_addresses.add(address.lower())
            result.recipients.append(Recipient(address, None))
    return result
