"""The outbox: filter, one message in full, retry / hold / release, copy the message."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.render import page
from postroom.service.console.views import View, mail_html, not_found
from postroom.service.deps import state_of
from postroom.store import queries
from postroom.store.schema import DEFERRED, FAILED, HELD, MESSAGE_STATES, QUEUED

router = APIRouter(include_in_schema=False)
PAGE = 50
MessagePk = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/console/outbox")
def outbox(
    request: Request,
    admin: AdminPage,
    status: Annotated[str, Query(max_length=16)] = "",
    type: Annotated[str, Query(max_length=64)] = "",
    to: Annotated[str, Query(max_length=320)] = "",
    cursor: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    runtime = state_of(request).runtime
    status = status if status in MESSAGE_STATES else ""
    found = queries.list_messages(
        runtime.postroom.engine,
        status=status or None,
        type=type or None,
        to=to or None,
        before_id=cursor,
        limit=PAGE + 1,
    )
    shown = found[:PAGE]
    next_cursor = shown[-1].id if len(found) > PAGE else None
    next_link = "?" + urlencode(
        {k: v for k, v in {"status": status, "type": type, "to": to}.items() if v}
        | {"cursor": next_cursor or ""}
    )
    return page(
        request,
        "outbox.html",
        admin,
        runtime,
        messages=shown,
        states=MESSAGE_STATES,
        status=status,
        type=type,
        to=to,
        next_cursor=next_cursor,
        next_link=next_link,
    )


@router.get("/console/outbox/{message}")
def message_page(
    request: Request,
    admin: AdminPage,
    message: MessagePk,
    view: View = "text",
    notice: str | None = None,
    problem: str | None = None,
) -> HTMLResponse:
    runtime = state_of(request).runtime
    detail = queries.get_message(runtime.postroom.engine, message)
    if detail is None:
        return not_found(request, admin, runtime, f"There is no message {message} in the outbox.")
    summary = detail.summary
    actions = [
        ("retry", "Retry now", summary.status in (DEFERRED, FAILED, QUEUED)),
        ("hold", "Hold", summary.status in (QUEUED, DEFERRED, FAILED)),
        ("release", "Release", summary.status == HELD),
    ]
    return page(
        request,
        "message.html",
        admin,
        runtime,
        m=summary,
        detail=detail,
        actions=actions,
        view=view,
        safe_html=mail_html(detail.html),
        notice=notice,
        problem=problem,
    )


@router.get("/console/outbox/{message}/raw")
def message_raw(request: Request, _admin: AdminPage, message: MessagePk) -> Response:
    runtime = state_of(request).runtime
    detail = queries.get_message(runtime.postroom.engine, message)
    if detail is None:
        return not_found(request, _admin, runtime, f"There is no message {message} in the outbox.")
    return Response(
        detail.raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{message}.eml"'},
    )


@router.post("/console/outbox/{message}/{action}")
def act(request: Request, _admin: AdminForm, message: MessagePk, action: str) -> Response:
    runtime = state_of(request).runtime
    outbox = runtime.postroom.outbox
    done = {
        "retry": lambda: outbox.retry([message]) > 0,
        "hold": lambda: outbox.hold(message),
        "release": lambda: outbox.release_held(message),
    }.get(action)
    if done is None:
        return not_found(request, _admin, runtime, f"There is no action {action!r}.")
    words = {"retry": "queued for a new try now", "hold": "held", "release": "released"}
    if done():
        query = {"notice": f"Message {message} {words[action]}."}
    else:
        current = queries.message_status(runtime.postroom.engine, message) or "gone"
        query = {"problem": f"Message {message} is {current}; it cannot be {words[action]}."}
    return RedirectResponse(f"/console/outbox/{message}?{urlencode(query)}", status_code=303)
