"""Broadcast: compose to everyone, groups or users; confirm with the count; progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.broadcast import BroadcastRequest
from postroom.broadcast.request import check_request
from postroom.errors import BroadcastError, PostroomError
from postroom.service.api.broadcasts import start_broadcast
from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.render import page
from postroom.service.console.sessions import Admin
from postroom.service.console.views import not_found
from postroom.service.deps import state_of

router = APIRouter(include_in_schema=False)


@dataclass
class Draft:
    """The compose form as typed, carried through the confirm step."""

    subject: str = ""
    text: str = ""
    html: bool = False
    audience: str = "everyone"
    groups: list[str] = field(default_factory=list)
    users: str = ""
    inactive: bool = False
    cc: str = ""
    bcc: str = ""

    def request(self, *, by: str) -> BroadcastRequest:
        return BroadcastRequest(
            subject=self.subject,
            body=self.text,
            html=self.html,
            everyone=self.audience == "everyone",
            group_names=tuple(self.groups) if self.audience == "groups" else (),
            user_names=tuple(_split(self.users)) if self.audience == "users" else (),
            include_inactive=self.inactive,
            cc=tuple(_split(self.cc)),
            bcc=tuple(_split(self.bcc)),
            created_by=by,
        )

    def hidden(self) -> list[tuple[str, str]]:
        """The draft as hidden form fields, for the confirm step's Send button."""
        fields: list[tuple[str, str]] = []
        for name, value in asdict(self).items():
            if isinstance(value, list):
                fields += [(name, item) for item in value]
            elif isinstance(value, bool):
                if value:
                    fields.append((name, "true"))
            else:
                fields.append((name, str(value)))
        return fields


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def draft_form(
    subject: Annotated[str, Form(max_length=998)] = "",
    text: Annotated[str, Form(max_length=1_000_000)] = "",
    html: Annotated[str, Form()] = "",
    audience: Annotated[str, Form()] = "everyone",
    groups: Annotated[list[str] | None, Form()] = None,
    users: Annotated[str, Form(max_length=100_000)] = "",
    inactive: Annotated[str, Form()] = "",
    cc: Annotated[str, Form(max_length=10_000)] = "",
    bcc: Annotated[str, Form(max_length=10_000)] = "",
) -> Draft:
    """The compose form (and the confirm step's hidden copy of it) as a Draft."""
    return Draft(
        subject,
        text,
        html == "true",
        audience,
        groups or [],
        users,
        inactive == "true",
        cc,
        bcc,
    )


DraftForm = Annotated[Draft, Depends(draft_form)]


def _compose(
    request: Request, admin: Admin, draft: Draft, problem: str | None = None
) -> HTMLResponse:
    runtime = state_of(request).runtime
    return page(
        request,
        "broadcasts.html",
        admin,
        runtime,
        status_code=422 if problem else 200,
        form=draft,
        groups=runtime.postroom.users.groups(),
        recent=runtime.postroom.broadcasts.list(limit=20),
        problem=problem,
    )


@router.get("/console/broadcasts")
def compose(request: Request, admin: AdminPage) -> HTMLResponse:
    return _compose(request, admin, Draft())


@router.post("/console/broadcasts/confirm")
def confirm(request: Request, admin: AdminForm, draft: DraftForm) -> Response:
    runtime = state_of(request).runtime
    asked = draft.request(by=admin.username)
    try:
        count = runtime.postroom.broadcasts.count(asked)
        copies, _ = check_request(asked)
    except PostroomError as exc:
        return _compose(request, admin, draft, problem=str(exc))
    return page(
        request,
        "broadcast_confirm.html",
        admin,
        runtime,
        form=draft,
        count=count,
        copies=len(copies.cc) + len(copies.bcc),
        hidden=draft.hidden(),
    )


@router.post("/console/broadcasts/send")
def send(request: Request, admin: AdminForm, draft: DraftForm) -> Response:
    runtime = state_of(request).runtime
    try:
        broadcast_id = start_broadcast(runtime, draft.request(by=admin.username))
    except PostroomError as exc:
        return _compose(request, admin, draft, problem=str(exc))
    return RedirectResponse(f"/console/broadcasts/{broadcast_id}", status_code=303)


@router.get("/console/broadcasts/{broadcast}")
def progress(
    request: Request, admin: AdminPage, broadcast: Annotated[int, Path(ge=1, le=2**62)]
) -> HTMLResponse:
    runtime = state_of(request).runtime
    try:
        detail = runtime.postroom.broadcasts.get(broadcast)
    except BroadcastError:
        return not_found(request, admin, runtime, f"There is no broadcast {broadcast}.")
    return page(request, "broadcast.html", admin, runtime, b=detail.summary, skipped=detail.skipped)
