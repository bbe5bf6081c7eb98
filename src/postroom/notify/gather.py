"""Pending notifications become mail when their window closes: a digest per recipient
and type, or one login.failed mail saying how many attempts, when and from where.

Items leave the pending table in the same transaction that puts their mail in the
outbox, so a crash at any point loses none and sends none twice; windows that closed
while no worker ran go out at the next tick.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from postroom.notify.context import person, shown_time
from postroom.notify.payloads import LoginFailed, Payload, parse_payload
from postroom.notify.recipients import Recipient
from postroom.store import notify as store
from postroom.store.directory_queries import User

if TYPE_CHECKING:
    from postroom.notify.notifier import Notifier

logger = logging.getLogger("postroom.notify")

WINDOWS = {"15m": 900.0, "1h": 3600.0, "daily": 86400.0}


def window_end(window: str, now: float) -> float:
    """The end of the clock-aligned window (UTC) that ``now`` falls in."""
    size = WINDOWS[window]
    return (math.floor(now / size) + 1) * size


def pending_item(
    event: str,
    payload: Payload,
    recipient: Recipient,
    *,
    actor_context: dict[str, Any] | None,
    shown_actor: str | None,
    thread: str | None,
    window: str | float,
    now: float,
) -> tuple[str, str, float, dict[str, Any]]:
    """(type, group, due time, item) of a notification kept for later: a digest's
    window ends on the clock; a throttled login.failed's window starts with its first
    attempt (the group's earliest item is due first, and takes the rest with it)."""
    if isinstance(payload, LoginFailed):
        key = f"login.failed|{payload.user}|{recipient.address.lower()}"
    else:
        key = f"{event}|{recipient.address.lower()}"
    due = window_end(window, now) if isinstance(window, str) else now + window
    user = recipient.user
    item = {
        "event": event,
        "data": payload.model_dump(mode="json"),
        "actor": actor_context,
        "shown_actor": shown_actor,
        "thread": thread,
        "address": recipient.address,
        "user_id": user.id if user else None,
        "recipient": person(user) if user else None,
        "at": now,
    }
    return (event, key, due, item)


def flush_due(notifier: Notifier, now: float, *, limit: int = 100) -> list[int]:
    """Queue the mail of every pending group whose window has closed; their ids."""
    with notifier.engine.connect() as connection:
        keys = store.due_groups(connection, now, limit)
    ids: list[int] = []
    for key in keys:
        with notifier.engine.begin() as connection:
            items = store.take_group(connection, key)
            if not items:
                continue  # another worker took it
            notifier.links_in(connection)
            message = _mail_of(notifier, [item.item for item in items], now)
            ids += notifier.outbox.insert(connection, [message], now=time.time())
    if ids:
        notifier.outbox.made_due()
    return ids


def _mail_of(notifier: Notifier, items: list[dict[str, Any]], now: float) -> Any:
    first, last = items[0], items[-1]
    event = first["event"]
    recipient = _recipient(first)
    common = {
        "actor_context": last["actor"],
        "shown_actor": last["shown_actor"],
        "now": now,
    }
    if event == "login.failed":
        attempts = [{"at": shown_time(i["at"]), "ip": i["data"].get("ip", "")} for i in items]
        return notifier.compose_for(
            event,
            parse_payload(event, last["data"]),
            recipient,
            thread=None,
            attempts=attempts,
            **common,
        )
    if len(items) == 1:
        return notifier.compose_for(
            event, parse_payload(event, first["data"]), recipient, thread=first["thread"], **common
        )
    digest_items = [_digest_item(notifier, item, recipient) for item in items]
    threads = {item["thread"] for item in items}
    return notifier.compose_for(
        event,
        parse_payload(event, last["data"]),
        recipient,
        thread=threads.pop() if len(threads) == 1 else None,
        items=digest_items,
        base="digest",
        **{**common, "shown_actor": None},
    )


def _recipient(item: dict[str, Any]) -> Recipient:
    person = item["recipient"]
    if item["user_id"] is None or person is None:
        return Recipient(item["address"], None)
    user = User(
        id=int(item["user_id"]),
        username=person["username"],
        full_name=person["full_name"],
        email=item["address"],
        admin=False,
        active=True,
        created_at=0.0,
    )
    return Recipient(item["address"], user)


def _digest_item(notifier: Notifier, item: dict[str, Any], recipient: Recipient) -> dict[str, Any]:
    from postroom.notify.context import build_context

    event = item["event"]
    data = item["data"]
    context = build_context(
        event,
        data,
        actor=item["actor"],
        recipient=item["recipient"],
        site_url=notifier.links.base_url,
    )
    subject = " ".join(notifier.templates.render_one(f"{event}.subject.txt", context).split())
    url = data.get("url") or (data.get("object") or {}).get("url") or ""
    return {
        "subject": subject,
        "text": data.get("text", ""),
        "url": url,
        "at": shown_time(item["at"]),
    }


def watch_heartbeats(notifier: Notifier, now: float) -> list[str]:
    """server.down for every host app silent for more than its missed beats; names."""
    missed = int(notifier.config.settings.senders.option("server.down", "missed_beats"))
    with notifier.engine.connect() as connection:
        silent = store.silent_since(connection, now, missed)
    reported: list[str] = []
    for beat in silent:
        with notifier.engine.begin() as connection:
            if not store.mark_down(connection, beat.name, beat.last_seen, now):
                continue  # another process reported it
            notifier.emit(
                "server.down",
                data={
                    "name": beat.name,
                    "last_seen": shown_time(beat.last_seen),
                    "reason": f"No heartbeat for {round(now - beat.last_seen)} s "
                    f"(expected every {round(beat.every)} s).",
                },
                connection=connection,
                now=now,
            )
            logger.warning(
                "heartbeat %s: silent since %s; server.down sent",
                beat.name,
                shown_time(beat.last_seen),
            )
            reported.append(beat.name)
    if reported:
        notifier.outbox.made_due()
    return reported


def record_beat(notifier: Notifier, name: str, every: float, now: float) -> bool:
    """A host app's beat; after a reported silence it sends server.up. True if it did."""
    with notifier.engine.begin() as connection:
        before = store.beat(connection, name, every, now)
        if before is None or before.down_at is None:
            return False
        notifier.emit(
            "server.up",
            data={"name": name, "last_seen": shown_time(before.last_seen)},
            connection=connection,
            now=now,
        )
    notifier.outbox.made_due()
    return True
