"""API tokens: list, create (shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.errors import PostroomError
from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.render import page
from postroom.service.console.sessions import Admin
from postroom.service.deps import state_of
from postroom.store.tokens import Tokens

router = APIRouter(include_in_schema=False)


def _page(request: Request, admin: Admin, **context: Any) -> HTMLResponse:
    runtime = state_of(request).runtime
    return page(
        request,
        "tokens.html",
        admin,
        runtime,
        tokens=Tokens(runtime.postroom.engine).list(),
        **context,
    )


@router.get("/console/tokens")
def tokens_page(request: Request, admin: AdminPage) -> HTMLResponse:
    return _page(request, admin)


@router.post("/console/tokens")
def create(
    request: Request,
    admin: AdminForm,
    name: Annotated[str, Form(max_length=100)] = "",
    scope: Annotated[str, Form(max_length=10)] = "send",
) -> Response:
    tokens = Tokens(state_of(request).runtime.postroom.engine)
    try:
        info, token = tokens.create(name.strip(), scope=scope)
    except PostroomError as exc:
        return _page(request, admin, problem=str(exc))
    # Shown in this answer only (no-store): never in a URL, a redirect or the database.
    return _page(request, admin, new_token=token, new_name=info.name)


@router.post("/console/tokens/{token}/revoke")
def revoke(
    request: Request, _admin: AdminForm, token: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    tokens = Tokens(state_of(request).runtime.postroom.engine)
    for info in tokens.list():
        if info.id == token and info.active:
            tokens.revoke(info.name)
    return RedirectResponse("/console/tokens", status_code=303)
