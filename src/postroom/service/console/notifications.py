"""Notifications: each type's settings and a preview of its mail (text and HTML) with
sample or given data, the template check, the host apps that beat; and a user's
notification preferences on their page."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from postroom.errors import PostroomError
from postroom.notify.samples import SAMPLES
from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.people import UserPk, _problem_on_user
from postroom.service.console.render import page
from postroom.service.deps import state_of
from postroom.settings.senders import EVENT_KINDS, EVENTS_BY_NAME
from postroom.store.notify import list_heartbeats
from postroom.store.views import iso_time

router = APIRouter(include_in_schema=False)


@router.get("/console/notifications")
def notifications_page(
    request: Request,
    admin: AdminPage,
    type: Annotated[str, Query(max_length=64)] = "comment.created",
    data: Annotated[str | None, Query(max_length=100_000)] = None,
    actor: Annotated[str, Query(max_length=64)] = "alice",
) -> Response:
    runtime = state_of(request).runtime
    notifier = runtime.postroom.notifications
    senders = runtime.config.settings.senders
    event = type if type in EVENTS_BY_NAME else "comment.created"
    shown_data = data if data is not None else json.dumps(SAMPLES[event], indent=2)
    preview, problem = None, None
    try:
        parsed = json.loads(shown_data)
        if not isinstance(parsed, dict):
            raise ValueError("the data must be a JSON object")
        preview = notifier.preview(event, parsed, actor=actor or None)
    except ValueError as exc:
        problem = f"The data is not a JSON object: {exc}"
    except PostroomError as exc:
        problem = str(exc)
    now = notifier.clock()
    return page(
        request,
        "notifications.html",
        admin,
        runtime,
        kinds=[
            {
                "name": k.name,
                "header": k.header,
                "audience": k.audience,
                "enabled": senders.enabled(k.name),
                "digest": senders.digest(k.name) if k.digest else "",
                "opt_out": k.opt_out,
            }
            for k in EVENT_KINDS
        ],
        event=event,
        data=shown_data,
        actor=actor,
        preview=preview,
        problem=problem,
        template_problems=[str(p) for p in notifier.templates.check()],
        overridden=notifier.templates.overridden(),
        templates_dir=str(runtime.config.home.path / "templates"),
        heartbeats=[
            {
                "name": b.name,
                "every": round(b.every),
                "last_seen": iso_time(b.last_seen),
                "silent": round(now - b.last_seen),
                "down": b.down_at is not None,
            }
            for b in list_heartbeats(runtime.postroom.engine)
        ],
    )


@router.post("/console/users/{user}/prefs")
def change_prefs(
    request: Request,
    admin: AdminForm,
    user: UserPk,
    wanted: Annotated[list[str] | None, Form(alias="on")] = None,
) -> Response:
    """The form lists the types that stay on; every other optional type goes off."""
    runtime = state_of(request).runtime
    chosen = set(wanted or [])
    optional = [k.name for k in EVENT_KINDS if k.opt_out]
    try:
        runtime.postroom.notifications.set_prefs(
            user,
            off=[name for name in optional if name not in chosen],
            on=[name for name in optional if name in chosen],
        )
    except PostroomError as exc:
        return _problem_on_user(request, admin, user, str(exc))
    query = urlencode({"notice": "Notification preferences saved."})
    return RedirectResponse(f"/console/users/{user}?{query}", status_code=303)
