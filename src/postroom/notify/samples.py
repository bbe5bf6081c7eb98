"""Example data of every type: `postroom templates check` renders each template with
it (in several variants, so that every branch meets its variables), and `templates
render` uses it when no data is given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from postroom.notify.context import build_context
from postroom.notify.payloads import parse_payload

_OBJECT = {
    "kind": "pull_request",
    "id": 42,
    "title": "Faster thumbnails for large plates",
    "owner": "alice",
    "url": "https://code.example.org/pr/42",
}
SAMPLES: dict[str, dict[str, Any]] = {
    "server.up": {"name": "omero-1"},
    "server.down": {"name": "omero-1", "last_seen": "2026-12-03 14:02 UTC", "reason": ""},
    "login.failed": {"user": "alice", "ip": "192.0.2.7"},
    "user.created": {"username": "bob", "email": "bob@example.org", "full_name": "Bob Ray"},
    "user.registered": {"username": "bob", "email": "bob@example.org", "full_name": "Bob Ray"},
    "group.created": {"name": "imaging-core"},
    "comment.created": {
        "object": {**_OBJECT, "kind": "image", "id": 1001, "title": "Plate 7, well B3"},
        "text": "The staining looks uneven here. @carol can you check?",
    },
    "changeset.comment": {
        "object": {**_OBJECT, "kind": "changeset", "id": "9f2c1e7a4b5d", "title": "Fix leak"},
        "text": "This drops the cache on every call.",
        "reviewers": ["carol"],
    },
    "pull_request.created": {"object": _OBJECT, "text": "Please review.", "reviewers": ["carol"]},
    "pull_request.reviewers_added": {"object": _OBJECT, "text": "", "reviewers": ["dave"]},
    "pull_request.comment": {"object": _OBJECT, "text": "Looks good to me.", "reviewers": []},
    "password.reset": {"email": "bob@example.org", "url": "https://example.org/reset/abc123"},
    "message": {"to": ["bob@example.org"], "subject": "Maintenance tonight", "text": "Down 22:00."},
}
_ACTOR = {"username": "alice", "full_name": "Alice Liddell", "name": "Alice Liddell", "email": ""}
_RECIPIENT = {
    "username": "carol",
    "full_name": "Carol Ann",
    "name": "Carol Ann",
    "email": "carol@example.org",
}
_ATTEMPT = {"at": "2026-12-03 14:02 UTC", "ip": "192.0.2.7"}


def sample_context(base: str) -> Iterator[dict[str, Any]]:
    """Contexts for ``base`` (a type, or ``digest``): the full one, then sparse ones."""
    event = base if base in SAMPLES else "comment.created"
    payload = parse_payload(event, SAMPLES[event])
    items = [
        {"subject": "Alice Liddell commented on image", "text": "Hi", "url": "", "at": "now"}
    ] * (2 if base == "digest" else 0)
    full: dict[str, Any] = {
        "actor": _ACTOR,
        "recipient": _RECIPIENT,
        "mentioned": True,
        "site_url": "https://mail.example.org",
        "unsubscribe_url": "https://mail.example.org/unsubscribe/x",
        "attempts": [_ATTEMPT, _ATTEMPT],
        "items": items,
    }
    yield build_context(event, payload, **full)
    yield build_context(event, payload, attempts=[_ATTEMPT], items=items[:1] or [], mentioned=False)
