"""Pieces the outbox and the mail record pages share."""

from __future__ import annotations

from typing import Literal

from fastapi import Request
from fastapi.responses import HTMLResponse

from postroom.runtime import Runtime
from postroom.service.console.render import page
from postroom.service.console.sessions import Admin

View = Literal["text", "html", "headers", "raw"]

#: Put in front of a mail's HTML in the preview frame: nothing may load or run, inline
#: styles may (the frame is sandboxed too, and inherits the page's own policy).
FRAME_POLICY = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "style-src 'unsafe-inline'; img-src data:; font-src data:\">"
)


def mail_html(html: str | None) -> str:
    """What goes into ``srcdoc`` (escaped there by the template)."""
    return FRAME_POLICY + (html or "")


def not_found(request: Request, admin: Admin, runtime: Runtime, message: str) -> HTMLResponse:
    return page(
        request,
        "error.html",
        admin,
        runtime,
        status_code=404,
        title="Not found",
        message=message,
    )
