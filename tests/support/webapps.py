"""Real web apps (Flask, Django, FastAPI) with postroom's error reports, served over
real HTTP on loopback: WSGI apps by wsgiref in a thread, ASGI apps by uvicorn."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import uvicorn
from fastapi import FastAPI, Request  # at module level: FastAPI reads the annotations
from tests.support.service import free_port
from tests.support.waiting import wait_until

from postroom import Postroom

SECRET_WORDS = {
    "password": "pw-Form-Secret-1",
    "api_key": "key-Field-Secret-2",
}


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True


@contextmanager
def serve_wsgi(app: Callable[..., Any]) -> Iterator[str]:
    server = make_server("127.0.0.1", free_port(), app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def flask_app(postroom: Postroom) -> Callable[..., Any]:
    from flask import Flask

    from postroom.reports import ErrorReportMiddleware

    app = Flask("reports_demo")

    @app.route("/items/<int:item>", methods=["GET", "POST"])
    def failing(item: int) -> str:
        password = SECRET_WORDS["password"]  # a local named like a secret
        raise ValueError(f"item {item} is broken (see {postroom_secret()}) {len(password)}")

    @app.route("/page")
    def page() -> str:
        return "<a href='/missing'>a broken link</a>"

    app.wsgi_app = ErrorReportMiddleware(app.wsgi_app, postroom=postroom)  # type: ignore[method-assign]
    return app


MAIL_PASSWORD = "Mail-Pass-Secret-9"


def postroom_secret() -> str:
    return MAIL_PASSWORD


def django_app(postroom: Postroom) -> Callable[..., Any]:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="django-test-key-not-secret",
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            USE_TZ=True,
            LOGGING_CONFIG=None,
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application

    from postroom.reports import ErrorReportMiddleware

    return ErrorReportMiddleware(get_wsgi_application(), postroom=postroom)


def _django_failing(request: Any, item: int) -> Any:
    raise ValueError(f"item {item} is broken (see {postroom_secret()})")


def _django_page(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("<a href='/missing'>a broken link</a>")


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [path("items/<int:item>", _django_failing), path("page", _django_page)]


def __getattr__(name: str) -> Any:  # Django reads ROOT_URLCONF.urlpatterns lazily
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


def fastapi_app(postroom: Postroom) -> Any:
    from postroom.reports import ASGIErrorReportMiddleware

    app = FastAPI()

    @app.api_route("/items/{item}", methods=["GET", "POST"])
    async def failing(item: int, request: Request) -> dict[str, str]:
        await request.body()
        raise ValueError(f"item {item} is broken (see {postroom_secret()})")

    @app.get("/page")
    async def page() -> dict[str, str]:
        return {"link": "/missing"}

    app.add_middleware(ASGIErrorReportMiddleware, postroom=postroom)
    return app
