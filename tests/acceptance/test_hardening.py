"""Hardening (issue 9): no address that redirects mail, nothing secret in sight, files
private, and every failure one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.support.cli import run_postroom
from tests.support.smtpd import SMTPServer

from postroom import Postroom
from postroom.errors import AddressError

MIS_SPLIT = "alice@example.org)<bob@example.org>"


def one_line_refusal(done: object, *, says: str) -> None:
    from tests.support.cli import Run

    assert isinstance(done, Run)
    assert done.code == 2, done.output
    assert "Traceback" not in done.output
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert says in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--to", MIS_SPLIT, "--subject", "s", "--text", "x"),
        ("send", "--to", "ok@example.org", "--cc", MIS_SPLIT, "--subject", "s", "--text", "x"),
        ("config", "set", "mail.from", MIS_SPLIT),
        ("config", "set", "mail.admins", MIS_SPLIT),
        ("config", "set", "mail.redirect_to", MIS_SPLIT),
        ("user", "add", "eve", "--email", MIS_SPLIT),
    ],
)
def test_a_mis_split_address_is_refused_at_every_door(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    one_line_refusal(run_postroom(tmp_path, *args), says=MIS_SPLIT)
    listed = run_postroom(tmp_path, "outbox", "list", "--json")
    assert json.loads(listed.stdout) == []
    assert not (tmp_path / "postroom.toml").exists()


def test_a_mis_split_address_is_refused_in_imports_and_the_library(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text(f"username,email\neve,{MIS_SPLIT}\n")
    imported = run_postroom(tmp_path, "user", "import", str(csv))
    assert imported.code == 2
    assert MIS_SPLIT in imported.stderr
    with Postroom(tmp_path) as postroom:
        with pytest.raises(AddressError):
            postroom.send(to=MIS_SPLIT, subject="s", text="x")
        assert [u.username for u in postroom.users.list()] == ["root"]


def test_the_database_password_is_never_shown(tmp_path: Path) -> None:
    url = "postgresql+psycopg://dbuser:SECRET@127.0.0.1:1/db"
    env = {"POSTROOM_DATABASE_URL": url}
    outputs = [
        run_postroom(tmp_path, *args, env=env).output
        for args in (
            ("config", "list"),
            ("config", "list", "--json"),
            ("config", "get", "database.url"),
            ("config", "get", "database.url", "--json"),
            ("outbox", "list"),
            ("worker", "--once"),
        )
    ]
    bad = run_postroom(
        tmp_path, "config", "list", env={"POSTROOM_DATABASE_URL": "mysql://u:SECRET@h/d"}
    )
    assert bad.code == 2
    for output in [*outputs, bad.output]:
        assert "SECRET" not in output
    assert "dbuser:********@127.0.0.1" in outputs[0]


def test_every_file_under_the_home_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)  # made by the admin, readable by all
    with Postroom(home, settings={"mail.enabled": "true", "mail.transport": "file"}) as postroom:
        postroom.send(to="ada@example.org", subject="s", text="t")
        files = {p.name: p.stat().st_mode & 0o777 for p in home.iterdir()}
        assert files["postroom.db"] == 0o600
        assert files["postroom.db-wal"] == 0o600  # the connection is open: WAL in use
        assert files["postroom.db-shm"] == 0o600
    assert run_postroom(home, "config", "set", "mail.port", "2525").code == 0
    done = run_postroom(home, "--set", "mail.enabled=true", "--set", "mail.transport=file",
                        "worker", "--once")  # fmt: skip
    assert done.code == 0, done.output
    assert (home / "postroom.toml").stat().st_mode & 0o777 == 0o600
    assert (home / "mail").stat().st_mode & 0o777 == 0o700
    written = list((home / "mail").iterdir())
    assert written
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in written)


def test_a_password_is_read_from_stdin_or_asked_without_echo(tmp_path: Path) -> None:
    done = run_postroom(tmp_path, "config", "set", "mail.password", "--stdin", stdin="pa ss\n")
    assert done.code == 0
    assert "pa ss" not in done.output
    assert 'password = "pa ss"' in (tmp_path / "postroom.toml").read_text()
    both = run_postroom(tmp_path, "config", "set", "mail.password", "x", "--stdin", stdin="y\n")
    assert both.code == 2
    missing = run_postroom(tmp_path, "config", "set", "mail.host")
    assert missing.code == 2
    assert "give a value for mail.host" in missing.stderr
    asked = typed_at_a_terminal(tmp_path, ["config", "set", "mail.password"], "hidden one\n")
    assert "mail.password (not shown):" in asked
    assert "hidden one" not in asked
    assert 'password = "hidden one"' in (tmp_path / "postroom.toml").read_text()


def typed_at_a_terminal(home: Path, args: list[str], typed: str) -> str:
    """Run postroom on a pseudo-terminal, type ``typed``, return what the terminal shows."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    env["POSTROOM_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "postroom", *args],
        stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    sent = False
    while True:
        try:
            chunk = os.read(leader, 1024)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
        if not sent and b"(not shown):" in shown:
            os.write(leader, typed.encode())
            sent = True
    process.wait(timeout=30)
    os.close(leader)
    return shown.decode(errors="replace")


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("mail.timeout", "-5", "not more than 0"),
        ("mail.timeout", "0", "not more than 0"),
        ("delivery.batch_size", "-1", "too small"),
        ("delivery.lease", "-10m", "not more than 0"),
    ],
)
def test_out_of_range_values_are_refused_as_such(
    tmp_path: Path, key: str, value: str, says: str
) -> None:
    done = run_postroom(tmp_path, "config", "set", key, value)
    one_line_refusal(done, says=says)


@pytest.mark.parametrize("host", ["smtp.example.org\nevil", "bad host name!", "", "-x.org"])
def test_a_host_that_is_no_host_name_is_refused_when_set(tmp_path: Path, host: str) -> None:
    done = run_postroom(tmp_path, "config", "set", "mail.host", host)
    assert done.code == 2
    assert "Traceback" not in done.output
    assert not (tmp_path / "postroom.toml").exists()


@pytest.mark.parametrize("host", ["smtp.example.org", "192.0.2.10", "[2001:db8::1]", "mail_1.lan"])
def test_host_names_and_addresses_are_taken(tmp_path: Path, host: str) -> None:
    assert run_postroom(tmp_path, "config", "set", "mail.host", host).code == 0


def test_a_transport_that_does_not_load_is_refused_when_set_and_pauses_delivery(
    tmp_path: Path,
) -> None:
    refused = run_postroom(tmp_path, "config", "set", "mail.transport", "nosuch.module:Thing")
    one_line_refusal(refused, says="cannot import nosuch.module")
    assert not (tmp_path / "postroom.toml").exists()
    env = {"POSTROOM_MAIL_ENABLED": "true", "POSTROOM_MAIL_TRANSPORT": "nosuch.module:Thing"}
    assert run_postroom(tmp_path, "send", "--to", "a@example.org", "--subject", "s",
                        "--text", "t", env=env).code == 0  # fmt: skip
    worker = run_postroom(tmp_path, "worker", "--once", env=env)
    assert "delivery paused" in worker.stderr
    assert "Traceback" not in worker.output
    listed = json.loads(run_postroom(tmp_path, "outbox", "list", "--json").stdout)
    assert listed[0]["status"] == "queued"
    assert listed[0]["attempts"] == 0


def test_an_unknown_environment_variable_is_named_once(tmp_path: Path) -> None:
    done = run_postroom(tmp_path, "config", "list", env={"POSTROOM_MAIL_HOTS": "x"})
    assert done.code == 0
    assert done.stderr.count("POSTROOM_MAIL_HOTS") == 1
    assert "did you mean POSTROOM_MAIL_HOST?" in done.stderr


def test_importing_the_wrong_kind_of_file_is_bad_input(tmp_path: Path) -> None:
    kallithea = Path(__file__).parents[1] / "data" / "kallithea.ini"
    done = run_postroom(tmp_path, "config", "import", "--from", "omero", str(kallithea))
    one_line_refusal(done, says="holds no omero mail settings")
    assert not (tmp_path / "postroom.toml").exists()


def test_labkeys_stock_template_imports_to_a_working_set_up(tmp_path: Path) -> None:
    """LabKey's template: a local relay, the Anonymous user, no TLS: no login."""
    stock = tmp_path / "application.properties"
    stock.write_text(
        "mail.smtpHost=localhost\nmail.smtpPort=25\nmail.smtpUser=Anonymous\n"
        "#mail.smtpFrom=@@smtpFrom@@\n#mail.smtpPassword=@@smtpPassword@@\n"
    )
    done = run_postroom(tmp_path, "config", "import", "--from", "labkey", str(stock))
    assert done.code == 0, done.output
    got = run_postroom(tmp_path, "config", "get", "mail.username").stdout
    assert "(default)" in got
    assert "Anonymous" not in got


def test_only_automatic_mail_says_auto_submitted(tmp_path: Path) -> None:
    assert run_postroom(tmp_path, "send", "--to", "ada@example.org", "--subject", "by hand",
                        "--text", "t").code == 0  # fmt: skip
    assert run_postroom(tmp_path, "user", "add", "ada", "--email", "ada@example.org").code == 0
    sent = run_postroom(tmp_path, "admin", "email", "Maintenance", "Down at six", "--everyone")
    assert sent.code == 0, sent.output
    with Postroom(tmp_path) as postroom:
        postroom.send(to="bob@example.org", subject="reset", text="t", automatic=True)
    raw = {
        message["subject"]: run_postroom(
            tmp_path, "outbox", "show", str(message["id"]), "--raw"
        ).stdout
        for message in json.loads(run_postroom(tmp_path, "outbox", "list", "--json").stdout)
    }
    assert "Auto-Submitted" not in raw["by hand"]
    assert "Auto-Submitted: auto-generated" in raw["Maintenance"]
    assert "Auto-Submitted: auto-generated" in raw["reset"]


def test_long_listings_say_how_many_more_there_are(tmp_path: Path) -> None:
    for number in range(3):
        assert run_postroom(tmp_path, "send", "--to", "a@example.org", "--subject",
                            f"s{number}", "--text", "t").code == 0  # fmt: skip
    short = run_postroom(tmp_path, "outbox", "list", "--limit", "2")
    assert "2 of 3 shown" in short.stderr
    assert "--all" in short.stderr
    everything = run_postroom(tmp_path, "outbox", "list", "--all")
    assert "shown" not in everything.stderr
    assert everything.stdout.count("a@example.org") == 3
    with Postroom(tmp_path) as postroom:
        from postroom.store.capture import CaptureStore, NewCapture

        CaptureStore(postroom.engine).insert(
            [NewCapture("x@example.org", ("b@example.org",), b"Subject: c\r\n\r\nt\r\n")] * 3
        )
    captured = run_postroom(tmp_path, "captured", "list", "--limit", "1")
    assert "1 of 3 shown" in captured.stderr


def test_the_readme_tour_delivers_in_step_4(tmp_path: Path, smtp_server: SMTPServer) -> None:
    """Step 1 sets a real-looking server; step 4 delivers through step 3's local one."""
    for key, value in (("mail.host", "smtp.university.example"), ("mail.port", "587"),
                       ("mail.security", "starttls"), ("mail.username", "omero")):  # fmt: skip
        assert run_postroom(tmp_path, "config", "set", key, value).code == 0
    assert run_postroom(tmp_path, "config", "set", "mail.password", "--stdin",
                        stdin="secret\n").code == 0  # fmt: skip
    local = [
        part
        for item in (
            f"mail.host={smtp_server.host}",
            f"mail.port={smtp_server.port}",
            "mail.security=none",
            "mail.username=",
            "mail.password=",
        )
        for part in ("--set", item)
    ]
    assert run_postroom(tmp_path, *local, "test-email", "--to", "you@example.org").code == 0
    assert run_postroom(tmp_path, "send", "--to", "ada@example.org", "--subject", "Welcome",
                        "--text", "Your account is ready.").code == 0  # fmt: skip
    assert run_postroom(tmp_path, "config", "set", "mail.enabled", "true").code == 0
    worker = run_postroom(tmp_path, *local, "worker", "--once")
    assert worker.code == 0, worker.output
    assert "delivered 1" in worker.stderr
    assert any(m.rcpt_tos == ["ada@example.org"] for m in smtp_server.messages)
