"""Users and groups: list, add, change address, admin flag, (de)activate, passwords."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from postroom.errors import NotFoundError, PostroomError
from postroom.service.console.deps import AdminForm, AdminPage
from postroom.service.console.render import page
from postroom.service.console.sessions import Admin
from postroom.service.console.views import not_found
from postroom.service.deps import state_of
from postroom.settings.senders import EVENT_KINDS

router = APIRouter(include_in_schema=False)
UserPk = Annotated[int, Path(ge=0, le=2**62)]


def _users_page(
    request: Request, admin: Admin, *, inactive: bool = False, **context: Any
) -> HTMLResponse:
    runtime = state_of(request).runtime
    users = runtime.postroom.users
    return page(
        request,
        "users.html",
        admin,
        runtime,
        users=users.list(include_inactive=inactive),
        groups=users.groups(),
        inactive=inactive,
        **context,
    )


@router.get("/console/users")
def users_page(
    request: Request,
    admin: AdminPage,
    inactive: Annotated[str, Query(max_length=5)] = "no",
    notice: str | None = None,
) -> HTMLResponse:
    return _users_page(request, admin, inactive=inactive == "yes", notice=notice)


def _done(path: str, notice: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", status_code=303)


@router.post("/console/users")
def add_user(
    request: Request,
    admin: AdminForm,
    username: Annotated[str, Form(max_length=200)] = "",
    full_name: Annotated[str, Form(max_length=300)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    is_admin: Annotated[str, Form(alias="admin")] = "",
) -> Response:
    users = state_of(request).runtime.postroom.users
    try:
        user = users.add(
            username, full_name=full_name, email=email or None, admin=is_admin == "true"
        )
    except PostroomError as exc:
        return _users_page(request, admin, problem=str(exc))
    return _done("/console/users", f"Added user {user.username}.")


@router.get("/console/users/{user}")
def user_page(
    request: Request, admin: AdminPage, user: UserPk, notice: str | None = None
) -> Response:
    return _user_page(request, admin, user, notice=notice)


def _user_page(
    request: Request, admin: Admin, user: int, *, status_code: int = 200, **context: Any
) -> Response:
    runtime = state_of(request).runtime
    users = runtime.postroom.users
    try:
        found = users.get(user)
    except NotFoundError:
        return not_found(request, admin, runtime, f"There is no user {user}.")
    return page(
        request,
        "user.html",
        admin,
        runtime,
        status_code=status_code,
        u=found,
        has_password=users.has_password(user),
        kinds=EVENT_KINDS,
        opted_out=runtime.postroom.notifications.opted_out(found.id),
        **context,
    )


@router.post("/console/users/{user}")
def change_user(
    request: Request,
    admin: AdminForm,
    user: UserPk,
    full_name: Annotated[str, Form(max_length=300)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    is_admin: Annotated[str, Form(alias="admin")] = "",
    active: Annotated[str, Form()] = "",
    groups: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    runtime = state_of(request).runtime
    users = runtime.postroom.users
    try:
        found = users.get(user)
        users.update(
            user,
            full_name=full_name,
            email=email or None,
            admin=is_admin == "true",
            active=active == "true",
        )
        wanted = [g.strip() for g in groups.split(",") if g.strip()]
        if wanted:
            users.upsert(found.username, groups=wanted)
        for name in set(found.groups) - set(wanted):
            users.members(name, remove=[user])
    except PostroomError as exc:
        return _problem_on_user(request, admin, user, str(exc))
    return _done(f"/console/users/{user}", "Saved.")


@router.post("/console/users/{user}/password")
def set_password(
    request: Request,
    admin: AdminForm,
    user: UserPk,
    password: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    service = state_of(request)
    users = service.runtime.postroom.users
    try:
        found = users.set_password(user, password)
    except PostroomError as exc:
        return _problem_on_user(request, admin, user, str(exc))
    if found.id != admin.user_id:
        service.console.sessions.end_all_of(found.id)  # their other logins end
    return _done(f"/console/users/{user}", f"Password of {found.username} set.")


def _problem_on_user(request: Request, admin: Admin, user: int, problem: str) -> Response:
    return _user_page(request, admin, user, status_code=422, problem=problem)


@router.post("/console/groups")
def add_group(
    request: Request, admin: AdminForm, name: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    try:
        group = state_of(request).runtime.postroom.users.add_group(name)
    except PostroomError as exc:
        return _users_page(request, admin, problem=str(exc))
    return _done("/console/users", f"Added group {group.name}.")
