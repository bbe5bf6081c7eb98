"""``/api/v1/broadcasts``: admin email to everyone, groups or chosen users."""

from __future__ import annotations

import logging
import threading
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from postroom.broadcast import BroadcastRequest
from postroom.errors import BroadcastError
from postroom.runtime import Runtime
from postroom.service.deps import admin, runtime_of
from postroom.service.errors import ApiError
from postroom.service.models import BroadcastIn, BroadcastOut
from postroom.service.tokens import Caller
from postroom.store.directory_schema import FANNING_OUT

router = APIRouter(tags=["broadcasts"])
logger = logging.getLogger("postroom.service")


def request_of(body: BroadcastIn, *, by: str) -> BroadcastRequest:
    """The broadcast asked for: ids and names of users and groups told apart."""
    return BroadcastRequest(
        subject=body.subject,
        body=body.text,
        html=body.html,
        everyone=body.everyone,
        group_names=tuple(g for g in body.groups if isinstance(g, str)),
        group_ids=tuple(g for g in body.groups if isinstance(g, int)),
        user_names=tuple(u for u in body.users if isinstance(u, str)),
        user_ids=tuple(u for u in body.users if isinstance(u, int)),
        include_inactive=body.inactive,
        cc=tuple(body.cc),
        bcc=tuple(body.bcc),
        rate=body.rate,
        created_by=by,
    )


def start_broadcast(runtime: Runtime, request: BroadcastRequest) -> int:
    """Commit the job now and fan it out on a thread; a job this process does not
    finish (it stops, say) is finished by any worker once its lease ends."""
    broadcasts = runtime.postroom.broadcasts
    report = broadcasts.submit(request, fan_out=False)
    if report.status == FANNING_OUT:

        def fan_out() -> None:
            try:
                broadcasts.resume(
                    report.id, force=False, progress=lambda _handled: runtime.doorbell.ring()
                )
            except Exception:
                logger.exception("broadcast %d: fan-out stopped; a worker resumes it", report.id)
            runtime.doorbell.ring()

        threading.Thread(target=fan_out, name=f"postroom-broadcast-{report.id}").start()
    return report.id


@router.post("/broadcasts", status_code=202, response_model=BroadcastOut)
def create_broadcast(
    body: BroadcastIn,
    caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> BroadcastOut:
    """Start a broadcast: one message per selected user. The job is committed before
    the answer; its messages are queued in the background (see GET for progress)."""
    broadcast_id = start_broadcast(runtime, request_of(body, by=f"token:{caller.name}"))
    return _out(runtime, broadcast_id)


@router.get("/broadcasts/{broadcast}", response_model=BroadcastOut)
def get_broadcast(
    broadcast: Annotated[int, Path(ge=1, le=2**62)],
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> BroadcastOut:
    """A broadcast's progress: users selected, messages queued, and their states."""
    return _out(runtime, broadcast)


def _out(runtime: Runtime, broadcast_id: int) -> BroadcastOut:
    try:
        detail = runtime.postroom.broadcasts.get(broadcast_id)
    except BroadcastError:
        raise ApiError(404, "not_found", f"no broadcast {broadcast_id}") from None
    return BroadcastOut.model_validate(detail.summary.to_json())
