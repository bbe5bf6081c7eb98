"""The console in real headless Chromium, clicked through as an admin would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from playwright.sync_api import Browser, Page, expect
from tests.support.browser import chromium, screenshots_dir
from tests.support.service import Service, running_service
from tests.support.smtpd import SMTPServer, start_server
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def smtp() -> Iterator[SMTPServer]:
    server = start_server()
    server.handler.rcpt_replies["*@refused.example"] = "550 5.1.1 no such user here"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, smtp: SMTPServer) -> Iterator[Service]:
    env = {
        "POSTROOM_MAIL_ENABLED": "true",
        "POSTROOM_MAIL_HOST": smtp.host,
        "POSTROOM_MAIL_PORT": str(smtp.port),
        "POSTROOM_MAIL_FROM": "LabKey <labkey@lab.example>",
        "POSTROOM_WEB_RATE_LIMIT": "",
    }
    with running_service(tmp_path_factory.mktemp("console"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def catching(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("catching"), catch=True) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    folder = screenshots_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def log_in(page: Page, service: Service) -> None:
    page.goto(service.url + "/console/")
    expect(page).to_have_url(service.url + "/console/login?next=%2Fconsole%2F")
    shot(page, "login")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(service.first_password())
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def send(service: Service, **body: object) -> int:
    token = service.token("browser-test")
    with service.client(token) as client:
        answer = client.post("/api/v1/messages", json={"subject": "s", "text": "t", **body})
    assert answer.status_code == 202, answer.text
    return int(answer.json()["id"])


def test_log_in_and_run_a_test_email(page: Page, service: Service, smtp: SMTPServer) -> None:
    for number in range(3):
        send(service, to=f"user{number}@lab.example", subject=f"Plate {number} is done")
    wait_until(lambda: len(smtp.messages) >= 3, timeout=15)
    log_in(page, service)
    expect(page.locator('[data-state="sent"] .count')).to_have_text("3")
    shot(page, "dashboard")
    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_label("Send to").fill("ops@lab.example")
    page.get_by_role("button", name="Send a test").click()
    diagnosis = page.locator("[data-diagnosis]")
    expect(diagnosis).to_have_attribute("data-diagnosis", "ok")
    expect(page.locator('[data-step="connect"]')).to_contain_text("✓")
    expect(diagnosis).to_contain_text("Test message sent to ops@lab.example")
    shot(page, "settings", full_page=False)
    wait_until(lambda: any("ops@lab.example" in m.rcpt_tos for m in smtp.messages), 15)


def test_a_failed_message_shows_why_and_can_be_retried(
    page: Page, service: Service, smtp: SMTPServer
) -> None:
    pk = send(service, to="bob@refused.example", subject="Your account")
    log_in(page, service)
    page.goto(service.url + f"/console/outbox/{pk}")

    def failed() -> bool:
        page.reload()
        return page.locator("[data-status]").inner_text() == "failed"

    wait_until(failed, timeout=20, step=0.3)
    expect(page.locator("[data-last-error]")).to_contain_text("550 5.1.1 no such user here")
    expect(page.locator("#raw")).to_have_value(
        page.locator("#raw").input_value()
    )  # the copyable message is there
    assert "Subject: Your account" in page.locator("#raw").input_value()
    shot(page, "message-failed")
    smtp.handler.rcpt_replies.clear()
    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_role("status").last).to_contain_text("queued for a new try")

    def sent() -> bool:
        page.reload()
        return page.locator("[data-status]").inner_text() == "sent"

    wait_until(sent, timeout=20, step=0.3)
    assert any("bob@refused.example" in m.rcpt_tos for m in smtp.messages)
    smtp.handler.rcpt_replies["*@refused.example"] = "550 5.1.1 no such user here"


class _Hits(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback that counts what reaches it."""
    _Hits.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Hits.hits
    server.shutdown()
    server.server_close()


def test_a_hostile_mail_runs_nothing(
    page: Page, service: Service, listener: tuple[str, list[str]]
) -> None:
    url, hits = listener
    html = (
        f"<p>Hello</p><script>document.title='PWNED';fetch('{url}/script')</script>"
        f"<img src=x onerror=\"parent.document.body.innerHTML='PWNED';fetch('{url}/onerror')\">"
        f'<img src="{url}/remote-image"><a id="bad" href="javascript:fetch(\'{url}/link\')">'
        "click me</a>"
    )
    pk = send(
        service,
        to="eve@lab.example",
        subject="<script>document.title='PWNED'</script>",
        html=html,
        hold=True,
    )
    log_in(page, service)
    page.goto(service.url + "/console/outbox?status=held")
    expect(page.locator(f'[data-message="{pk}"]')).to_contain_text(
        "<script>document.title='PWNED'</script>"
    )
    page.goto(service.url + f"/console/outbox/{pk}?view=html")
    frame = page.frame_locator("iframe.preview")
    expect(frame.locator("p")).to_have_text("Hello")
    frame.locator("#bad").click()
    page.wait_for_load_state("networkidle")
    shot(page, "message-html")
    assert page.title() == f"Message {pk} · postroom"
    assert "PWNED" not in page.locator("body").inner_text().replace(
        "<script>document.title='PWNED'</script>", ""
    )
    assert hits == []


def test_mail_record_shows_mail_and_switches_recording(page: Page, catching: Service) -> None:
    send(catching, to="ada@lab.example", subject="Password reset", text="Reset: https://x/r/1")
    log_in(page, catching)
    expect(page.locator('[data-banner="recording"]')).to_be_visible()
    page.get_by_role("link", name="Mail record", exact=True).click()
    row = page.locator("tr[data-captured]").filter(has_text="Password reset")
    expect(row).to_be_visible()
    shot(page, "mail-record")
    row.get_by_role("link", name="Password reset").click()
    expect(page.locator("pre.text")).to_contain_text("Reset: https://x/r/1")
    page.get_by_role("link", name="Headers").click()
    expect(page.locator(".tab")).to_contain_text("ada@lab.example")
    page.get_by_role("link", name="Raw").click()
    expect(page.locator("pre.raw")).to_contain_text("Subject: Password reset")
    shot(page, "captured-message")
    page.get_by_role("link", name="← Mail record").click()
    page.get_by_role("button", name="Stop recording: deliver mail").click()
    expect(page.get_by_role("status").last).to_contain_text("Recording mode is off")
    expect(page.locator('[data-banner="recording"]')).to_have_count(0)
    page.get_by_role("button", name="Record mail instead of delivering it").click()
    expect(page.locator('[data-banner="recording"]')).to_be_visible()
    page.get_by_role("button", name="Clear the record").click()
    expect(page.get_by_role("status").last).to_contain_text("Cleared")
    expect(page.locator("tr[data-captured]")).to_have_count(0)


def test_users_and_a_broadcast(page: Page, service: Service, smtp: SMTPServer) -> None:
    log_in(page, service)
    page.get_by_role("link", name="Users", exact=True).click()
    for name in ("ada", "grace"):
        page.get_by_label("Username").fill(name)
        page.get_by_label("Address").fill(f"{name}@lab.example")
        page.get_by_role("button", name="Add", exact=True).click()
        expect(page.locator(f'tr[data-user="{name}"]')).to_be_visible()
    page.locator('tr[data-user="grace"]').get_by_role("link", name="grace").click()
    page.get_by_label("active (inactive users get no mail)").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").last).to_contain_text("Saved")
    page.get_by_role("link", name="Users", exact=True).click()
    shot(page, "users")
    page.get_by_role("link", name="Broadcast", exact=True).click()
    page.get_by_label("Subject").fill("Maintenance on Friday")
    page.get_by_label("Text", exact=True).fill("The server is down from 6 to 8.")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("[data-count]")).to_have_attribute("data-count", "2")  # root, ada
    shot(page, "broadcast-confirm")
    page.get_by_role("button", name="Send to 2 user(s)").click()

    def done() -> bool:
        page.reload()
        return page.locator("[data-broadcast-status]").get_attribute("data-broadcast-status") in (
            "queued",
            "done",
        )

    wait_until(done, timeout=20, step=0.3)
    wait_until(
        lambda: any(
            "ada@lab.example" in m.rcpt_tos and b"Maintenance on Friday" in m.content
            for m in smtp.messages
        ),
        timeout=20,
    )
    assert not any(
        "grace@lab.example" in m.rcpt_tos and b"Maintenance on Friday" in m.content
        for m in smtp.messages
    )
    shot(page, "broadcast")


def test_tokens_page_shows_a_new_token_once(page: Page, service: Service) -> None:
    log_in(page, service)
    page.get_by_role("link", name="API tokens", exact=True).click()
    page.get_by_label("Name").fill("omero-server")
    page.get_by_role("button", name="Create").click()
    token = page.locator("#new-token").input_value()
    assert token.startswith("pr_")
    with service.client(token) as client:
        sent = client.post(
            "/api/v1/messages", json={"to": "x@lab.example", "subject": "s", "text": "t"}
        )
    assert sent.status_code == 202
    page.reload()
    assert token not in page.content()
    shot(page, "tokens")
    page.goto(service.url + "/api/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text("postroom")
    shot(page, "api-docs", full_page=False)


def test_notifications_page_previews_a_mail_and_a_user_opts_out(
    page: Page, service: Service
) -> None:
    log_in(page, service)
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    page.get_by_label("Type").select_option("pull_request.created")
    page.get_by_label("Data (JSON)").fill(
        '{"object": {"kind": "pull_request", "id": 9, "title": "Speed <up>", "owner": "alice"},'
        ' "reviewers": ["bob"]}'
    )
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-subject")).to_have_text(
        "alice asks you to review: Speed <up>"
    )
    expect(page.get_by_test_id("preview-text")).to_contain_text("opened pull request 9")
    frame = page.frame_locator("[data-testid=preview-html]")
    expect(frame.get_by_role("heading", name="Speed <up>")).to_be_visible()
    shot(page, "notifications")
    page.get_by_label("Data (JSON)").fill('{"object": {"kind": "pull_request"}}')
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert").first).to_contain_text("field object.id")

    send_token = service.token("browser-test")
    with service.client(send_token) as client:
        made = client.post("/api/v1/users", json={"username": "prefs-user", "email": "p@x.org"})
    assert made.status_code == 201, made.text
    page.goto(service.url + f"/console/users/{made.json()['id']}")
    prefs = page.get_by_test_id("prefs")
    expect(prefs.get_by_label("password.reset")).to_be_disabled()
    prefs.get_by_label("comment.created").uncheck()
    prefs.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_text("Notification preferences saved.")).to_be_visible()
    expect(page.get_by_test_id("prefs").get_by_label("comment.created")).not_to_be_checked()
    expect(page.get_by_test_id("prefs").get_by_label("message")).to_be_checked()
    with service.client(send_token) as client:
        stored = client.get("/api/v1/users/prefs-user/prefs").json()
    assert stored["off"] == ["comment.created"]


def test_errors_page_lists_reported_errors_with_their_counts(page: Page, service: Service) -> None:
    from postroom import Postroom
    from postroom.reports.request import RequestInfo

    with Postroom(service.home, settings={"mail.admins": "ops@example.org"}) as app_side:
        request = RequestInfo("GET", "http://app/orders/7", "/orders/7", client="10.1.2.3")
        for _ in range(3):
            app_side.error_reports.exception(ZeroDivisionError("division by zero"), request)
    log_in(page, service)
    page.get_by_role("link", name="Errors").click()
    table = page.get_by_test_id("error-reports")
    row = table.get_by_role("row").filter(has_text="ZeroDivisionError")
    expect(row).to_contain_text("division by zero at /orders/7")
    expect(row).to_contain_text("/orders/{id}")
    expect(row.get_by_role("cell").nth(3)).to_have_text("3")
    expect(row).to_contain_text("2 (mail at")
    shot(page, "errors")
