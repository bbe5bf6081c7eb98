"""The HTTP service as an ASGI app: API, console, health, docs, static files.

:func:`create_app` takes a :class:`~postroom.runtime.Runtime` (whose worker may or may
not run in the same process) and wires the middlewares, outermost first: the Host
check and security headers on everything, then the gate in front of ``/api/v1``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from postroom import __version__
from postroom.runtime import Runtime
from postroom.service import api, docs, health, unsubscribe
from postroom.service.console.render import HERE as CONSOLE
from postroom.service.console.render import page
from postroom.service.console.routes import router as console_router
from postroom.service.console.sessions import (
    ConsoleSessions,
    CsrfRefused,
    LoginRequired,
    LoginThrottle,
)
from postroom.service.deps import ServiceState
from postroom.service.errors import install_error_handlers
from postroom.service.gate import ApiGate
from postroom.service.guards import Guards, served_hosts
from postroom.service.intake import Intake
from postroom.service.metrics import Metrics
from postroom.service.tokens import RateLimiter, TokenChecker
from postroom.store.web import IdempotentAnswers, Sessions

#: Room around mail.max_size for base64 (4/3) and the JSON around it.
BODY_OVERHEAD = 64 * 1024

DESCRIPTION = """Postroom's HTTP API: enqueue mail, look at the outbox, manage the
directory, broadcast, test the SMTP settings and read the mail record.

Every call needs `Authorization: Bearer TOKEN` (`postroom token create NAME
[--scope send|admin]`); a *send* token may only enqueue. Errors are
`{"error": {"code", "message", "field"}}`. Every POST takes an `Idempotency-Key`.
"""


def body_limit(max_size: int) -> int:
    return max_size * 4 // 3 + BODY_OVERHEAD


def create_app(runtime: Runtime) -> FastAPI:
    """The app; :func:`close_app` stops its intake thread once it stops serving."""
    settings = runtime.config.settings
    app = FastAPI(
        title="postroom",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=None,  # served by docs.py, behind a login
        docs_url=None,
        redoc_url=None,
    )
    engine = runtime.postroom.engine
    tokens = TokenChecker(engine)
    app.state.postroom = ServiceState(
        runtime=runtime,
        tokens=tokens,
        limiter=RateLimiter(settings.web.rate_limit),
        metrics=Metrics(runtime),
        console=ConsoleSessions(Sessions(engine), lifetime=settings.web.session_lifetime),
        throttle=LoginThrottle(),
        intake=Intake(runtime.postroom.outbox),
    )
    install_error_handlers(app, pages=_error_page)
    _console_errors(app)
    app.include_router(health.router)
    app.include_router(api.router)
    app.include_router(docs.router)
    app.include_router(console_router)
    app.include_router(unsubscribe.router)
    app.mount("/static/apidocs", StaticFiles(directory=docs.SWAGGER_FILES), name="apidocs")
    app.mount("/static", StaticFiles(directory=CONSOLE / "static"), name="static")
    app.add_middleware(
        ApiGate,
        checker=tokens,
        limiter=app.state.postroom.limiter,
        answers=IdempotentAnswers(engine),
        max_body=body_limit(settings.mail.max_size),
    )
    app.add_middleware(Guards, served=served_hosts(runtime.config))
    app.openapi_version = "3.1.0"
    return app


def close_app(app: FastAPI) -> None:
    state = app.state.postroom
    assert isinstance(state, ServiceState)
    state.intake.close()


def _error_page(request: Request, status: int, message: str) -> Response:
    """Errors under /console are pages, not JSON."""
    titles = {404: "Not found", 403: "Not allowed", 500: "Something went wrong"}
    return page(
        request,
        "error.html",
        None,
        request.app.state.postroom.runtime,
        status_code=status,
        title=titles.get(status, "That did not work"),
        message=message,
    )


def _console_errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> Response:
        from postroom.service.console.auth import login_redirect

        return login_redirect(exc.next_path)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        return _error_page(
            request,
            403,
            "This form was not sent from the page it belongs to, or its page is too old. "
            "Go back, reload the page and send it again.",
        )
