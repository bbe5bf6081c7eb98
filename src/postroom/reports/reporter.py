"""``Reporter``: an error (or a broken link) in, at most one report mail out.

Every occurrence is one short transaction: the fingerprint's row is read and
written, and when the occurrence is to be mailed its message is committed to the
outbox in the same transaction. Nothing is sent inside the request; a worker
delivers. If storing fails, the report goes to the log once and the caller goes on.
"""

from __future__ import annotations

import contextvars
import fnmatch
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine

from postroom.message import ComposePolicy, OutgoingMessage, compose
from postroom.reports import throttle
from postroom.reports.build import (
    Occurrence,
    Section,
    Server,
    as_html,
    as_text,
    sections,
    subject,
)
from postroom.reports.request import RequestInfo
from postroom.reports.scrub import Scrubber
from postroom.settings import Configuration
from postroom.store import reports as store
from postroom.store.engine import reading
from postroom.store.outbox import Outbox
from postroom.store.records import NewMessage

logger = logging.getLogger("postroom.reports")
#: Set while a report is being made: an error inside reporting is never reported.
reporting: contextvars.ContextVar[bool] = contextvars.ContextVar("reporting", default=False)
TYPES = {"error": "error_report", "broken_link": "broken_link"}


class Reporter:
    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        config: Configuration,
        policy: ComposePolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.clock = clock
        self.server = Server.here()
        self.reconfigure(config, policy)

    def reconfigure(self, config: Configuration, policy: ComposePolicy) -> None:
        self.config = config
        self.policy = policy
        settings = config.settings
        # The deployment's own secrets: never in a report, whatever the app put them in.
        secrets = [settings.mail.password.reveal(), _url_password(settings.database.url)]
        self.scrubber = Scrubber(settings.reports.scrub_names, tuple(s for s in secrets if s))

    @property
    def enabled(self) -> bool:
        """web.debug=true: nothing is mailed (the developer sees the error page)."""
        return not self.config.settings.web.debug

    # -- occurrences -----------------------------------------------------------------

    def exception(self, error: BaseException, request: RequestInfo | None = None) -> None:
        """Report ``error``; never raises."""
        if not self.enabled or reporting.get():
            return
        with_locals = self.config.settings.reports.include_locals
        self._report(
            lambda: Occurrence.of_exception(error, request, self.clock(), with_locals=with_locals)
        )

    def broken_link(self, request: RequestInfo) -> bool:
        """Report a 404 if it is a broken link by Django's rules; whether it was."""
        if not self.enabled or reporting.get() or not self.is_broken_link(request):
            return False
        self._report(lambda: Occurrence.broken_link(request, self.clock()))
        return True

    def is_broken_link(self, request: RequestInfo) -> bool:
        """A 404 with a Referer that is not the URL itself (bots), on a path no
        ``reports.ignore_404`` pattern matches, while ``reports.notify_404`` is on."""
        reports = self.config.settings.reports
        referer = request.header("Referer")
        if not reports.notify_404 or not referer:
            return False
        if urlsplit(referer)._replace(fragment="").geturl() == request.url:
            return False
        return not any(fnmatch.fnmatchcase(request.path, p) for p in reports.ignore_404)

    def _report(self, make: Callable[[], Occurrence]) -> None:
        token = reporting.set(True)
        occurrence: Occurrence | None = None
        try:
            occurrence = make()
            self._record(occurrence)
        except Exception:  # the report must never be the request's problem
            self._log_instead(occurrence)
        finally:
            reporting.reset(token)

    def _record(self, occurrence: Occurrence) -> None:
        now = occurrence.at
        reports = self.config.settings.reports
        fingerprint = occurrence.fingerprint()
        title = occurrence.title(self.scrubber)
        with self.engine.begin() as connection:
            row = store.load(connection, fingerprint) or store.first_seen(
                connection, fingerprint, occurrence.kind, title, occurrence.route, now
            )
            if row is None:  # inserted by another process between the two
                row = store.load(connection, fingerprint)
            assert row is not None
            capped = throttle.opens_window(row.seen, now, reports.throttle) and self._capped(
                connection, now
            )
            decision = throttle.occurred(row.seen, now, reports.throttle, capped=capped)
            store.save(connection, fingerprint, decision.seen, now=now, counted=1)
            if decision.mail:
                message = self._message(occurrence, earlier=decision.earlier)
                if message is not None:
                    self.outbox.insert(connection, [message], now=now)
        if decision.mail:
            self.outbox.made_due()

    def _capped(self, connection: Connection, now: float) -> bool:
        cap = self.config.settings.reports.max_per_minute
        return store.mailed_since(connection, now - throttle.CAP_WINDOW) >= cap

    # -- mail ------------------------------------------------------------------------

    def _message(
        self, occurrence: Occurrence, *, earlier: tuple[int, float | None]
    ) -> NewMessage | None:
        mail = self.config.settings.mail
        if not mail.admins:
            logger.warning("an error report has no recipient: set mail.admins")
            return None
        parts = sections(occurrence, self.scrubber, self.server, earlier=earlier)
        return self._mail(occurrence.kind, subject(occurrence, self.scrubber), parts)

    def _mail(self, kind: str, title: str, parts: list[Section]) -> NewMessage:
        """A report to mail.admins from mail.error_from, as text and HTML."""
        mail = self.config.settings.mail
        outgoing = OutgoingMessage(
            to=mail.admins,
            subject=title,
            text=as_text(title, parts),
            html=as_html(title, parts),
            type=TYPES[kind],
            from_=mail.error_from or None,
            automatic=True,
        )
        return NewMessage.from_composed(compose(outgoing, self.policy), type=TYPES[kind])

    def _log_instead(self, occurrence: Occurrence | None) -> None:
        """The outbox failed: the report goes to the log, once, and the request goes on."""
        try:
            if occurrence is None:
                logger.exception("an error report could not be made")
                return
            parts = sections(occurrence, self.scrubber, self.server, earlier=(0, None))
            logger.error(
                "an error report could not be queued; here it is instead:\n%s",
                as_text(subject(occurrence, self.scrubber), parts),
                exc_info=False,
            )
        except Exception:
            logger.error("an error report could neither be queued nor logged")

    # -- summaries -------------------------------------------------------------------

    def flush_due(self, now: float | None = None) -> list[int]:
        """Mail the summaries whose window has closed ("37 more since 14:02, last at
        14:09"); their ids. A worker's housekeeping calls this."""
        now = self.clock() if now is None else now
        with self.engine.connect() as connection:
            fingerprints = store.due(reading(connection), now)
        ids: list[int] = []
        for fingerprint in fingerprints:
            with self.engine.begin() as connection:
                row = store.load(connection, fingerprint)
                due = row.seen.summary_due_at if row is not None else None
                if row is None or due is None or due > now:
                    continue  # another worker summarised it
                decision = throttle.summarised(row.seen, now, capped=self._capped(connection, now))
                store.save(connection, fingerprint, decision.seen, now=row.last_at, counted=0)
                if decision.mail:
                    message = self._summary(row, decision.earlier)
                    if message is not None:
                        ids += self.outbox.insert(connection, [message], now=now)
        if ids:
            self.outbox.made_due()
        return ids

    def _summary(self, row: store.ErrorRow, earlier: tuple[int, float | None]) -> NewMessage | None:
        mail = self.config.settings.mail
        if not mail.admins:
            return None
        count, since = earlier
        what = f"{count} more since {_clock(since)}, last at {_clock(row.last_at)}"
        label = "Broken link" if row.kind == "broken_link" else "ERROR"
        title = " ".join(f"{label} summary: {what}: {row.title}".split())[:150]
        parts: list[Section] = [
            (
                "Repeats",
                [
                    ("Error", row.title),
                    ("Since the last mail", what),
                    ("In all", f"{row.total} since {_clock(row.first_at)}"),
                    ("Fingerprint", row.fingerprint),
                ],
            ),
            ("Why one mail", "Repeats of one error within reports.throttle are counted, "
             "not mailed one by one. The first report has the traceback and the request."),
        ]  # fmt: skip
        return self._mail(row.kind, title, parts)


def _url_password(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return (make_url(url).password or "") if url else ""
    except ArgumentError:
        return ""


def _clock(at: float | None) -> str:
    from datetime import UTC, datetime

    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")
