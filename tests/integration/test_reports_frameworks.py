"""Error reports from real Flask, Django and FastAPI apps over real HTTP: the app's
own 500 is untouched, one scrubbed report reaches mail.admins, repeats collapse, and
broken links follow Django's rules."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.support.notify import deliver, mails
from tests.support.smtpd import SMTPServer
from tests.support.webapps import (
    MAIL_PASSWORD,
    SECRET_WORDS,
    django_app,
    fastapi_app,
    flask_app,
    serve_asgi,
    serve_wsgi,
)

from postroom import Postroom
from postroom.store.schema import messages

CARD = "4111 1111 1111 1111"
BEARER = "abcDEF123456ghiJKL7890"
SECRETS = {
    "Authorization": f"Bearer {BEARER}",
    "Cookie": "sessionid=Cookie-Secret-3",
    "X-Api-Key": "Header-Key-Secret-4",
    "Proxy-Authorization": "Basic UHJveHktU2VjcmV0LTU=",
    "X-Session-Token": "Named-Header-Secret-6",
}
LEAKS = [
    BEARER, "Cookie-Secret-3", "Header-Key-Secret-4", "UHJveHktU2VjcmV0LTU",
    "Named-Header-Secret-6", SECRET_WORDS["password"], SECRET_WORDS["api_key"],
    "Query-Token-Secret-7", "Url-Pass-Secret-8", MAIL_PASSWORD, "4111111111111111", CARD,
]  # fmt: skip

Framework = tuple[Callable[[Postroom], Any], Callable[[Any], AbstractContextManager[str]]]
FRAMEWORKS: dict[str, Framework] = {
    "flask": (flask_app, serve_wsgi),
    "django": (django_app, serve_wsgi),
    "fastapi": (fastapi_app, serve_asgi),
}


@pytest.fixture(params=sorted(FRAMEWORKS))
def site(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SMTPServer
) -> Iterator[tuple[str, Postroom]]:
    settings = {
        "mail.enabled": "true",
        **smtp_server.settings_flags(),
        "mail.admins": "ops@example.org, dev@example.org",
        "mail.error_from": "App Errors <errors@example.org>",
        "mail.password": MAIL_PASSWORD,
        "mail.allow_plaintext_auth": "true",
    }
    make_app, serve = FRAMEWORKS[request.param]
    with Postroom(tmp_path, settings=settings) as postroom, serve(make_app(postroom)) as url:
        yield url, postroom


def reports(postroom: Postroom) -> list[tuple[str, str, bytes]]:
    with postroom.engine.connect() as connection:
        rows = connection.execute(
            select(messages.c.type, messages.c.subject, messages.c.raw).order_by(messages.c.id)
        )
        return [(row[0], row[1], row[2]) for row in rows]


def fail(url: str, item: int = 7) -> httpx.Response:
    return httpx.post(
        f"{url}/items/{item}?token=Query-Token-Secret-7&page=2",
        headers={**SECRETS, "Referer": f"{url}/page"},
        data={
            "name": "Visible-Name",
            "password": SECRET_WORDS["password"],
            "api_key": SECRET_WORDS["api_key"],
            "note": f"paid with {CARD}, see https://bob:Url-Pass-Secret-8@files.example.org/x",
        },
        timeout=30,
    )


def test_an_unhandled_error_is_one_scrubbed_report_and_the_apps_500_is_untouched(
    site: tuple[str, Postroom], smtp_server: SMTPServer
) -> None:
    url, postroom = site
    answer = fail(url)
    assert answer.status_code == 500
    ((kind, subject, raw),) = reports(postroom)
    assert kind == "error_report"
    assert subject.startswith("ERROR (INTERNAL IP): ValueError: item 7 is broken")
    assert subject.endswith("at /items/7")
    deliver(postroom)
    ((rcpts, message),) = mails(smtp_server)
    assert rcpts == ["dev@example.org", "ops@example.org"]
    assert message["From"] == "App Errors <errors@example.org>"
    delivered = smtp_server.messages[0].content
    for secret in LEAKS:
        for blob in (raw, delivered):
            assert secret.encode() not in blob, secret
            assert secret.replace(" ", "+").encode() not in blob, secret
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Visible-Name" in text  # the form was read, and what is not secret shows
    assert re.search(r"^page +2\r?$", text, re.MULTILINE)
    assert "Traceback (most recent call last)" in text
    assert "POST" in text
    assert message.get_body(("html",)) is not None


def test_repeats_collapse_into_one_summary(site: tuple[str, Postroom]) -> None:
    url, postroom = site
    for item in range(12):  # /items/{id}: one route, one fingerprint
        assert fail(url, item).status_code == 500
    assert len(reports(postroom)) == 1
    reporter = postroom.error_reports
    assert reporter.flush_due() == []  # the window is still open
    later = reporter.clock() + postroom.config.settings.reports.throttle + 1
    assert len(reporter.flush_due(later)) == 1
    summary = reports(postroom)[-1]
    assert summary[1].startswith("ERROR summary: 11 more since ")
    assert reporter.flush_due(later + 1) == []


def test_broken_links_follow_djangos_rules(site: tuple[str, Postroom]) -> None:
    url, postroom = site
    assert httpx.get(f"{url}/missing", headers={"Referer": f"{url}/page"}).status_code == 404
    assert httpx.get(f"{url}/missing-2").status_code == 404  # no Referer: typed or a bot
    itself = f"{url}/missing-3"
    assert httpx.get(itself, headers={"Referer": itself}).status_code == 404  # a bot
    assert httpx.get(f"{url}/wp-login.php", headers={"Referer": f"{url}/"}).status_code == 404
    assert httpx.get(f"{url}/favicon.ico", headers={"Referer": f"{url}/"}).status_code == 404
    foreign = httpx.get(f"{url}/missing-4", headers={"Referer": "https://elsewhere.example/x"})
    assert foreign.status_code == 404
    found = [(kind, subject) for kind, subject, _ in reports(postroom)]
    assert found == [
        ("broken_link", "Broken internal link (INTERNAL IP): Broken link to /missing"),
        ("broken_link", "Broken external link (EXTERNAL IP): Broken link to /missing-4"),
    ]
