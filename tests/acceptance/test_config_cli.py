"""`postroom config` driven as an admin would, in a subprocess."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from tests.support.cli import run_postroom

PASSWORD = "correct-horse-battery-staple"


def test_set_then_get_shows_value_and_source(tmp_path: Path) -> None:
    assert run_postroom(tmp_path, "config", "set", "mail.host", "smtp.university.example").code == 0
    got = run_postroom(tmp_path, "config", "get", "mail.host")
    assert got.code == 0
    assert got.stdout.split() == ["smtp.university.example", "(file)"]
    default = run_postroom(tmp_path, "config", "get", "mail.port", "--json")
    assert json.loads(default.stdout) == {
        "key": "mail.port",
        "value": 25,
        "source": "default",
        "secret": False,
    }


def test_environment_beats_file_and_flag_beats_environment(tmp_path: Path) -> None:
    run_postroom(tmp_path, "config", "set", "mail.port", "2525")
    env = {"POSTROOM_MAIL_PORT": "587"}
    assert run_postroom(tmp_path, "config", "get", "mail.port", env=env).stdout.split() == [
        "587",
        "(env)",
    ]
    flagged = run_postroom(
        tmp_path, "--set", "mail.port=465", "config", "get", "mail.port", env=env
    )
    assert flagged.stdout.split() == ["465", "(flag)"]


def test_unset_returns_to_default(tmp_path: Path) -> None:
    run_postroom(tmp_path, "config", "set", "mail.timeout", "2m")
    assert run_postroom(tmp_path, "config", "get", "mail.timeout").stdout.split() == [
        "2m",
        "(file)",
    ]
    assert run_postroom(tmp_path, "config", "unset", "mail.timeout").code == 0
    assert run_postroom(tmp_path, "config", "get", "mail.timeout").stdout.split() == [
        "30s",
        "(default)",
    ]


def test_unknown_key_exits_2_with_did_you_mean(tmp_path: Path) -> None:
    result = run_postroom(tmp_path, "config", "set", "mail.hots", "x")
    assert result.code == 2
    assert result.stderr.strip() == "error: unknown setting 'mail.hots'; did you mean mail.host?"


def test_bad_value_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    run_postroom(tmp_path, "config", "set", "mail.host", "smtp.example.org")
    config_file = tmp_path / "postroom.toml"
    before = config_file.read_bytes()
    result = run_postroom(tmp_path, "config", "set", "mail.port", "99999")
    assert result.code == 2
    assert result.stderr.strip() == "error: mail.port: 99999 is not a port: use 1-65535"
    assert config_file.read_bytes() == before


def test_port_465_with_starttls_warns_but_stores(tmp_path: Path) -> None:
    run_postroom(tmp_path, "config", "set", "mail.security", "starttls")
    result = run_postroom(tmp_path, "config", "set", "mail.port", "465")
    assert result.code == 0
    assert "the likely fix is mail.security=ssl" in result.stderr


def test_password_never_printed_anywhere(tmp_path: Path) -> None:
    run_postroom(tmp_path, "config", "set", "mail.host", "smtp.example.org")
    run_postroom(tmp_path, "config", "set", "mail.security", "starttls")
    runs = [
        run_postroom(tmp_path, "config", "set", "mail.password", PASSWORD),
        run_postroom(tmp_path, "config", "get", "mail.password"),
        run_postroom(tmp_path, "config", "get", "mail.password", "--json"),
        run_postroom(tmp_path, "config", "list"),
        run_postroom(tmp_path, "config", "list", "--json"),
        run_postroom(tmp_path, "config", "describe", "--json"),
        run_postroom(tmp_path, "config", "set", "mail.security", "none"),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 0, 0, 0, 2]
    for run in runs:
        assert PASSWORD not in run.output
    assert run_postroom(tmp_path, "config", "get", "mail.password").stdout.split() == [
        "********",
        "(file)",
    ]
    assert stat.S_IMODE((tmp_path / "postroom.toml").stat().st_mode) == 0o600


def test_list_json_is_an_array_of_every_setting(tmp_path: Path) -> None:
    result = run_postroom(tmp_path, "config", "list", "--json")
    rows = json.loads(result.stdout)
    keys = [row["key"] for row in rows]
    assert "mail.host" in keys
    assert "delivery.max_attempts" in keys
    assert all(set(row) == {"key", "value", "source", "secret"} for row in rows)


def test_describe_prints_the_glossary(tmp_path: Path) -> None:
    result = run_postroom(tmp_path, "config", "describe")
    assert result.code == 0
    for key in ("mail.host", "mail.password", "mail.security", "delivery.backoff_max"):
        assert key in result.stdout
    assert "POSTROOM_MAIL_HOST" in result.stdout
    rows = json.loads(run_postroom(tmp_path, "config", "describe", "--json").stdout)
    password = next(row for row in rows if row["key"] == "mail.password")
    assert password["secret"] is True
    assert password["env"] == "POSTROOM_MAIL_PASSWORD"


def test_docs_settings_glossary_is_generated_from_code(tmp_path: Path) -> None:
    generated = run_postroom(tmp_path, "config", "describe", "--markdown").stdout
    docs = Path(__file__).parents[2] / "docs" / "settings.md"
    assert docs.read_text() == generated, "regenerate: postroom config describe --markdown"
