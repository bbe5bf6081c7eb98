"""The directory and admin broadcast driven as an OMERO admin would (seeds/000, 001)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from tests.support.cli import Run, run_postroom
from tests.support.smtpd import SMTPServer


def flags(server: SMTPServer) -> list[str]:
    pairs = {**server.settings_flags(), "mail.enabled": "true"}
    return [f"--set={key}={value}" for key, value in pairs.items()]


def ok(run: Run) -> Run:
    assert run.code == 0, run.output
    return run


def parsed(content: bytes) -> EmailMessage:
    message = message_from_bytes(content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def rows(home: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "postroom.db") as connection:
        return connection.execute(sql, params).fetchall()


def test_omero_workflow_end_to_end(tmp_path: Path, smtp_server: SMTPServer) -> None:
    # omero obj update Experimenter:0 email=root@university.example
    ok(run_postroom(tmp_path, "user", "update", "root", "email=root@university.example"))
    ok(run_postroom(tmp_path, "group", "add", "imaging"))
    ok(
        run_postroom(
            tmp_path, "user", "add", "ada", "--name", "Ada Lovelace",
            "--email", "ada@university.example", "--group", "imaging",
        )
    )  # fmt: skip
    ok(run_postroom(tmp_path, "user", "add", "bob", "--email", "bob@university.example"))
    ok(run_postroom(tmp_path, "user", "add", "carol", "--name", "Carol Danvers"))

    sent = ok(run_postroom(tmp_path, "admin", "email", "--everyone", "Maintenance", "Down at 6pm"))
    assert "Queued 3 of 4 emails (broadcast 1)" in sent.stdout
    assert "Users without an address (1): carol" in sent.stdout

    worker = ok(run_postroom(tmp_path, *flags(smtp_server), "worker", "--once"))
    assert "delivered 3, deferred 0, failed 0" in worker.stderr
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [
        "ada@university.example",
        "bob@university.example",
        "root@university.example",
    ]
    for received in smtp_server.messages:
        message = parsed(received.content)
        assert received.rcpt_tos == [message["To"]]  # one recipient, and only in To
        assert message["Cc"] is None
        assert message["Bcc"] is None
        assert message["Subject"] == "Maintenance"
        assert message.get_content().strip() == "Down at 6pm"
        assert message["X-Postroom-Notification-Type"] == "broadcast"

    shown = json.loads(ok(run_postroom(tmp_path, "broadcast", "show", "1", "--json")).stdout)
    assert shown["status"] == "done"
    assert shown["counts"]["sent"] == 3
    assert shown["skipped_users"] == [
        {"user_id": 3, "username": "carol", "reason": "no-address", "address": None}
    ]
    listed = json.loads(ok(run_postroom(tmp_path, "broadcast", "list", "--json")).stdout)
    assert [(job["id"], job["queued"], job["total"]) for job in listed] == [(1, 3, 4)]
    human = ok(run_postroom(tmp_path, "broadcast", "show", "1")).stdout
    assert "3/3 (100%) finished" in human
    assert "Users without an address (1): carol" in human


def test_bcc_never_appears_in_any_header_anyone_receives(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    ok(run_postroom(tmp_path, "user", "add", "ada", "--email", "ada@university.example"))
    ok(run_postroom(tmp_path, "user", "add", "bob", "--email", "bob@university.example"))
    sent = run_postroom(
        tmp_path, "admin", "email", "--user-name", "ada", "--user-id", "2",
        "--cc", "audit@university.example", "--cc", "log@university.example",
        "--bcc", "secret@university.example", "--bcc", "boss@university.example",
        "--html", "Notice", "-",
        stdin="<p>Down at <b>6pm</b></p>",
    )  # fmt: skip
    assert sent.code == 0, sent.output
    assert "Queued 2 of 2 emails" in sent.stdout
    ok(run_postroom(tmp_path, *flags(smtp_server), "worker", "--once"))

    by_rcpt = {tuple(sorted(m.rcpt_tos)): parsed(m.content) for m in smtp_server.messages}
    assert sorted(by_rcpt) == [
        ("ada@university.example",),
        ("audit@university.example", "log@university.example"),
        ("bob@university.example",),
        ("boss@university.example",),
        ("secret@university.example",),
    ]
    for message in by_rcpt.values():
        headers = "\n".join(f"{name}: {value}" for name, value in message.items())
        assert "secret@" not in headers
        assert "boss@" not in headers
        assert message["Bcc"] is None
        assert message.get_body(("plain",)).get_content().strip() == "Down at 6pm"  # type: ignore[union-attr]
        assert "<b>6pm</b>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert by_rcpt[("audit@university.example", "log@university.example")]["Cc"] == (
        "audit@university.example, log@university.example"
    )
    for raw in (m.content for m in smtp_server.messages):
        assert b"Bcc" not in raw


def test_bad_input_exits_2_and_queues_nothing(tmp_path: Path) -> None:
    ok(run_postroom(tmp_path, "user", "add", "ada", "--email", "ada@example.org"))
    cases = [
        (("--user-name", "ghost", "--user-name", "ada", "--user-id", "42", "S", "T"),
         "no user ghost, 42"),
        (("--group-name", "staff", "S", "T"), "no group staff"),
        (("S", "T"), "no recipients: give --everyone"),
        (("--everyone", " ", "T"), "the subject is blank"),
        (("--everyone", "S", "-"), "the body is blank"),
        (("--user-name", "root", "S", "T"), "without an address: root"),
        (("--everyone", "--rate", "lots", "S", "T"), "--rate"),
        (("--everyone", "--cc", "not-an-address", "S", "T"), "not-an-address"),
    ]  # fmt: skip
    for args, message in cases:
        result = run_postroom(tmp_path, "admin", "email", *args, stdin="  \n")
        assert result.code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert rows(tmp_path, "SELECT count(*) FROM messages") == [(0,)]
    assert rows(tmp_path, "SELECT count(*) FROM broadcasts") == [(0,)]


def test_more_than_100_recipients_need_yes_without_a_terminal(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text("username,email\n" + "".join(f"u{i},u{i}@example.org\n" for i in range(101)))
    ok(run_postroom(tmp_path, "user", "import", str(csv)))
    refused = run_postroom(tmp_path, "admin", "email", "--everyone", "S", "T", stdin="")
    assert refused.code == 2
    assert "goes to 102 users (more than 100); add --yes" in refused.stderr
    assert rows(tmp_path, "SELECT count(*) FROM messages") == [(0,)]
    dry = ok(run_postroom(tmp_path, "admin", "email", "--everyone", "--dry-run", "S", "T"))
    assert "Would queue 101 of 102 emails (dry run: nothing queued)" in dry.stdout
    assert "would mail  u7 <u7@example.org>" in dry.stdout
    assert rows(tmp_path, "SELECT count(*) FROM messages") == [(0,)]
    sent = ok(run_postroom(tmp_path, "admin", "email", "--everyone", "--yes", "--json", "S", "T"))
    report = json.loads(sent.stdout)
    assert (report["queued"], report["total"], report["without_address"]) == (101, 102, ["root"])
    again = ok(
        run_postroom(
            tmp_path, "admin", "email", "--everyone", "--yes", "--idempotency-key", "k", "S", "T"
        )
    )
    assert "(broadcast 2)" in again.stdout
    repeat = ok(
        run_postroom(
            tmp_path, "admin", "email", "--everyone", "--yes", "--idempotency-key", "k", "S", "T"
        )
    )
    assert "(broadcast 2, already submitted with this idempotency key)" in repeat.stdout
    assert rows(tmp_path, "SELECT count(*) FROM messages") == [(202,)]
    cancelled = ok(run_postroom(tmp_path, "broadcast", "cancel", "2", "--json"))
    assert json.loads(cancelled.stdout) == {"id": 2, "status": "cancelled", "held": 101}


def test_user_list_prints_addresses_as_omero_user_email(tmp_path: Path) -> None:
    ok(run_postroom(tmp_path, "user", "update", "0", "email=root@university.example"))
    ok(
        run_postroom(
            tmp_path, "user", "add", "ada", "--name", "Ada Lovelace", "--email", "ada@u.example"
        )
    )
    ok(run_postroom(tmp_path, "user", "add", "carol"))
    ok(run_postroom(tmp_path, "user", "add", "dan", "--email", "dan@u.example"))
    ok(run_postroom(tmp_path, "user", "deactivate", "dan"))

    emails = ok(run_postroom(tmp_path, "user", "list", "--emails"))
    assert emails.stdout == "root@university.example, ada@u.example\n"
    assert "users without an address (1): carol" in emails.stderr
    one = ok(run_postroom(tmp_path, "user", "list", "--names", "--one", "--ignore-missing"))
    assert one.stdout == "root <root@university.example>\nAda Lovelace <ada@u.example>\n"
    assert one.stderr == ""
    every = ok(run_postroom(tmp_path, "user", "list", "--all", "--emails", "--one"))
    assert every.stdout.splitlines()[-1] == "dan@u.example"
    listed = json.loads(ok(run_postroom(tmp_path, "user", "list", "--json")).stdout)
    assert [(u["id"], u["username"], u["admin"]) for u in listed] == [
        (0, "root", True),
        (1, "ada", False),
        (2, "carol", False),
    ]
    table = ok(run_postroom(tmp_path, "user", "list")).stdout
    assert "Ada Lovelace" in table
    assert "dan" not in table


def test_import_names_every_bad_line_and_imports_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text(
        "username,name,email,admin,groups\n"
        "ada,Ada,ada@example.org,yes,lab|imaging\n"
        "bob,Bob,bob@,no,\n"
        "7,Seven,,,\n"
    )
    bad = run_postroom(tmp_path, "user", "import", str(csv))
    assert bad.code == 2
    assert "2 bad line(s), nothing imported" in bad.stderr
    assert "line 3: 'bob@' is not a valid e-mail address" in bad.stderr
    assert "line 4: username '7' is a number" in bad.stderr
    assert rows(tmp_path, "SELECT username FROM users") == [("root",)]
    csv.write_text("username,name,email,admin,groups\nada,Ada,ada@example.org,yes,lab|imaging\n")
    done = ok(run_postroom(tmp_path, "user", "import", str(csv)))
    assert "imported 1 user(s): 1 new, 0 updated, 0 unchanged" in done.stdout
    assert "groups created: imaging, lab" in done.stdout
    members = json.loads(ok(run_postroom(tmp_path, "group", "members", "lab", "--json")).stdout)
    assert [m["username"] for m in members] == ["ada"]


@pytest.mark.slow
def test_a_broadcast_killed_mid_fan_out_is_finished_by_resume(tmp_path: Path) -> None:
    users = 5000
    csv = tmp_path / "users.csv"
    csv.write_text(
        "username,email\n" + "".join(f"u{i:05d},u{i:05d}@example.org\n" for i in range(users))
    )
    ok(run_postroom(tmp_path, "user", "import", str(csv)))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    environ["POSTROOM_HOME"] = str(tmp_path)
    killed = None
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "postroom", "admin", "email", "--everyone", "--yes",
             f"Maintenance {attempt}", "Down at 6pm"],
            env=environ, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            queued = _count(tmp_path, f"Maintenance {attempt}")
            if 0 < queued < users:
                proc.send_signal(signal.SIGKILL)
                killed = attempt + 1
                break
            time.sleep(0.002)
        proc.wait(timeout=30)
        if killed:
            break
    assert killed, "the fan-out always finished before it could be killed"
    [(status, queued)] = rows(
        tmp_path, "SELECT status, queued FROM broadcasts WHERE id = ?", killed
    )
    assert status == "fanning-out"
    assert 0 < int(queued) < users  # type: ignore[call-overload]

    resumed = ok(run_postroom(tmp_path, "broadcast", "resume", str(killed)))
    assert f"Queued {users} of {users + 1} emails (broadcast {killed}, resumed)" in resumed.stdout
    assert "Users without an address (1): root" in resumed.stdout
    subject = f"Maintenance {killed - 1}"
    assert rows(
        tmp_path,
        "SELECT count(*), count(DISTINCT r.address) FROM messages m "
        "JOIN recipients r ON r.message_pk = m.id WHERE m.subject = ?",
        subject,
    ) == [(users, users)]
    assert rows(
        tmp_path,
        "SELECT count(*), count(DISTINCT user_id), count(message_pk) "
        "FROM broadcast_recipients WHERE broadcast_id = ?",
        killed,
    ) == [(users + 1, users + 1, users)]


def _count(home: Path, subject: str) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'postroom.db'}?mode=ro", uri=True) as connection:
            found = connection.execute(
                "SELECT count(*) FROM messages WHERE subject = ?", (subject,)
            ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(found[0])
