"""``ASGIErrorReportMiddleware``: error reports for any ASGI app (Starlette, FastAPI).

::

    app = FastAPI()
    app.add_middleware(ASGIErrorReportMiddleware)      # or: app = ASGIErrorReportMiddleware(app)

Pure ASGI (no BaseHTTPMiddleware): the body streams through untouched, a form body's
first bytes are kept for the report. An exception is reported and re-raised, so the
framework's own 500 handling runs as before; a 404 may be a broken link.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from postroom.reports.handler import Active, Source, active, install_request_handler, report
from postroom.reports.request import BODY_KEPT, FORM_TYPE, from_asgi

if TYPE_CHECKING:
    from postroom.app import Postroom

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIErrorReportMiddleware:
    def __init__(self, app: ASGIApp, *, postroom: Postroom | None = None) -> None:
        self.app = app
        self._source = Source(postroom)
        install_request_handler()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        keep = headers.get(b"content-type", b"").decode("latin-1").lower().startswith(FORM_TYPE)
        kept = bytearray()

        async def keeping() -> Message:
            message = await receive()
            if keep and message.get("type") == "http.request" and len(kept) < BODY_KEPT:
                kept.extend(message.get("body", b"")[: BODY_KEPT - len(kept)])
            return message

        async def noting(message: Message) -> None:
            # A broken link is recorded before the client sees its 404, as Django does.
            if message.get("type") == "http.response.start" and message.get("status") == 404:
                reporter = self._source.reporter()
                if reporter is not None:
                    try:
                        await _in_thread(reporter.broken_link, describe())
                    except Exception:  # a report never breaks the response
                        logging.getLogger("postroom.reports").exception(
                            "a broken link was not reported"
                        )
            await send(message)

        def describe() -> Any:
            return from_asgi(scope, bytes(kept))

        token = active.set(Active(describe, self._source))
        try:
            await self.app(scope, keeping if keep else receive, noting)
        except Exception as error:
            await _in_thread(report, self._source, error)
            raise
        finally:
            active.reset(token)


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Reporting writes to the database: off the event loop, as the app's own sync work."""
    import asyncio
    import contextvars

    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(None, context.run, function, *args)
