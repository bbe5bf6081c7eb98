"""``/api/v1/users`` and ``/api/v1/groups``: the directory, pushed by the host app."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from postroom.errors import NotFoundError
from postroom.runtime import Runtime
from postroom.service.deps import admin, runtime_of
from postroom.service.models import GroupIn, GroupOut, UserIn, UserOut
from postroom.service.tokens import Caller

router = APIRouter(tags=["directory"])


@router.get("/users", response_model=list[UserOut])
def list_users(
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
    inactive: Annotated[bool, Query(description="Inactive users too.")] = False,
    group: Annotated[str | None, Query(max_length=64, description="Only this group.")] = None,
) -> list[UserOut]:
    """Users by id, with their groups."""
    found = runtime.postroom.users.list(include_inactive=inactive, group=group)
    return [UserOut.model_validate(user.to_json()) for user in found]


@router.post(
    "/users",
    response_model=UserOut,
    status_code=200,
    responses={201: {"model": UserOut, "description": "Created."}},
)
def upsert_user(
    body: UserIn,
    response: Response,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> UserOut:
    """Create the user (201) or update it (200); fields left out keep their value,
    ``email: ""`` removes the address, groups named are joined (created if new)."""
    users = runtime.postroom.users
    try:
        users.get(body.username)
        existed = True
    except NotFoundError:
        existed = False
    user = users.upsert(
        body.username,
        full_name=body.full_name,
        email=body.email,
        admin=body.admin,
        active=body.active,
        groups=body.groups,
    )
    response.status_code = 200 if existed else 201
    return UserOut.model_validate(user.to_json())


@router.get("/groups", response_model=list[GroupOut])
def list_groups(
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> list[GroupOut]:
    """Groups with their number of members."""
    return [GroupOut.model_validate(g.to_json()) for g in runtime.postroom.users.groups()]


@router.post("/groups", response_model=GroupOut, status_code=201)
def add_group(
    body: GroupIn,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> GroupOut:
    """Add a group (409 when the name is taken)."""
    return GroupOut.model_validate(runtime.postroom.users.add_group(body.name).to_json())
