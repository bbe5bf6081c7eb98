"""`postroom send` and `postroom worker`, driven as an admin would."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

from tests.support.cli import run_postroom
from tests.support.smtpd import Recorder, SMTPServer, start_server


def _flags(server: SMTPServer) -> list[str]:
    pairs = {**server.settings_flags(), "mail.enabled": "true"}
    return [f"--set={key}={value}" for key, value in pairs.items()]


def test_send_prints_the_new_id_and_the_worker_delivers_it(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    html = tmp_path / "body.html"
    html.write_text("<p>Hello <b>Ada</b></p>")
    sent = run_postroom(
        tmp_path,
        "send",
        "--to", "ada@example.org",
        "--to", "Bob <bob@example.org>",
        "--cc", "carol@example.org",
        "--bcc", "auditor@example.org",
        "--subject", "Quarterly report",
        "--text", "Attached.",
        "--html-file", str(html),
        "--attach", str(report),
        "--type", "report",
    )  # fmt: skip
    assert sent.code == 0, sent.stderr
    assert sent.stdout.strip() == "1"
    worker = run_postroom(tmp_path, *_flags(smtp_server), "worker", "--once")
    assert worker.code == 0, worker.stderr
    assert "delivered 1, deferred 0, failed 0" in worker.stderr
    [received] = smtp_server.messages
    assert sorted(received.rcpt_tos) == [
        "ada@example.org",
        "auditor@example.org",
        "bob@example.org",
        "carol@example.org",
    ]
    parsed = message_from_bytes(received.content, policy=policy.default)
    assert parsed["Subject"] == "Quarterly report"
    assert parsed["X-Postroom-Notification-Type"] == "report"
    assert "auditor" not in received.content.decode()
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_content_type() == "application/pdf"


def test_text_file_from_stdin_and_json_output(tmp_path: Path) -> None:
    sent = run_postroom(
        tmp_path,
        "send", "--to", "ada@example.org", "--subject", "From stdin", "--text-file", "-", "--json",
        stdin="line one\nline two\n",
    )  # fmt: skip
    assert sent.code == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["id"] == 1
    assert answer["message_id"].startswith("<")
    shown = json.loads(run_postroom(tmp_path, "outbox", "show", "1", "--json").stdout)
    assert "line two" in shown["text"]


def test_bad_input_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    cases = [
        (["--to", "not-an-address", "--subject", "s", "--text", "t"], "not a valid e-mail"),
        (["--to", "a@example.org", "--subject", "s"], "exactly one of --text or --text-file"),
        (
            ["--to", "a@example.org", "--subject", "s", "--text", "t", "--text-file", "x"],
            "exactly one of --text or --text-file",
        ),
        (["--to", "a@example.org", "--subject", "a\r\nBcc: x@evil.example", "--text", "t"], "CR"),
        (["--to", "a@example.org", "--subject", "s", "--text", "t", "--attach", "/nope"], "/nope"),
        (
            ["--to", "a@example.org", "--subject", "s", "--text", "t", "--header", "Bcc: x@y.z"],
            "Bcc",
        ),
    ]
    for args, expected in cases:
        result = run_postroom(tmp_path, "send", *args)
        assert result.code == 2, (args, result.output)
        assert expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    listing = run_postroom(tmp_path, "outbox", "list", "--json")
    assert json.loads(listing.stdout) == []


def test_worker_once_exits_0_when_a_server_refused_a_recipient(tmp_path: Path) -> None:
    """A bounce is the message's outcome, not the worker's failure (cron stays quiet)."""
    server = start_server(Recorder(rcpt_replies={"ghost@example.org": "550 5.1.1 no such user"}))
    try:
        run_postroom(tmp_path, "send", "--to", "ghost@example.org", "--subject", "s", "--text", "t")
        run_postroom(tmp_path, "send", "--to", "ghost@example.org", "--to", "ada@example.org",
                     "--subject", "two", "--text", "t")  # fmt: skip
        worker = run_postroom(tmp_path, *_flags(server), "worker", "--once")
        listed = run_postroom(tmp_path, "outbox", "list")
    finally:
        server.stop()
    assert worker.code == 0, worker.output
    assert "delivered 1 (1 partly), deferred 0, failed 1" in worker.stderr
    assert "recipients: 1 sent, 0 deferred, 2 refused" in worker.stderr
    assert "sent (1 of 2 refused)" in listed.stdout
    assert "550 5.1.1 no such user" in listed.stdout


def test_mail_switched_off_logs_the_whole_message_and_says_not_delivered(tmp_path: Path) -> None:
    run_postroom(tmp_path, "send", "--to", "ada@example.org", "--subject", "Hi", "--text", "Body!")
    worker = run_postroom(tmp_path, "worker", "--once")
    assert worker.code == 0
    assert "mail is switched off (mail.enabled=false)" in worker.stderr
    assert "Subject: Hi" in worker.stderr
    assert "Body!" in worker.stderr
    listing = run_postroom(tmp_path, "outbox", "list")
    assert "logged only, not delivered" in listing.output
