"""Error reports: the errors web apps reported, one row per fingerprint, with how often
each happened, when last, and whether repeats wait for their summary."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from postroom.service.console.deps import AdminPage
from postroom.service.console.render import page
from postroom.service.deps import state_of
from postroom.store.reports import recent

router = APIRouter(include_in_schema=False)


@router.get("/console/errors")
def errors_page(request: Request, admin: AdminPage) -> HTMLResponse:
    runtime = state_of(request).runtime
    settings = runtime.config.settings
    return page(
        request,
        "errors.html",
        admin,
        runtime,
        rows=recent(runtime.postroom.engine, limit=200),
        admins=settings.mail.admins,
        throttle=round(settings.reports.throttle),
        debug=settings.web.debug,
    )
