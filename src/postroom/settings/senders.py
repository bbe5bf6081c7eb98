"""The notification types and their ``senders.*`` settings (OMERO's mail-senders.xml).

This is the one list of built-in event types: the glossary makes its keys from it,
and ``postroom.notify`` gives each entry its payload model and recipient rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any

from postroom.settings import kinds


@dataclass(frozen=True, slots=True)
class EventKind:
    """One built-in event type."""

    name: str  # what emit takes: comment.created
    header: str  # the value of mail.type_header (Kallithea's names)
    audience: str  # who gets it, in words (docs, `postroom emit --help`)
    opt_out: bool  # whether a user may switch it off (never for security mail)
    digest: bool  # whether senders.<type>.digest may gather it


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("server.up", "server_up", "admins", True, False),
    EventKind("server.down", "server_down", "admins", False, False),
    EventKind("login.failed", "login_failed", "admins and/or the user", False, False),
    EventKind("user.created", "registration", "admins", True, True),
    EventKind("user.registered", "registration", "admins", True, True),
    EventKind("group.created", "group_created", "admins", True, True),
    EventKind("comment.created", "comment", "the object's owner, not the commenter", True, True),
    EventKind(
        "changeset.comment",
        "cs_comment",
        "changeset author, reviewers and earlier commenters, not the commenter",
        True,
        True,
    ),
    EventKind("pull_request.created", "pull_request", "the reviewers", True, True),
    EventKind("pull_request.reviewers_added", "pull_request", "the new reviewers", True, True),
    EventKind(
        "pull_request.comment",
        "pull_request_comment",
        "owner, reviewers and earlier commenters, not the commenter",
        True,
        True,
    ),
    EventKind("password.reset", "password_reset", "the user the address belongs to", False, False),
    EventKind("message", "message", "given recipients, else admins and mail.admins", True, False),
)
EVENTS_BY_NAME: dict[str, EventKind] = {kind.name: kind for kind in EVENT_KINDS}

DIGEST_WINDOWS = ("off", "15m", "1h", "daily")


def _attribute(event: str, option: str) -> str:
    return event.replace(".", "_") + "__" + option


def _setting(default: Any, kind: kinds.Kind, description: str, key: str) -> Any:
    metadata = {"kind": kind, "description": description, "secret": False, "name": key}
    return field(default=default, metadata=metadata)


class SendersBase:
    """Typed access to the generated ``senders.*`` fields."""

    # Declared for type checkers; the generated dataclass holds the values.
    unsubscribe_mailto: str
    unsubscribe_lifetime: float

    def enabled(self, event: str) -> bool:
        return bool(getattr(self, _attribute(event, "enabled")))

    def digest(self, event: str) -> str:
        return str(getattr(self, _attribute(event, "digest"), "off"))

    def option(self, event: str, name: str) -> Any:
        return getattr(self, _attribute(event, name))


def _fields() -> list[tuple[str, Any, Any]]:
    made: list[tuple[str, Any, Any]] = []
    for event in EVENT_KINDS:
        made.append(
            (
                _attribute(event.name, "enabled"),
                bool,
                _setting(True, kinds.BOOL, f"Send {event.name} mail.", f"{event.name}.enabled"),
            )
        )
        if event.digest:
            made.append(
                (
                    _attribute(event.name, "digest"),
                    str,
                    _setting(
                        "off",
                        kinds.choice(*DIGEST_WINDOWS),
                        f"Gather a recipient's {event.name} mail into one per window: "
                        "off, 15m, 1h or daily (UTC).",
                        f"{event.name}.digest",
                    ),
                )
            )
    made += [
        (
            _attribute("login.failed", "users"),
            tuple,
            _setting(
                ("all",),
                kinds.LIST,
                "Users whose failed logins are reported: usernames, or all.",
                "login.failed.users",
            ),
        ),
        (
            _attribute("login.failed", "notify_admins"),
            bool,
            _setting(
                True, kinds.BOOL, "Tell the admins of failed logins.", "login.failed.notify_admins"
            ),
        ),
        (
            _attribute("login.failed", "notify_user"),
            bool,
            _setting(
                True, kinds.BOOL, "Tell the user whose login failed.", "login.failed.notify_user"
            ),
        ),
        (
            _attribute("login.failed", "throttle"),
            float,
            _setting(
                900.0,
                kinds.DURATION_OR_ZERO,
                "At most one mail per user per window, saying how many attempts, when and "
                "from where; 0: one mail per attempt.",
                "login.failed.throttle",
            ),
        ),
        (
            _attribute("server.down", "missed_beats"),
            int,
            _setting(
                3,
                kinds.INT,
                "Heartbeats a host app may miss before the watchdog sends server.down.",
                "server.down.missed_beats",
            ),
        ),
        (
            "unsubscribe_mailto",
            str,
            _setting(
                "",
                kinds.ADDRESS_OPTIONAL,
                "Address offered in List-Unsubscribe beside the link; empty: the link only.",
                "unsubscribe_mailto",
            ),
        ),
        (
            "unsubscribe_lifetime",
            float,
            _setting(
                90 * 86400.0,
                kinds.DURATION,
                "How long an unsubscribe link in a mail keeps working.",
                "unsubscribe_lifetime",
            ),
        ),
    ]
    return made


SendersSettings: type[SendersBase] = make_dataclass(
    "SendersSettings", _fields(), bases=(SendersBase,), frozen=True
)

__all__ = ["DIGEST_WINDOWS", "EVENTS_BY_NAME", "EVENT_KINDS", "EventKind", "SendersBase"]
