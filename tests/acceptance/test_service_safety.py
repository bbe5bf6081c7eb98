"""Nothing of the service is open that should be closed, and its API keeps to its
own description (schemathesis against /api/openapi.json)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.support.service import Service, running_service

#: Open to anyone: the login form, liveness, metrics (web.metrics_auth is off by
#: default), static files.
OPEN = {"/healthz", "/metrics", "/console/login"}
LINK = re.compile(r'href="([^"#]+)"')


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("walk")
    with running_service(home, catch=True, env={"POSTROOM_WEB_RATE_LIMIT": ""}) as running:
        yield running


def try_login(client: httpx.Client, password: str) -> httpx.Response:
    """Fetch the login form (for its token), then send it with ``password`` for root."""
    form = client.get("/console/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert token
    return client.post(
        "/console/login",
        data={
            "username": "root",
            "password": password,
            "login_token": token.group(1),
            "next": "/console/",
        },
    )


def log_in(service: Service, client: httpx.Client) -> None:
    done = try_login(client, service.first_password())
    assert done.status_code == 303
    assert done.headers["location"] == "/console/"


def console_links(service: Service) -> set[tuple[str, str]]:
    """(method, path) of every link and form of every console page an admin reaches."""
    seen: set[tuple[str, str]] = set()
    with httpx.Client(base_url=service.url) as client:
        log_in(service, client)
        token = service.token("walker")
        client.post(
            "/api/v1/messages",
            json={"to": "ada@example.org", "subject": "s", "text": "t", "hold": True},
            headers=service.bearer(token),
        )
        queue = ["/console/", "/console/outbox/1", "/console/captured"]
        visited: set[str] = set()
        while queue:
            path = queue.pop()
            if path in visited:
                continue
            visited.add(path)
            page = client.get(path)
            assert page.status_code in (200, 404), (path, page.status_code)
            for form in re.finditer(r'<form[^>]*method="(\w+)"[^>]*action="([^"]+)"', page.text):
                seen.add((form.group(1).upper(), urlsplit(form.group(2)).path))
            for link in LINK.findall(page.text):
                target = urlsplit(urljoin(path, link))
                if target.netloc or target.path.startswith("/static/"):
                    continue
                seen.add(("GET", target.path))
                if target.path.startswith("/console/") and target.path != "/console/logout":
                    queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return seen


def test_every_console_link_and_form_needs_a_login(service: Service) -> None:
    links = console_links(service)
    # The walk reached the console's pages and their forms:
    assert {
        ("GET", "/console/settings"),
        ("POST", "/console/settings/test-email"),
        ("POST", "/console/outbox/1/release"),
        ("POST", "/console/captured/clear"),
        ("POST", "/console/broadcasts/confirm"),
        ("POST", "/console/tokens"),
        ("POST", "/console/users"),
        ("POST", "/console/logout"),
        ("GET", "/console/outbox/1/raw"),
    } <= links
    with httpx.Client(base_url=service.url) as anonymous:
        for method, path in sorted(links):
            if path in OPEN:
                continue
            answer = anonymous.request(method, path)
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/console/login"), (method, path)


def test_every_api_operation_needs_a_token(service: Service) -> None:
    with httpx.Client(base_url=service.url) as client:
        spec = client.get(
            "/api/openapi.json", headers=service.bearer(service.token("spec-reader"))
        ).json()
        anonymous_spec = client.get("/api/openapi.json")
        anonymous_docs = client.get("/api/docs")
        operations = [
            (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
            for path, item in spec["paths"].items()
            for method in item
        ]
        assert len(operations) >= 18
        for method, path in operations:
            if path in OPEN or path == "/unsubscribe/1":  # signed links in mail: no login
                continue
            answer = client.request(method, path, json={})
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.json()["error"]["code"] == "unauthenticated"
    assert anonymous_spec.status_code == 401
    assert anonymous_docs.status_code == 303


def test_pages_forbid_framing_and_foreign_scripts(service: Service) -> None:
    with httpx.Client(base_url=service.url) as client:
        page = client.get("/console/login")
    assert page.headers["X-Frame-Options"] == "DENY"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-eval'" not in policy
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_logins_are_throttled(service: Service) -> None:
    with httpx.Client(base_url=service.url) as client:
        codes = [try_login(client, "guess").status_code for _ in range(6)]
        right = try_login(client, service.first_password())
    assert codes == [401] * 5 + [429]
    assert right.status_code == 429  # even the right password waits out the window
    assert "Too many failed logins" in right.text


def test_the_api_keeps_to_its_openapi_description(service: Service, tmp_path: Path) -> None:
    token = service.token("schemathesis")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{service.url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            # 422 for a value the schema cannot describe (an address that is not one,
            # a number used as a group name) is the API's documented answer.
            "--exclude-checks",
            "positive_data_acceptance",
            "--max-examples",
            "12",
            "--workers",
            "2",
            "--seed",
            "8025",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    tail = "\n".join(done.stdout.splitlines()[-60:])
    assert done.returncode == 0, tail
    assert "passed" in tail
    assert "Traceback" not in service.output
