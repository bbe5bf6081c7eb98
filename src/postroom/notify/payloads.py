"""What each event type carries (DESIGN §11): one pydantic model per type.

Unknown fields are refused, so a misspelt field is an error naming it rather than a
value silently dropped. Text that ends up in a header (titles, names) is one line:
line breaks are folded into spaces when the subject is made, never passed on.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from postroom.errors import EventError
from postroom.settings.senders import EVENTS_BY_NAME

_NAME = Field(min_length=1, max_length=255)
_TEXT = Field(default="", max_length=100_000)
_URL = Field(default="", max_length=2000)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ObjectRef(Payload):
    """The object an event is about: an image, a changeset, a pull request..."""

    kind: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")] | int
    title: str = Field(default="", max_length=1000)
    owner: str | None = Field(default=None, max_length=255)
    url: str = _URL

    @property
    def thread(self) -> str:
        return f"{self.kind}/{self.id}"


class ServerEvent(Payload):
    name: str | None = Field(default=None, max_length=255)
    last_seen: str | None = Field(default=None, max_length=64)  # ISO time (the watchdog)
    reason: str = Field(default="", max_length=2000)


class LoginFailed(Payload):
    user: str = _NAME
    ip: str = Field(default="", max_length=64)


class UserEvent(Payload):
    username: str = _NAME
    email: str = Field(default="", max_length=320)
    full_name: str = Field(default="", max_length=255)
    url: str = _URL


class GroupEvent(Payload):
    name: str = _NAME
    url: str = _URL


class CommentEvent(Payload):
    object: ObjectRef
    text: str = _TEXT
    url: str = _URL  # the comment itself; default: the object's link


class ReviewEvent(Payload):
    """changeset.comment and pull_request.*: the object, text, and its reviewers."""

    object: ObjectRef
    text: str = _TEXT
    reviewers: list[str] = Field(default_factory=list, max_length=1000)
    url: str = _URL


class PasswordReset(Payload):
    email: str = Field(min_length=3, max_length=320)
    url: str = Field(min_length=1, max_length=2000)


class MessageEvent(Payload):
    to: list[str] | None = Field(default=None, max_length=1000)
    subject: str = Field(min_length=1, max_length=998)
    text: str = _TEXT


PAYLOADS: dict[str, type[Payload]] = {
    "server.up": ServerEvent,
    "server.down": ServerEvent,
    "login.failed": LoginFailed,
    "user.created": UserEvent,
    "user.registered": UserEvent,
    "group.created": GroupEvent,
    "comment.created": CommentEvent,
    "changeset.comment": ReviewEvent,
    "pull_request.created": ReviewEvent,
    "pull_request.reviewers_added": ReviewEvent,
    "pull_request.comment": ReviewEvent,
    "password.reset": PasswordReset,
    "message": MessageEvent,
}
assert set(PAYLOADS) == set(EVENTS_BY_NAME), "every event type needs a payload model"


def parse_payload(event: str, data: object) -> Payload:
    """The payload of ``event`` from ``data`` (a mapping), or an EventError naming
    the first bad field and what it should be."""
    model = PAYLOADS.get(event)
    if model is None:
        raise EventError(
            f"unknown event type {event!r}; use one of {', '.join(PAYLOADS)}", field="type"
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError(f"{event} data must be a JSON object", field="data")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        message = first["msg"]
        what = (
            "is not allowed"
            if first["type"] == "extra_forbidden"
            else message[:1].lower() + message[1:]
        )
        raise EventError(f"{event} data: field {where}: {what}", field=f"data.{where}") from None
