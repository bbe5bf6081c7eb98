"""Every page of the console, as one router."""

from fastapi import APIRouter

from postroom.service.console import (
    auth,
    broadcasts,
    dashboard,
    errors_page,
    notifications,
    outbox,
    people,
    record,
    settings,
    tokens,
)

router = APIRouter(include_in_schema=False)
for module in (
    auth,
    dashboard,
    outbox,
    record,
    settings,
    people,
    notifications,
    errors_page,
    broadcasts,
    tokens,
):
    router.include_router(module.router)

__all__ = ["router"]
