"""``/api/openapi.json`` and ``/api/docs``: the API's description, for a token holder
or a logged-in admin. The interactive page is Swagger UI from the fastapi-offline
package's files, served here (no CDN), started by a script of ours (the page's policy
allows no inline script)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from postroom.service.console.sessions import LoginRequired
from postroom.service.deps import state_of
from postroom.service.errors import ApiError

router = APIRouter(include_in_schema=False)

SWAGGER_FILES = Path(fastapi_offline.__file__).parent / "static"
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>postroom API</title>
<link rel="stylesheet" href="/static/apidocs/swagger-ui.css">
<script src="/static/apidocs/swagger-ui-bundle.js" defer></script>
<script src="/static/apidocs.js" defer></script>
</head><body><div id="swagger-ui"></div></body></html>
"""


def _allowed(request: Request) -> bool:
    """A valid token (any scope), or a console session."""
    service = state_of(request)
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    if kind.lower() == "bearer" and token.strip():
        return service.tokens.check(token.strip()) is not None
    try:
        service.console.admin(request)
    except LoginRequired:
        return False
    return True


@router.get("/api/openapi.json")
def openapi(request: Request) -> Response:
    if not _allowed(request):
        raise ApiError(
            401,
            "unauthenticated",
            "send a token (Authorization: Bearer TOKEN) or log in to the console first",
            headers={"WWW-Authenticate": "Bearer"},
        )
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/api/docs")
def docs(request: Request) -> Response:
    if not _allowed(request):
        return RedirectResponse("/console/login?next=%2Fapi%2Fdocs", status_code=303)
    return HTMLResponse(DOCS_PAGE)
