"""``/unsubscribe/{token}``: RFC 8058 one-click opt-out, no login (the token is signed).

A mail client's button POSTs ``List-Unsubscribe=One-Click`` and the preference changes
at once. A person who opens the link gets a page with a button: link scanners that
fetch every URL in a mail (GET) unsubscribe no one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse

from postroom.errors import TokenError
from postroom.runtime import Runtime
from postroom.service.console.render import templates
from postroom.service.deps import runtime_of
from postroom.store.directory_queries import get_user

_PAGE: dict[str, Any] = {"content": {"text/html": {}}}
router = APIRouter(
    tags=["unsubscribe"],
    responses={
        200: {"description": "A page for the person who clicked.", **_PAGE},
        400: {"description": "The link was altered, is malformed or expired: a page.", **_PAGE},
    },
)
# Any text: a bad link is a page saying so (400), never a JSON error a person cannot read.
Token = Annotated[str, Path(description="The signed token from the mail's link.")]


def _page(request: Request, status: int, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "unsubscribe.html", {"admin": None, "banners": [], **context}, status_code=status
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def confirm(
    request: Request, token: Token, runtime: Annotated[Runtime, Depends(runtime_of)]
) -> HTMLResponse:
    """A page that asks before opting out (GET never changes anything)."""
    from postroom.notify.unsubscribe import read_token

    notifier = runtime.postroom.notifications
    try:
        wanted = read_token(notifier.links.key, token, now=notifier.clock())
    except TokenError as exc:
        return _page(request, 400, error=str(exc))
    user = get_user(runtime.postroom.engine, wanted.user_id)
    return _page(request, 200, token=token, type=wanted.type, user=user.username if user else "")


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def one_click(
    request: Request, token: Token, runtime: Annotated[Runtime, Depends(runtime_of)]
) -> HTMLResponse:
    """Opt the token's user out of the token's type; 400 for a bad or expired token."""
    try:
        user_id, event = runtime.postroom.notifications.unsubscribe(token)
    except TokenError as exc:
        return _page(request, 400, error=str(exc))
    user = get_user(runtime.postroom.engine, user_id)
    return _page(request, 200, done=True, type=event, user=user.username if user else "")
