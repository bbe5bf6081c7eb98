"""Who wants which notifications: per-user opt-outs, one-click unsubscribe, and the
preview a person reads before changing a template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from postroom.errors import EventError, TokenError
from postroom.notify.context import build_context, shown_time
from postroom.notify.payloads import parse_payload
from postroom.notify.samples import SAMPLES
from postroom.notify.templates import Rendered
from postroom.notify.unsubscribe import read_token
from postroom.settings.senders import EVENTS_BY_NAME
from postroom.store import notify as store

if TYPE_CHECKING:
    from postroom.notify.notifier import Notifier

_NOT_VALID = "this unsubscribe link is not valid; use the link from a recent mail"


def set_prefs(
    notifier: Notifier, user_id: int, *, off: Sequence[str], on: Sequence[str]
) -> list[str]:
    for event in [*off, *on]:
        kind = EVENTS_BY_NAME.get(event)
        if kind is None:
            raise EventError(
                f"unknown notification type {event!r}; use one of {', '.join(EVENTS_BY_NAME)}",
                field="type",
            )
        if not kind.opt_out and event in off:
            raise EventError(f"{event} cannot be switched off: it is security mail", field="type")
    with notifier.engine.begin() as connection:
        store.set_optouts(connection, user_id, off=off, on=on)
    return notifier.opted_out(user_id)


def unsubscribe(notifier: Notifier, token: str, now: float) -> tuple[int, str]:
    request = read_token(notifier.links.key, token, now=now)
    kind = EVENTS_BY_NAME.get(request.type)
    if kind is None or not kind.opt_out:
        raise TokenError(_NOT_VALID)
    with notifier.engine.begin() as connection:
        if store.user_by_id(connection, request.user_id) is None:
            raise TokenError("this unsubscribe link names no account any more")
        store.set_optouts(connection, request.user_id, off=[request.type])
    return request.user_id, request.type


def preview(
    notifier: Notifier, event: str, data: Mapping[str, Any] | None, *, actor: str | None
) -> Rendered:
    payload = parse_payload(event, dict(data) if data is not None else SAMPLES.get(event, {}))
    name = actor or "alice"
    base = notifier.links.base_url
    context = build_context(
        event,
        payload,
        actor={"username": name, "full_name": "", "name": name, "email": ""},
        recipient={
            "username": "someone",
            "full_name": "Someone",
            "name": "Someone",
            "email": "someone@example.org",
        },
        site_url=base,
        unsubscribe_url=f"{base}/unsubscribe/…" if EVENTS_BY_NAME[event].opt_out else "",
        attempts=[{"at": shown_time(notifier.clock()), "ip": getattr(payload, "ip", "")}],
    )
    return notifier.templates.render(event, context)
