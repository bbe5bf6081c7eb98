"""Every command under the environment's faults: a database nobody answers at, a
read-only home and a full disk. One line naming the fix, never a traceback, and
nothing already stored is lost."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.cli import Run, run_postroom
from tests.support.faults import fill, read_only, tmpfs, writable

DATA = Path(__file__).parents[1] / "data"

#: Every command that ends by itself, with arguments it could run with.
COMMANDS: list[tuple[str, ...]] = [
    ("send", "--to", "ada@example.org", "--subject", "s", "--text", "t"),
    ("worker", "--once"),
    ("outbox", "list"),
    ("outbox", "show", "1"),
    ("outbox", "retry", "1"),
    ("outbox", "hold", "1"),
    ("outbox", "release", "1"),
    ("outbox", "purge", "--older-than", "1"),
    ("outbox", "stats"),
    ("config", "set", "mail.host", "smtp.example.org"),
    ("config", "get", "mail.host"),
    ("config", "unset", "mail.port"),
    ("config", "list"),
    ("config", "describe"),
    ("config", "import", "--from", "omero", str(DATA / "omero-mail.properties")),
    ("db", "upgrade"),
    ("db", "status"),
    ("captured", "list"),
    ("captured", "show", "1"),
    ("captured", "clear", "--yes"),
    ("user", "add", "ada", "--email", "ada@example.org"),
    ("user", "update", "root", "email=root@example.org"),
    ("user", "list"),
    ("user", "show", "root"),
    ("user", "deactivate", "ada"),
    ("user", "activate", "ada"),
    ("user", "passwd", "root", "--stdin"),
    ("group", "add", "lab"),
    ("group", "list"),
    ("group", "members", "lab"),
    ("admin", "email", "Maintenance", "Down at six", "--everyone", "--yes"),
    ("broadcast", "list"),
    ("broadcast", "show", "1"),
    ("broadcast", "cancel", "1"),
    ("broadcast", "resume", "1"),
    ("token", "create", "app"),
    ("token", "list"),
    ("token", "revoke", "app"),
    ("test-email", "--to", "ada@example.org"),
]
#: Servers: they stop at once when they cannot open their database.
SERVERS: list[tuple[str, ...]] = [
    ("catch", "--bind", "127.0.0.1:0"),
    ("serve", "--bind", "127.0.0.1:0"),
]


def run_all(home: Path, commands: list[tuple[str, ...]], env: dict[str, str]) -> list[Run]:
    with ThreadPoolExecutor(4) as pool:
        return list(
            pool.map(
                lambda args: run_postroom(home, *args, env=env, stdin="a long new password\n"),
                commands,
            )
        )


def assert_clear(commands: list[tuple[str, ...]], runs: list[Run]) -> list[str]:
    """No traceback anywhere; a failure is one line that names a fix. Returns the
    error lines, for the scenario's own checks."""
    errors = []
    for args, done in zip(commands, runs, strict=True):
        name = " ".join(args[:2])
        assert "Traceback" not in done.output, (name, done.output)
        if done.code != 0 and args[0] == "test-email":  # its answer is the diagnosis
            assert "fix:" in done.stdout, done.output
        elif done.code != 0:
            assert done.code in (1, 2), (name, done.code, done.output)
            lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
            assert len(lines) == 1, (name, done.stderr)
            errors.append(lines[0])
    return errors


def seeded(home: Path) -> None:
    """A home with a message in the outbox and a setting in the file."""
    assert run_postroom(home, "send", "--to", "kept@example.org", "--subject", "kept",
                        "--text", "t").code == 0  # fmt: skip
    assert run_postroom(home, "config", "set", "mail.port", "2525").code == 0


def still_there(home: Path) -> None:
    listed = run_postroom(home, "outbox", "list", "--json")
    assert listed.code == 0, listed.output
    assert '"subject": "kept"' in listed.stdout
    assert run_postroom(home, "config", "get", "mail.port").stdout.startswith("2525")


def test_every_command_with_the_database_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"POSTROOM_DATABASE_URL": f"postgresql+psycopg://mail:SECRET@127.0.0.1:{port}/mail"}
    commands = COMMANDS + SERVERS
    errors = assert_clear(commands, run_all(tmp_path, commands, env))
    assert len(errors) >= 30
    assert all("SECRET" not in line for line in errors)
    assert any("check database.url" in line for line in errors)


def test_every_command_on_a_read_only_home(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt") as mount:
        home = mount / "home"
        seeded(home)
        read_only(mount)
        try:
            commands = COMMANDS + SERVERS
            errors = assert_clear(commands, run_all(home, commands, {}))
            assert any("choose another home" in line or "writable" in line for line in errors)
        finally:
            writable(mount)
        still_there(home)


def test_every_command_on_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", size="8m") as mount:
        home = mount / "home"
        seeded(home)
        filler = fill(mount)
        errors = assert_clear(COMMANDS, run_all(home, COMMANDS, {}))
        assert any("free some" in line for line in errors), errors
        filler.unlink()
        still_there(home)


def test_a_home_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for args in (("outbox", "list"), ("config", "set", "mail.host", "smtp.example.org")):
        done = run_postroom(tmp_path / "file" / "home", *args)
        assert done.code == 1
        assert "Traceback" not in done.output
        assert "choose another home" in done.stderr


def test_a_settings_file_that_is_not_utf8_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "postroom.toml").write_bytes(b'[mail]\nhost = "caf\xe9"\n')
    done = run_postroom(tmp_path, "config", "list")
    assert done.code == 2
    assert "is not UTF-8" in done.stderr
    assert "Traceback" not in done.output


def test_a_refused_value_changes_nothing(tmp_path: Path) -> None:
    """A refused value changes nothing in the file."""
    assert run_postroom(tmp_path, "config", "set", "mail.port", "2525").code == 0
    before = (tmp_path / "postroom.toml").read_bytes()
    bad = run_postroom(tmp_path, "config", "set", "mail.port", "99999")
    assert bad.code == 2
    assert (tmp_path / "postroom.toml").read_bytes() == before
