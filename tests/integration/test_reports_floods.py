"""Error reports under load and trouble, on SQLite and PostgreSQL: a burst from several
processes is one report and one summary; the global cap; web.debug; a broken outbox
goes to the log and the app goes on; an error while reporting is not reported."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from tests.support.pg import throwaway_engine

from postroom import Postroom
from postroom.reports import ErrorReportHandler
from postroom.reports.request import RequestInfo
from postroom.store.schema import messages

ADMINS = {"mail.transport": "memory", "mail.admins": "ops@example.org"}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield dict(ADMINS)
        return
    with throwaway_engine() as engine:
        yield {**ADMINS, "database.url": engine.url.render_as_string(hide_password=False)}


def reports_queued(postroom: Postroom) -> list[str]:
    with postroom.engine.connect() as connection:
        rows = connection.execute(select(messages.c.subject).order_by(messages.c.id))
        return [row[0] for row in rows]


def failing_request(path: str = "/orders/1") -> RequestInfo:
    return RequestInfo("GET", f"http://app.example.org{path}", path, client="127.0.0.1")


def _burst(home: str, settings: dict[str, str], count: int) -> None:
    with Postroom(home, settings=settings) as postroom:
        reporter = postroom.error_reports
        for number in range(count):
            try:
                raise RuntimeError(f"database timeout {number}")
            except RuntimeError as error:
                reporter.exception(error, failing_request(f"/orders/{number}"))


def test_a_burst_from_four_processes_is_one_report_then_one_summary(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    with Postroom(tmp_path, settings=settings) as postroom:
        _ = postroom.engine  # the schema, once, before the processes start
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_burst, args=(str(tmp_path), settings, 250)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with Postroom(tmp_path, settings=settings) as postroom:
        assert len(reports_queued(postroom)) == 1
        reporter = postroom.error_reports
        later = reporter.clock() + postroom.config.settings.reports.throttle + 1
        assert len(reporter.flush_due(later)) == 1
        subjects = reports_queued(postroom)
    assert subjects[0].startswith("ERROR (INTERNAL IP): RuntimeError: database timeout")
    assert subjects[1].startswith("ERROR summary: 999 more since ")


def test_past_the_cap_per_minute_errors_are_counted_not_mailed(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    with Postroom(tmp_path, settings={**settings, "reports.max_per_minute": "5"}) as postroom:
        reporter = postroom.error_reports
        for number in range(12):  # twelve different bugs: twelve fingerprints
            error = type(f"Bug{number}", (Exception,), {})("broken")
            reporter.exception(error, failing_request(f"/route{number}"))
        assert len(reports_queued(postroom)) == 5
        # A minute later, the summaries of the seven counted ones come (capped again at 5).
        assert len(reporter.flush_due(reporter.clock() + 61)) == 5


def test_with_web_debug_nothing_is_mailed(tmp_path: Path) -> None:
    with Postroom(tmp_path, settings={**ADMINS, "web.debug": "true"}) as postroom:
        postroom.error_reports.exception(ValueError("x"), failing_request())
        assert reports_queued(postroom) == []


def test_a_broken_outbox_sends_the_report_to_the_log_and_the_caller_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Postroom(tmp_path, settings=ADMINS) as postroom:
        with postroom.engine.begin() as connection:
            connection.execute(text("DROP TABLE error_reports"))
        postroom.error_reports.exception(ValueError("the app's own error"), failing_request())
    logged = [r for r in caplog.records if r.name == "postroom.reports"]
    assert len(logged) == 1
    assert "could not be queued; here it is instead" in logged[0].getMessage()
    assert "ValueError: the app's own error" in logged[0].getMessage()


def test_an_error_while_reporting_is_never_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Postroom(tmp_path, settings=ADMINS) as postroom:
        with postroom.engine.begin() as connection:
            connection.execute(text("DROP TABLE error_reports"))
        handler = ErrorReportHandler(postroom)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            try:
                raise ValueError("first")
            except ValueError:
                logging.getLogger("app").exception("the app failed")
        finally:
            root.removeHandler(handler)
        with postroom.engine.connect() as connection:
            queued = connection.execute(select(func.count()).select_from(messages)).scalar()
    assert queued == 0
    assert len([r for r in caplog.records if r.name == "postroom.reports"]) == 1


def test_the_logging_handler_reports_outside_requests_with_locals_scrubbed(
    tmp_path: Path,
) -> None:
    with Postroom(tmp_path, settings={**ADMINS, "reports.include_locals": "true"}) as postroom:
        handler = ErrorReportHandler(postroom)
        app_logger = logging.getLogger("nightly.job")
        app_logger.addHandler(handler)
        try:
            api_token = "Local-Token-Secret-1"
            batch = ["visible-batch-item"]
            try:
                raise KeyError(f"{len(api_token)} {batch[0]}")
            except KeyError:
                app_logger.exception("nightly import failed")
        finally:
            app_logger.removeHandler(handler)
        with postroom.engine.connect() as connection:
            raw = connection.execute(select(messages.c.raw)).scalar_one()
    assert b"Local-Token-Secret-1" not in raw
    assert b"api_token" in raw
    assert b"visible-batch-item" in raw
    assert b"Request" not in raw  # no request: a job, not a web page
