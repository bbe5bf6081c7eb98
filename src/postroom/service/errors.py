"""Errors over HTTP: always ``{"error": {"code", "message", "field"}}``, never a traceback.

Postroom's own errors map to a status by kind (:func:`status_of`), bad JSON is 400,
a body that fails its model is 422 naming the field, a database that cannot be
reached is 503 with ``Retry-After``. Anything unexpected is logged here with its
traceback and answered with a 500 that says only that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from postroom.errors import (
    AddressError,
    BroadcastError,
    ConfigError,
    DirectoryError,
    EventError,
    HeaderError,
    MessageError,
    MessageTooLargeError,
    NameTakenError,
    NotFoundError,
    PostroomError,
)

logger = logging.getLogger("postroom.service")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raised by routes and the gate: answered as the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


#: The codes routes and the gate answer with, for every route's OpenAPI entry.
ERROR_STATUSES = {
    400: "Bad request: malformed JSON, a bad parameter, a token in the URL.",
    401: "No token, or not a valid one: send Authorization: Bearer TOKEN.",
    403: "The token's scope does not allow this.",
    404: "No such thing.",
    409: "A conflict: the name is taken, or an Idempotency-Key was used with another body.",
    413: "The request body is too large (mail.max_size plus overhead).",
    415: "The body is not JSON (Content-Type: application/json).",
    422: "The request is well-formed but refused; field names which part.",
    429: "Too many requests for this token; wait Retry-After seconds.",
    503: "The database cannot be reached, or the service is stopping; retry later.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in ERROR_STATUSES.items()
}


def status_of(error: PostroomError) -> tuple[int, str, str | None]:
    """(HTTP status, error code, field) of one of postroom's own errors."""
    if isinstance(error, MessageTooLargeError):
        return 413, "too_large", None
    if isinstance(error, AddressError):
        return 422, "invalid_address", None
    if isinstance(error, HeaderError):
        return 422, "invalid_header", "headers"
    if isinstance(error, EventError):
        return 422, "invalid_event", error.field
    if isinstance(error, MessageError):
        return 422, "invalid_message", None
    if isinstance(error, NotFoundError):
        return 404, "not_found", None
    if isinstance(error, NameTakenError):
        return 409, "exists", None
    if isinstance(error, DirectoryError | BroadcastError):
        return 422, "invalid", None
    if isinstance(error, ConfigError):
        if error.key == "database.url":
            return 503, "database_not_ready", None
        return 422, "invalid_setting", error.key
    return 422, "refused", None


def _field(location: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette names only the first
    route's when two routes share a path, as GET and POST /api/v1/users do)."""
    found: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        methods = getattr(route, "methods", None)
        if match != Match.NONE and methods:
            found.update(methods)
    return sorted(found)


#: Renders an error as a page, for paths that are pages (the console).
PageMaker = Callable[[Request, int, str], Response]


def install_error_handlers(app: FastAPI, *, pages: PageMaker | None = None) -> None:
    """Every error as the JSON envelope; under ``/console``, as a page from ``pages``."""

    def answer(
        request: Request,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        if pages is not None and request.url.path.startswith("/console"):
            return pages(request, status, message)
        return error_response(status, code, message, field=field, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return answer(
            request, exc.status, exc.code, exc.message, field=exc.field, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = list(exc.errors())
        first = problems[0] if problems else {}
        if first.get("type") == "json_invalid":
            return answer(
                request, 400, "bad_json", "the body is not valid JSON; send a JSON object"
            )
        field = _field(first.get("loc", ()))
        message = str(first.get("msg", "invalid request"))
        if field:
            message = f"{field}: {message}"
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more problem(s))"
        return answer(request, 422, "invalid", message, field=field)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "no such endpoint; see /api/docs"
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            message = f"{request.method} is not allowed here; use {', '.join(allowed)}"
        return answer(
            request,
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            message,
            headers=headers,
        )

    @app.exception_handler(PostroomError)
    async def postroom_error(request: Request, exc: PostroomError) -> Response:
        status, code, field = status_of(exc)
        return answer(request, status, code, str(exc), field=field)

    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: DBAPIError) -> Response:
        logger.error("database error: %s", " ".join(str(exc.orig or exc).split()))
        return answer(
            request,
            503,
            "database_unavailable",
            "the database cannot be reached right now; nothing was changed, retry later",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "an unexpected error; it is in the service's log")
