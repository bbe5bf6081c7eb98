"""What a template sees: the same names for every type (templates.CONTEXT_NAMES)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from postroom.notify.payloads import Payload
from postroom.store.directory_queries import User


def person(user: User | None, name: str | None = None) -> dict[str, Any] | None:
    """A user as templates see them; ``name`` alone for an actor the directory lacks."""
    if user is None:
        return None if not name else {"username": name, "full_name": "", "name": name, "email": ""}
    return {
        "username": user.username,
        "full_name": user.full_name,
        "name": user.full_name or user.username,
        "email": user.email or "",
    }


def shown_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_context(
    event: str,
    payload: Payload | dict[str, Any],
    *,
    actor: dict[str, Any] | None = None,
    recipient: dict[str, Any] | None = None,
    mentioned: bool = False,
    site_url: str = "",
    unsubscribe_url: str = "",
    attempts: Sequence[dict[str, Any]] = (),
    items: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    data = payload if isinstance(payload, dict) else payload.model_dump(mode="json")
    return {
        "event": event,
        "data": data,
        "object": data.get("object"),
        "actor": actor,
        "recipient": recipient,
        "mentioned": mentioned,
        "site_url": site_url,
        "unsubscribe_url": unsubscribe_url,
        "attempts": list(attempts),
        "items": list(items),
    }
