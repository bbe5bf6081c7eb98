"""``/api/v1/events``, ``/api/v1/heartbeats/{name}`` and users' notification
preferences (DESIGN §6, §9)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, Field

from postroom.errors import EventError, NotFoundError
from postroom.runtime import Runtime
from postroom.service.deps import admin, runtime_of, sender
from postroom.service.models import Strict
from postroom.service.tokens import Caller
from postroom.settings.senders import EVENT_KINDS
from postroom.settings.values import parse_duration

router = APIRouter(tags=["events"])


class EventIn(Strict):
    type: str = Field(max_length=64, description="One of the built-in types, e.g. comment.created.")
    actor: str | int | None = Field(default=None, description="Who caused it: username or id.")
    data: dict[str, Any] = Field(default_factory=dict, description="The type's fields.")


class Skipped(BaseModel):
    inactive: int = 0
    no_address: int = 0
    opted_out: int = 0
    unknown_users: int = 0


class EventOut(BaseModel):
    type: str
    ids: list[int]
    recipients: int | None = None
    pending: int | None = Field(default=None, description="Gathered for a digest or throttle.")
    skipped: Skipped | None = None
    fallback: bool | None = None
    disabled: bool | None = None


class HeartbeatIn(Strict):
    every: str | float = Field(default="60s", description="How often the app beats: 60, 60s, 5m.")


class HeartbeatOut(BaseModel):
    name: str
    every: float
    recovered: bool = Field(description="This beat ended a reported silence (server.up sent).")


class PrefsIn(Strict):
    off: list[str] = Field(default_factory=list, max_length=64)
    on: list[str] = Field(default_factory=list, max_length=64)


class PrefsOut(BaseModel):
    user: str
    off: list[str]
    on: list[str]


@router.post("/events", status_code=202, response_model=EventOut, response_model_exclude_none=True)
def emit_event(
    body: EventIn,
    _caller: Annotated[Caller, Depends(sender)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> EventOut:
    """Emit an event: its notifications are committed to the outbox before the answer.
    A payload that fails its type's model is 422 naming the field; nothing is queued."""
    result = runtime.postroom.notifications.emit(body.type, actor=body.actor, data=body.data)
    return EventOut.model_validate(result.to_json())


@router.post("/heartbeats/{name}", response_model=HeartbeatOut)
def heartbeat(
    name: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w.@-]+$")],
    _caller: Annotated[Caller, Depends(sender)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
    body: Annotated[HeartbeatIn | None, Body()] = None,
) -> HeartbeatOut:
    """A host app's heartbeat. When beats stop for senders.server.down.missed_beats
    intervals, the admins get server.down; the next beat sends server.up."""
    try:
        every = parse_duration((body or HeartbeatIn()).every)
    except ValueError as exc:
        raise EventError(f"every: {exc}", field="every") from None
    recovered = runtime.postroom.notifications.beat(name, every)
    return HeartbeatOut(name=name, every=every, recovered=recovered)


@router.delete("/heartbeats/{name}", status_code=204)
def stop_heartbeat(
    name: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w.@-]+$")],
    _caller: Annotated[Caller, Depends(sender)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> None:
    """The host app stops on purpose: forget its heartbeat (no server.down); 404 if unknown."""
    if not runtime.postroom.notifications.stop_beating(name):
        raise NotFoundError(f"no host app {name!r} beats here")


def _prefs(runtime: Runtime, user: str, off: list[str]) -> PrefsOut:
    return PrefsOut(user=user, off=off, on=[k.name for k in EVENT_KINDS if k.name not in off])


@router.get("/users/{user}/prefs", response_model=PrefsOut)
def get_prefs(
    user: Annotated[str, Path(max_length=64, description="Username or id.")],
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> PrefsOut:
    """The notification types a user has switched off."""
    found = runtime.postroom.users.get(user)
    return _prefs(runtime, found.username, runtime.postroom.notifications.opted_out(found.id))


@router.put("/users/{user}/prefs", response_model=PrefsOut)
def put_prefs(
    user: Annotated[str, Path(max_length=64, description="Username or id.")],
    body: PrefsIn,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> PrefsOut:
    """Switch types off or on for a user (security mail cannot be switched off: 422)."""
    found = runtime.postroom.users.get(user)
    off = runtime.postroom.notifications.set_prefs(found.id, off=body.off, on=body.on)
    return _prefs(runtime, found.username, off)
