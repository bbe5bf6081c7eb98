"""``/api/v1``: the HTTP API (DESIGN §9, §11)."""

from fastapi import APIRouter

from postroom.service.api import (
    broadcasts,
    diagnostics,
    directory,
    events,
    mail_record,
    messages,
)
from postroom.service.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
for module in (messages, events, directory, broadcasts, diagnostics, mail_record):
    router.include_router(module.router)

__all__ = ["router"]
