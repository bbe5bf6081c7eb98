"""``ErrorReportHandler``: a ``logging.Handler`` that reports logged exceptions, and
the request context the middlewares give it.

Flask and Django turn an unhandled exception into a 500 page themselves and log it
(``app.logger``, ``django.request``); the exception never reaches a WSGI middleware.
So the middlewares also put one of these on the root logger, acting only for records
logged inside a request they wrap: the report then carries that request. An
exception reported once (by the handler or by the middleware) is not reported again.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from postroom.reports.reporter import reporting
from postroom.reports.request import RequestInfo

if TYPE_CHECKING:
    from postroom.app import Postroom
    from postroom.reports.reporter import Reporter

logger = logging.getLogger("postroom.reports")


@dataclass
class Active:
    """The request a middleware is serving in this context, and where its reports go."""

    describe: Callable[[], RequestInfo]
    source: Source
    reported: set[int] = field(default_factory=set)  # id() of exceptions reported


active: contextvars.ContextVar[Active | None] = contextvars.ContextVar("active", default=None)


class Source:
    """Where reports go: the given Postroom, or one loaded from $POSTROOM_HOME on the
    first report (a home that cannot be used is logged once; the app goes on)."""

    def __init__(self, postroom: Postroom | None) -> None:
        self._postroom = postroom
        self._lock = threading.Lock()
        self._failed = False

    def reporter(self) -> Reporter | None:
        if self._postroom is None:
            with self._lock:
                if self._postroom is None and not self._failed:
                    try:
                        from postroom.app import Postroom

                        self._postroom = Postroom()
                    except Exception:
                        self._failed = True
                        logger.exception("error reports are off: postroom could not load")
        return None if self._postroom is None else self._postroom.error_reports


def report(source: Source, error: BaseException) -> None:
    """Report ``error`` with the active request (if any), unless already reported."""
    current = active.get()
    if current is not None:
        source = current.source
    if current is not None:
        if id(error) in current.reported:
            return
        current.reported.add(id(error))
    reporter = source.reporter()
    if reporter is None or reporting.get():
        return
    request = None
    if current is not None:
        try:
            request = current.describe()
        except Exception:
            logger.exception("the request of an error report could not be read")
    reporter.exception(error, request)


class ErrorReportHandler(logging.Handler):
    """Reports records logged with an exception (``logger.exception(...)``) at ERROR
    or above. ``postroom=``: where to; default: loaded from $POSTROOM_HOME. Inside a
    request a middleware serves, the report carries that request."""

    def __init__(self, postroom: Postroom | None = None, *, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self._source: Source | None = Source(postroom)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("postroom") or reporting.get():
            return  # postroom's own troubles are never reported as the app's
        if record.exc_info is None or record.exc_info[1] is None:
            return
        current = active.get()
        source = self._source or (current.source if current is not None else None)
        if source is None:
            return
        try:
            report(source, record.exc_info[1])
        except Exception:
            self.handleError(record)


class _RequestHandler(ErrorReportHandler):
    """On the root logger once per process: reports what an app logs inside a request
    a middleware serves (Flask's and Django's own 500s), to that middleware's postroom."""

    def __init__(self) -> None:
        super().__init__()
        self._source = None

    def emit(self, record: logging.LogRecord) -> None:
        if active.get() is not None:
            super().emit(record)


_installed: list[_RequestHandler] = []
_install_lock = threading.Lock()


def install_request_handler() -> None:
    """Put the request handler on the root logger (once per process)."""
    with _install_lock:
        if not _installed:
            _installed.append(_RequestHandler())
            logging.getLogger().addHandler(_installed[0])
