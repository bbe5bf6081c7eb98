"""`postroom test-email` as an admin runs it, against real in-process SMTP servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
import trustme
from tests.support.cli import Run, run_postroom
from tests.support.smtpd import (
    Recorder,
    SilentServer,
    SMTPServer,
    TricklingServer,
    closed_port,
    server_context,
)

MakeServer = Callable[..., SMTPServer]
PASSWORD = "Zebra-Quartz-9481-secret"
TO = "admin@example.org"


def check(home: Path, *settings: str, to: str = TO, json_output: bool = False) -> Run:
    """Run ``postroom --set ... test-email --to TO`` with a 1 s timeout."""
    flags = [part for item in settings for part in ("--set", item)]
    flags += ["--set", "mail.timeout=1"]
    return run_postroom(
        home, *flags, "test-email", "--to", to, *(["--json"] if json_output else [])
    )


def server_settings(server: SMTPServer | SilentServer, security: str = "none") -> list[str]:
    return [f"mail.host={server.host}", f"mail.port={server.port}", f"mail.security={security}"]


def failed_at(run: Run, title: str) -> None:
    assert run.code == 1, run.output
    assert f"✗ {title}" in run.stdout, run.output
    assert f"Failed at {title}." in run.stdout


# -- success ------------------------------------------------------------------------------


def test_success_sends_the_test_message(smtp_server: SMTPServer, tmp_path: Path) -> None:
    run = check(tmp_path, *server_settings(smtp_server), "mail.from=Ops <ops@example.org>")

    assert run.code == 0, run.output
    for title in ("Resolve", "Connect", "Greeting", "EHLO capabilities", "MAIL FROM", "RCPT TO"):
        assert f"✓ {title}" in run.stdout
    assert "PIPELINING yes" in run.stdout
    assert "Test message sent." in run.stdout
    [received] = smtp_server.messages
    assert received.rcpt_tos == [TO]
    assert received.mail_from == "ops@example.org"
    message = message_from_bytes(received.content, policy=default)
    assert message["Subject"] == "postroom test message"
    assert message["From"] == "Ops <ops@example.org>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"]
    assert message["Message-ID"]


def test_mail_switched_off_is_a_warning_not_a_failure(
    smtp_server: SMTPServer, tmp_path: Path
) -> None:
    off = check(tmp_path, *server_settings(smtp_server))
    on = check(tmp_path, *server_settings(smtp_server), "mail.enabled=true")

    assert off.code == 0
    assert "mail.enabled is false" in off.stderr
    assert on.code == 0
    assert "mail.enabled" not in on.stderr
    assert len(smtp_server.messages) == 2


def test_json_output_is_json_only(smtp_server: SMTPServer, tmp_path: Path) -> None:
    run = check(tmp_path, *server_settings(smtp_server), json_output=True)

    assert run.code == 0
    report = json.loads(run.stdout)
    assert report["ok"] is True
    assert [step["name"] for step in report["steps"]] == [
        "resolve",
        "connect",
        "greeting",
        "ehlo",
        "mail",
        "rcpt",
        "data",
    ]
    ehlo = report["steps"][3]
    assert ehlo["data"]["pipelining"] is True
    assert all(isinstance(step["seconds"], float) for step in report["steps"])


def test_json_failure_names_the_step_and_fix(tmp_path: Path) -> None:
    run = check(tmp_path, "mail.host=127.0.0.1", f"mail.port={closed_port()}", json_output=True)

    assert run.code == 1
    report = json.loads(run.stdout)
    assert report["ok"] is False
    failed = report["steps"][-1]
    assert failed["name"] == "connect"
    assert failed["ok"] is False
    assert "mail.port" in failed["fix"]


def test_success_over_starttls_with_login(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    server = make_smtp_server(
        mode="starttls", tls_context=server_context(tls_ca), auth=("ops", PASSWORD)
    )
    run = check(
        tmp_path,
        *server_settings(server, "starttls"),
        f"mail.tls_ca_file={ca_file}",
        "mail.username=ops",
        f"mail.password={PASSWORD}",
    )

    assert run.code == 0, run.output
    assert "✓ STARTTLS and certificate" in run.stdout
    assert "✓ Login" in run.stdout
    assert "certificate for localhost, 127.0.0.1" in run.stdout
    assert len(server.messages) == 1


# -- one test per failure -----------------------------------------------------------------


def test_connection_refused(tmp_path: Path) -> None:
    run = check(tmp_path, "mail.host=127.0.0.1", f"mail.port={closed_port()}")

    failed_at(run, "Connect")
    assert "refused the connection" in run.stdout
    assert "fix: is the SMTP server running? check mail.host and mail.port" in run.stdout


def test_server_that_never_greets_times_out(silent_server: SilentServer, tmp_path: Path) -> None:
    run = check(tmp_path, *server_settings(silent_server))

    failed_at(run, "Greeting")
    assert "did not answer greeting within 1s" in run.stdout
    assert "firewall" in run.stdout


def test_implicit_tls_port_without_ssl_says_set_security_ssl(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, tmp_path: Path
) -> None:
    server = make_smtp_server(mode="ssl", tls_context=server_context(tls_ca))
    run = check(tmp_path, *server_settings(server, "none"))

    failed_at(run, "Greeting")
    assert "expects implicit TLS: set mail.security=ssl" in run.stdout


def test_starttls_configured_but_not_offered(smtp_server: SMTPServer, tmp_path: Path) -> None:
    run = check(tmp_path, *server_settings(smtp_server, "starttls"))

    failed_at(run, "STARTTLS and certificate")
    assert "does not offer STARTTLS" in run.stdout
    assert smtp_server.handler.mail_froms == []


def test_untrusted_certificate_suggests_tls_ca_file(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, tmp_path: Path
) -> None:
    server = make_smtp_server(mode="ssl", tls_context=server_context(tls_ca))
    run = check(tmp_path, *server_settings(server, "ssl"))

    failed_at(run, "TLS handshake and certificate")
    assert "is not trusted" in run.stdout
    assert "mail.tls_ca_file" in run.stdout


def test_certificate_for_another_host_names_it(
    make_smtp_server: MakeServer, tls_ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    server = make_smtp_server(
        mode="starttls", tls_context=server_context(tls_ca, "smtp.example.net")
    )
    run = check(tmp_path, *server_settings(server, "starttls"), f"mail.tls_ca_file={ca_file}")

    failed_at(run, "STARTTLS and certificate")
    assert "is for smtp.example.net, not 127.0.0.1" in run.stdout
    assert "set mail.host to a name the certificate holds" in run.stdout


def test_wrong_password_says_check_username_and_password(
    make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    server = make_smtp_server(auth=("ops", "the-right-one"))
    run = check(
        tmp_path, *server_settings(server), "mail.username=ops", f"mail.password={PASSWORD}"
    )

    failed_at(run, "Login")
    assert "535" in run.stdout
    assert "fix: check mail.username and mail.password" in run.stdout


def test_refused_recipient_shows_the_server_reply(
    make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    server = make_smtp_server(Recorder(rcpt_replies={"nobody@*": "550 5.1.1 no such user here"}))
    run = check(tmp_path, *server_settings(server), to="nobody@example.org")

    failed_at(run, "RCPT TO")
    assert "550 5.1.1 no such user here" in run.stdout
    assert server.messages == []


def test_bad_address_is_bad_input(tmp_path: Path) -> None:
    run = check(tmp_path, to="not an address")
    assert run.code == 2
    assert "not a valid e-mail address" in run.stderr


# -- the password never shows -------------------------------------------------------------


@pytest.mark.parametrize("json_output", [False, True])
@pytest.mark.parametrize(
    "scenario", ["success", "wrong password", "starttls missing", "refused", "timeout"]
)
def test_no_output_contains_the_password(
    make_smtp_server: MakeServer,
    silent_server: SilentServer,
    tmp_path: Path,
    scenario: str,
    json_output: bool,
) -> None:
    right = PASSWORD if scenario != "wrong password" else "something-else"
    server = make_smtp_server(auth=("ops", right))
    security = "starttls" if scenario == "starttls missing" else "none"
    target: SMTPServer | SilentServer = silent_server if scenario == "timeout" else server
    settings = server_settings(target, security)
    if scenario == "refused":
        settings = ["mail.host=127.0.0.1", f"mail.port={closed_port()}"]
    auth = "login" if scenario == "wrong password" else "plain"
    run = check(
        tmp_path,
        *settings,
        "mail.username=ops",
        f"mail.password={PASSWORD}",
        f"mail.auth={auth}",
        json_output=json_output,
    )
    assert (run.code == 0) == (scenario == "success"), run.output
    assert PASSWORD not in run.output
    if json_output:
        json.loads(run.stdout)


def test_a_missing_greeting_takes_about_the_timeout_not_twice_it(
    silent_server: SilentServer, tmp_path: Path
) -> None:
    flags = [part for item in server_settings(silent_server) for part in ("--set", item)]
    run = run_postroom(tmp_path, *flags, "--set", "mail.timeout=4", "test-email", "--to", TO,
                       "--json")  # fmt: skip
    greeting = next(s for s in json.loads(run.stdout)["steps"] if s["name"] == "greeting")
    assert "within 4s" in greeting["detail"]
    # 4 s of waiting for the greeting plus a short TLS probe of the port; it was 8 s.
    assert greeting["seconds"] < 7.5


def test_421_at_mail_from_is_the_server_closing_not_mail_from(
    make_smtp_server: MakeServer, tmp_path: Path
) -> None:
    server = make_smtp_server(Recorder(mail_reply="421 4.7.0 too many connections, try later"))
    run = check(tmp_path, *server_settings(server), json_output=True)
    failing = next(s for s in json.loads(run.stdout)["steps"] if not s["ok"])
    assert failing["name"] == "mail"
    assert "closed the session" in failing["detail"]
    assert "mail.from" not in failing["fix"]
    assert "try again later" in failing["fix"]


def test_ehlo_gives_this_machines_name(smtp_server: SMTPServer, tmp_path: Path) -> None:
    import socket

    check(tmp_path, *server_settings(smtp_server))
    assert smtp_server.handler.ehlo_names == [socket.getfqdn()]
    named = check(tmp_path, *server_settings(smtp_server), "mail.helo_name=mx.lab.example")
    assert named.code == 0
    assert smtp_server.handler.ehlo_names[-1] == "mx.lab.example"


@pytest.mark.parametrize(
    ("greeting_fast", "title"), [(False, "Greeting"), (True, "EHLO capabilities")]
)
def test_a_server_that_trickles_its_replies_fails_within_the_timeout(
    tmp_path: Path, greeting_fast: bool, title: str
) -> None:
    # One byte every 0.2 s: every read gets something, a whole reply would take ~10 s.
    server = TricklingServer(greeting_fast=greeting_fast)
    try:
        started = time.monotonic()
        run = check(tmp_path, f"mail.host={server.host}", f"mail.port={server.port}",
                    "mail.security=none")  # fmt: skip
        took = time.monotonic() - started
    finally:
        server.close()
    failed_at(run, title)
    assert "within 1s" in run.stdout
    assert took < 8  # start-up, the step's 1 s and a short TLS probe; it was minutes
