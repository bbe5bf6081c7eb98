"""The login form, logging out, and the way in from ``/``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.service.console.deps import AdminForm
from postroom.service.console.render import page
from postroom.service.console.sessions import LOGIN_COOKIE, login_token, login_token_ok, set_cookie
from postroom.service.deps import state_of

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path of the console itself: never a redirect to another site."""
    if target == "/api/docs" or (target and target.startswith("/console/")):
        return target
    return "/console/"


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/console/login?next={quote(next_path, safe='')}", status_code=303)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console")
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


def _form(
    request: Request,
    *,
    next_path: str,
    username: str = "",
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    token = login_token(request)
    response = page(
        request,
        "login.html",
        None,
        state_of(request).runtime,
        status_code=status_code,
        login_token=token,
        next_path=next_path,
        username=username,
        problem=problem,
    )
    set_cookie(response, request, LOGIN_COOKIE, token, 3600)
    return response


@router.get("/console/login")
def login_form(request: Request, next: str = "/console/") -> HTMLResponse:
    return _form(request, next_path=safe_next(next))


@router.post("/console/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    login_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console/",
) -> Response:
    service = state_of(request)
    target = safe_next(next)
    if not login_token_ok(request, login_token):
        return _form(
            request,
            next_path=target,
            username=username,
            problem="The login form expired; try again.",
            status_code=403,
        )
    client = request.client.host if request.client else "?"
    wait = service.throttle.wait_time(username, client)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        return _form(
            request,
            next_path=target,
            username=username,
            problem=f"Too many failed logins; try again in {minutes} minute(s).",
            status_code=429,
        )
    user = service.runtime.postroom.users.login(username, password)
    if user is None:
        service.throttle.failed(username, client)
        return _form(
            request,
            next_path=target,
            username=username,
            problem="Wrong username or password (only admins with a console password can log in).",
            status_code=401,
        )
    service.throttle.succeeded(username)
    response = RedirectResponse(target, status_code=303)
    service.console.start(request, response, user.id)
    return response


@router.post("/console/logout")
def logout(request: Request, _admin: AdminForm) -> RedirectResponse:
    response = RedirectResponse("/console/login", status_code=303)
    state_of(request).console.end(request, response)
    return response
