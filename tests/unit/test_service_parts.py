"""Pure parts of the HTTP service: host checks, rates, login brake, tokens, chart."""

from __future__ import annotations

import threading

import pytest

from postroom.delivery.doorbell import Doorbell
from postroom.errors import (
    AddressError,
    BroadcastError,
    ConfigError,
    DirectoryError,
    HeaderError,
    MessageTooLargeError,
    NameTakenError,
    NotFoundError,
    PostroomError,
)
from postroom.runtime.listener import conninfo
from postroom.service.console.auth import safe_next
from postroom.service.console.dashboard import MINUTES, hour_chart
from postroom.service.console.sessions import MAX_FAILURES, WINDOW, LoginThrottle
from postroom.service.console.views import mail_html
from postroom.service.errors import status_of
from postroom.service.guards import host_allowed, served_hosts
from postroom.service.tokens import RateLimiter
from postroom.settings import Home, RateLimit, load
from postroom.store.tokens import parse_token

SERVED = ("localhost", "127.0.0.1", "::1", "mail.example.org", ".lab.example")


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8025",
        "127.0.0.1:8025",
        "[::1]:8025",
        "MAIL.example.org",
        "mail.example.org.",
        "lab.example",
        "omero.lab.example:443",
    ],
)
def test_served_host_names_are_answered(host: str) -> None:
    assert host_allowed(host, SERVED)


@pytest.mark.parametrize(
    "host", ["attacker.example", "mail.example.org.evil", "evillab.example", "", "[::2]:80"]
)
def test_other_host_names_are_refused(host: str) -> None:
    assert not host_allowed(host, SERVED)


def test_star_serves_any_name() -> None:
    assert host_allowed("anything.example", ("*",))


def test_served_hosts_come_from_bind_public_url_and_the_list() -> None:
    config = load(
        Home.resolve("/nonexistent-postroom-home"),
        flags={
            "web.bind": "10.1.2.3:8025",
            "web.public_url": "https://mail.example.org/postroom",
            "web.allowed_hosts": ".lab.example",
        },
        environ={},
    )
    served = served_hosts(config)
    assert {"10.1.2.3", "mail.example.org", ".lab.example", "localhost"} <= set(served)
    wildcard = load(Home.resolve("/nonexistent"), flags={"web.bind": "0.0.0.0:80"}, environ={})
    assert "0.0.0.0" not in served_hosts(wildcard)


def test_a_token_bucket_allows_its_count_then_says_how_long_to_wait() -> None:
    limiter = RateLimiter(RateLimit(3, 60.0))
    assert [limiter.wait_time(1, now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_time(1, now=100.0) == pytest.approx(20.0)
    assert limiter.wait_time(2, now=100.0) == 0.0  # another token has its own bucket
    assert limiter.wait_time(1, now=120.5) == 0.0  # one request's worth came back
    assert RateLimiter(None).wait_time(1) == 0.0


def test_failed_logins_brake_per_username_and_per_address() -> None:
    throttle = LoginThrottle()
    for _ in range(MAX_FAILURES):
        assert throttle.wait_time("root", "10.0.0.1", now=0.0) == 0.0
        throttle.failed("root", "10.0.0.1", now=0.0)
    assert throttle.wait_time("root", "10.0.0.9", now=1.0) == pytest.approx(WINDOW - 1)
    assert throttle.wait_time("ada", "10.0.0.1", now=1.0) == pytest.approx(WINDOW - 1)
    assert throttle.wait_time("ada", "10.0.0.9", now=1.0) == 0.0
    assert throttle.wait_time("root", "10.0.0.1", now=WINDOW + 1) == 0.0


@pytest.mark.parametrize(
    ("token", "valid"),
    [
        ("pr_abcdefABCDEF_" + "x" * 43, True),
        ("pr_abcdefABCDEF_" + "x" * 42, False),
        ("pr_abc_" + "x" * 43, False),
        ("Bearer pr_abcdefABCDEF_" + "x" * 43, False),
        ("", False),
    ],
)
def test_tokens_have_one_shape(token: str, valid: bool) -> None:
    assert (parse_token(token) is not None) == valid


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/console/outbox/3?view=html", "/console/outbox/3?view=html"),
        ("/api/docs", "/api/docs"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/metrics", "/console/"),
        (None, "/console/"),
    ],
)
def test_after_login_only_pages_of_the_console_are_a_destination(
    target: str | None, safe: str
) -> None:
    assert safe_next(target) == safe


def test_the_hour_chart_has_a_bar_per_minute_scaled_to_the_busiest() -> None:
    now = 7200.0 + 30
    chart = hour_chart([(7200.0, 10), (7140.0, 5)], now)
    assert len(chart.bars) == MINUTES
    assert chart.top == 10
    assert chart.bars[-1].count == 10
    assert chart.bars[-1].h == chart.height
    assert chart.bars[-2].count == 5
    assert chart.bars[0].count == 0
    empty = hour_chart([], now)
    assert empty.top == 1
    assert all(bar.h == 0 for bar in empty.bars)


def test_a_mails_html_gets_a_policy_that_loads_and_runs_nothing() -> None:
    framed = mail_html("<p>hi</p>")
    assert framed.startswith('<meta http-equiv="Content-Security-Policy"')
    assert "default-src 'none'" in framed
    assert framed.endswith("<p>hi</p>")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MessageTooLargeError(size=10, limit=5), 413),
        (AddressError("bad", address="x"), 422),
        (HeaderError("bad", header="Subject"), 422),
        (NotFoundError("no user x"), 404),
        (NameTakenError("taken"), 409),
        (DirectoryError("bad name"), 422),
        (BroadcastError("blank"), 422),
        (ConfigError("schema", key="database.url"), 503),
        (ConfigError("bad", key="mail.port"), 422),
    ],
)
def test_each_kind_of_error_has_its_status(error: PostroomError, status: int) -> None:
    assert status_of(error)[0] == status


def test_the_doorbell_counts_rings_so_none_is_missed() -> None:
    bell = Doorbell()
    seen = bell.rings
    bell.ring()  # rung between the look at the queue and the wait
    assert bell.wait(seen, timeout=30) is True
    assert bell.wait(bell.rings, timeout=0.01) is False
    waiting = bell.rings
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(bell.wait(waiting, timeout=30)))
    waiter.start()
    bell.ring()
    waiter.join(timeout=30)
    assert result == [True]


def test_the_listener_connects_with_the_database_url() -> None:
    info = conninfo("postgresql+psycopg://mail:s3cret@db.example:5433/postroom?sslmode=require")
    assert "host=db.example" in info
    assert "port=5433" in info
    assert "dbname=postroom" in info
    assert "user=mail" in info
    assert "sslmode=require" in info
