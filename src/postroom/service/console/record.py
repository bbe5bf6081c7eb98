"""The mail record (LabKey's Dumbster page): list, filter, read, clear, and the switch
of recording mode."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from postroom.capture import is_recording
from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.render import page
from postroom.service.console.views import View, mail_html, not_found
from postroom.service.deps import state_of
from postroom.store.capture import CaptureStore
from postroom.store.capture_queries import get_captured, list_captured

router = APIRouter(include_in_schema=False)


@router.get("/console/captured")
def record(
    request: Request,
    admin: AdminPage,
    to: Annotated[str, Query(max_length=320)] = "",
    notice: str | None = None,
    problem: str | None = None,
) -> HTMLResponse:
    runtime = state_of(request).runtime
    switchable, switch_note = runtime.recording_switchable()
    return page(
        request,
        "captured.html",
        admin,
        runtime,
        items=list_captured(runtime.postroom.engine, to=to or None, limit=200),
        to=to,
        recording=is_recording(runtime.config.settings),
        switchable=switchable,
        switch_note=switch_note,
        notice=notice,
        problem=problem,
    )


@router.get("/console/captured/{captured}")
def captured_message(
    request: Request,
    admin: AdminPage,
    captured: Annotated[int, Path(ge=1, le=2**62)],
    view: View = "text",
) -> HTMLResponse:
    runtime = state_of(request).runtime
    detail = get_captured(runtime.postroom.engine, captured)
    if detail is None:
        return not_found(request, admin, runtime, f"There is no captured message {captured}.")
    return page(
        request,
        "captured_message.html",
        admin,
        runtime,
        c=detail.summary,
        detail=detail,
        view=view,
        safe_html=mail_html(detail.html),
    )


@router.post("/console/captured/clear")
def clear(request: Request, _admin: AdminForm) -> RedirectResponse:
    deleted = CaptureStore(state_of(request).runtime.postroom.engine).clear()
    notice = urlencode({"notice": f"Cleared {deleted} message(s) from the mail record."})
    return RedirectResponse(f"/console/captured?{notice}", status_code=303)


@router.post("/console/captured/recording")
def switch_recording(
    request: Request, _admin: AdminForm, on: Annotated[str, Form()] = "false"
) -> RedirectResponse:
    runtime = state_of(request).runtime
    problem = runtime.set_recording(on == "true")
    if problem:
        query = {"problem": problem}
    elif on == "true":
        query = {"notice": "Recording mode is on: mail is kept here, NOT delivered."}
    else:
        query = {"notice": "Recording mode is off: mail is delivered again."}
    return RedirectResponse(f"/console/captured?{urlencode(query)}", status_code=303)
