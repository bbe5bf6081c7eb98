"""`postroom catch` and `postroom captured` driven as a developer would, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.cli import run_postroom

from postroom.testing import CaptureServer

MESSAGE = (
    "From: Lab <lab@example.org>\r\nTo: ada@example.org\r\nSubject: Your data is ready\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain\r\n\r\nDownload: https://lab.example.org/d/1\r\n"
    '--b\r\nContent-Type: text/html\r\n\r\n<a href="https://lab.example.org/d/1">get</a>\r\n'
    "--b--\r\n"
)
RECORDING = {"POSTROOM_MAIL_ENABLED": "true", "POSTROOM_MAIL_TRANSPORT": "capture"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Catch:
    home: Path
    port: int
    proc: subprocess.Popen[str]

    def stop(self) -> str:
        """SIGTERM, then what it printed on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def catch(tmp_path: Path) -> Iterator[Catch]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env.update({"POSTROOM_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "postroom", "catch", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"220"):
                    break
        except OSError:
            pass
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "postroom catch did not start"
        time.sleep(0.1)
    started = Catch(tmp_path, port, proc)
    yield started
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_an_app_pointed_at_catch_has_its_mail_listed_and_shown(catch: Catch) -> None:
    with smtplib.SMTP("127.0.0.1", catch.port, timeout=10) as client:
        client.sendmail("lab@example.org", ["ada@example.org", "pi@example.org"], MESSAGE)
        client.sendmail("lab@example.org", ["bob@example.org"], MESSAGE.replace("Your", "Bob's"))

    listed = run_postroom(catch.home, "captured", "list")
    assert listed.code == 0, listed.output
    assert "Your data is ready" in listed.stdout
    assert "ada@example.org, pi@example.org" in listed.stdout
    as_json = json.loads(run_postroom(catch.home, "captured", "list", "--json").stdout)
    assert [m["subject"] for m in as_json] == ["Bob's data is ready", "Your data is ready"]
    assert as_json[1]["rcpt_tos"] == ["ada@example.org", "pi@example.org"]
    assert as_json[1]["source"] == "smtp"
    mine = json.loads(
        run_postroom(catch.home, "captured", "list", "--to", "PI@example.org", "--json").stdout
    )
    assert [m["id"] for m in mine] == [as_json[1]["id"]]
    pk = str(as_json[1]["id"])

    shown = run_postroom(catch.home, "captured", "show", pk)
    assert "envelope to: <ada@example.org>, <pi@example.org>" in shown.stdout
    assert "Download: https://lab.example.org/d/1" in shown.stdout
    raw = run_postroom(catch.home, "captured", "show", pk, "--raw").stdout
    assert raw == MESSAGE.replace("\r\n", "\n")  # text mode reads CRLF as LF
    assert run_postroom(catch.home, "captured", "show", pk, "--text").stdout == (
        "Download: https://lab.example.org/d/1\n"
    )
    assert "href" in run_postroom(catch.home, "captured", "show", pk, "--html").stdout
    assert (
        "Subject: Your data is ready"
        in run_postroom(catch.home, "captured", "show", pk, "--headers").stdout
    )
    detail = json.loads(run_postroom(catch.home, "captured", "show", pk, "--json").stdout)
    assert detail["html"].startswith("<a href")
    missing = run_postroom(catch.home, "captured", "show", "999")
    assert missing.code == 2
    assert "no message 999 in the mail record" in missing.stderr

    refused = run_postroom(catch.home, "captured", "clear")
    assert refused.code == 2
    assert "add --yes" in refused.stderr
    cleared = run_postroom(catch.home, "captured", "clear", "--yes", "--json")
    assert json.loads(cleared.stdout) == {"deleted": 2}
    assert "the mail record is empty" in run_postroom(catch.home, "captured", "list").stdout

    err = catch.stop()
    assert f"listening on 127.0.0.1:{catch.port}" in err
    assert "never relays" in err
    assert "kept #1 from <lab@example.org> to <ada@example.org>, <pi@example.org>" in err
    assert "2 message(s) kept" in err


def test_since_takes_a_duration_or_a_time_and_refuses_anything_else(catch: Catch) -> None:
    with smtplib.SMTP("127.0.0.1", catch.port, timeout=10) as client:
        client.sendmail("lab@example.org", ["ada@example.org"], MESSAGE)
    assert (
        len(
            json.loads(
                run_postroom(catch.home, "captured", "list", "--since", "10m", "--json").stdout
            )
        )
        == 1
    )
    future = run_postroom(catch.home, "captured", "list", "--since", "2999-01-01T00:00:00+00:00")
    assert "no captured message matches" in future.stdout
    bad = run_postroom(catch.home, "captured", "list", "--since", "yesterday")
    assert bad.code == 2
    assert "is neither a duration" in bad.stderr


def test_catch_refuses_a_non_loopback_address_in_one_line(tmp_path: Path) -> None:
    done = run_postroom(tmp_path, "catch", "--bind", "0.0.0.0:2525")
    assert done.code == 2
    assert done.stderr.strip().count("\n") == 0
    assert "capture.bind 0.0.0.0:2525 is not a loopback address" in done.stderr
    assert "capture.allow_remote=true" in done.stderr


def test_catch_on_a_busy_port_fails_naming_the_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        done = run_postroom(tmp_path, "catch", "--bind", f"127.0.0.1:{busy.getsockname()[1]}")
    assert done.code == 1
    assert "choose another address with --bind" in done.stderr


def test_catch_with_half_a_tls_pair_is_a_settings_error(tmp_path: Path) -> None:
    done = run_postroom(
        tmp_path, "catch", env={"POSTROOM_CAPTURE_TLS_CERT": str(tmp_path / "cert.pem")}
    )
    assert done.code == 2
    assert "capture.tls_key is empty" in done.stderr


def test_recording_mode_says_so_everywhere(tmp_path: Path) -> None:
    sent = run_postroom(
        tmp_path, "send", "--to", "ada@example.org", "--subject", "Hi", "--text", "t", env=RECORDING
    )
    assert sent.code == 0, sent.output
    worker = run_postroom(tmp_path, "worker", "--once", env=RECORDING)
    assert worker.code == 0, worker.output
    assert "RECORDING ONLY (mail.transport=capture)" in worker.stderr
    assert "delivered 1" in worker.stderr

    outbox = run_postroom(tmp_path, "outbox", "list", env=RECORDING)
    assert "sent (recorded only, not delivered)" in outbox.stdout
    assert "RECORDING MODE (mail.transport=capture)" in outbox.stderr
    assert "RECORDING MODE" in run_postroom(tmp_path, "outbox", "show", "1", env=RECORDING).stderr
    assert (
        "RECORDING MODE" in run_postroom(tmp_path, "outbox", "list", "--json", env=RECORDING).stderr
    )

    captured = run_postroom(tmp_path, "captured", "list", env=RECORDING)
    assert "recorded (not delivered)" in captured.stdout
    assert "RECORDING MODE" in captured.stderr
    assert "they were NOT delivered" in captured.stderr
    # Once recording mode is off, the recorded mail is still marked as never delivered.
    later = run_postroom(tmp_path, "captured", "list")
    assert "RECORDING MODE" not in later.stderr
    assert "NOT delivered" in later.stderr


def test_test_email_warns_that_real_mail_is_being_recorded(
    tmp_path: Path, capture_server: CaptureServer
) -> None:
    env = {
        **RECORDING,
        "POSTROOM_MAIL_HOST": capture_server.host,
        "POSTROOM_MAIL_PORT": str(capture_server.port),
    }
    done = run_postroom(tmp_path, "test-email", "--to", "ada@example.org", env=env)
    assert done.code == 0, done.output
    assert "postroom's real mail is being RECORDED in the mail record, not delivered" in done.stderr
    assert "Test message sent." in done.stdout
    assert (
        capture_server.wait_for(to="ada@example.org", timeout=5).subject == "postroom test message"
    )
    as_json = json.loads(
        run_postroom(tmp_path, "test-email", "--to", "bob@example.org", "--json", env=env).stdout
    )
    assert any("RECORDED" in w for w in as_json["warnings"])
