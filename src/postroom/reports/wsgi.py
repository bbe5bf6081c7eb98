"""``ErrorReportMiddleware``: error reports for any WSGI app (Flask, Django, ...).

::

    app.wsgi_app = ErrorReportMiddleware(app.wsgi_app)          # Flask
    application = ErrorReportMiddleware(get_wsgi_application())  # Django

An exception that reaches it is reported and re-raised; one the framework turns into
its own 500 page is reported from its log record (see :mod:`postroom.reports.handler`).
A 404 is reported as a broken link when Django's rules say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from postroom.reports.handler import Active, Source, active, install_request_handler, report
from postroom.reports.request import BODY_KEPT, FORM_TYPE, from_wsgi

if TYPE_CHECKING:
    from postroom.app import Postroom

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class _KeptInput:
    """wsgi.input that keeps the first bytes of a form body the app reads."""

    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self._left = length  # bytes of the body the app has not read
        self.kept = bytearray()

    def _keep(self, data: bytes) -> bytes:
        self._left -= len(data)
        if len(self.kept) < BODY_KEPT:
            self.kept += data[: BODY_KEPT - len(self.kept)]
        return data

    def body(self) -> bytes:
        """The form body for the report: what the app read, or, if it read nothing
        (it failed first), the body read now, up to the size kept."""
        if not self.kept and self._left > 0:
            with contextlib.suppress(OSError, ValueError):
                self._keep(self._stream.read(min(self._left, BODY_KEPT)))
        return bytes(self.kept)

    def read(self, *args: Any) -> bytes:
        return self._keep(self._stream.read(*args))

    def readline(self, *args: Any) -> bytes:
        return self._keep(self._stream.readline(*args))

    def readlines(self, *args: Any) -> list[bytes]:
        return [self._keep(line) for line in self._stream.readlines(*args)]

    def __iter__(self) -> Iterator[bytes]:
        return (self._keep(line) for line in self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ErrorReportMiddleware:
    def __init__(self, app: WSGIApp, *, postroom: Postroom | None = None) -> None:
        self.app = app
        self._source = Source(postroom)
        install_request_handler()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        kept: _KeptInput | None = None
        if str(environ.get("CONTENT_TYPE", "")).lower().startswith(FORM_TYPE):
            kept = _KeptInput(environ["wsgi.input"], _length(environ))
            environ["wsgi.input"] = kept
        status: list[int] = []

        def describe() -> Any:
            return from_wsgi(environ, kept.body() if kept else b"")

        def noting_status(code: str, headers: Any, *args: Any) -> Any:
            status[:] = [int(code.split(" ", 1)[0] or 0)]
            return start_response(code, headers, *args)

        current = Active(describe, self._source)
        token = active.set(current)
        try:
            try:
                result = self.app(environ, noting_status)
            except Exception as error:
                report(self._source, error)
                raise
            if status and status[0] == 404:
                self._broken_link(describe)
            return _Guarded(result, self._source, current)
        finally:
            active.reset(token)

    def _broken_link(self, describe: Callable[[], Any]) -> None:
        reporter = self._source.reporter()
        if reporter is not None:
            try:
                reporter.broken_link(describe())
            except Exception:  # a report never breaks the response
                import logging

                logging.getLogger("postroom.reports").exception("a broken link was not reported")


def _length(environ: Environ) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


class _Guarded:
    """The app's response body: an exception while it is produced is reported too."""

    def __init__(self, result: Iterable[bytes], source: Source, current: Active) -> None:
        self._result = result
        self._source = source
        self._current = current

    def __iter__(self) -> Iterator[bytes]:
        token = active.set(self._current)
        try:
            yield from self._result
        except Exception as error:
            report(self._source, error)
            raise
        finally:
            active.reset(token)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()
