"""Error reports for web apps (DESIGN §7): 500s and broken links mailed to
``mail.admins`` through the outbox, scrubbed of secrets, floods collapsed.

::

    from postroom.reports import ErrorReportMiddleware        # WSGI: Flask, Django
    from postroom.reports import ASGIErrorReportMiddleware    # ASGI: Starlette, FastAPI
    from postroom.reports import ErrorReportHandler           # logging
"""

from postroom.reports.asgi import ASGIErrorReportMiddleware
from postroom.reports.handler import ErrorReportHandler
from postroom.reports.reporter import Reporter
from postroom.reports.wsgi import ErrorReportMiddleware

__all__ = ["ASGIErrorReportMiddleware", "ErrorReportHandler", "ErrorReportMiddleware", "Reporter"]
