"""`postroom config import` driven as an admin moving from OMERO, Kallithea or LabKey."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tests.support.cli import run_postroom

DATA = Path(__file__).parent.parent / "data"
SAMPLES = {
    "omero": (DATA / "omero-mail.properties", "gmail-App-Passw0rd-xk2q"),
    "kallithea": (DATA / "kallithea.ini", "Sm7p-Secret-kallithea"),
    "labkey": (DATA / "labkey-application.properties", "L4bkey!Mail-Pw"),
}


def get(home: Path, key: str) -> list[str]:
    result = run_postroom(home, "config", "get", key)
    assert result.code == 0, result.stderr
    return result.stdout.split()


def test_omero_import_then_config_get_shows_values_from_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path, _ = SAMPLES["omero"]
    result = run_postroom(home, "config", "import", "--from", "omero", str(path))
    assert result.code == 0, result.stderr
    assert f"Imported 11 settings into {home / 'postroom.toml'}" in result.stdout
    assert "omero.mail.smtp.socketFactory.fallback" in result.stdout
    assert get(home, "mail.enabled") == ["true", "(file)"]
    assert get(home, "mail.host") == ["smtp.gmail.com", "(file)"]
    assert get(home, "mail.port") == ["465", "(file)"]
    assert get(home, "mail.security") == ["ssl", "(file)"]
    assert get(home, "mail.timeout") == ["1m", "(file)"]
    assert get(home, "mail.password") == ["********", "(file)"]
    admins = run_postroom(home, "config", "get", "mail.admins", "--json")
    assert json.loads(admins.stdout)["value"] == [
        "Imaging Facility <imaging-admin@example.org>",
        "Jane Doe <jane.doe@example.org>",
    ]


def test_kallithea_import_maps_starttls_and_admins(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path, _ = SAMPLES["kallithea"]
    result = run_postroom(home, "config", "import", "--from", "kallithea", str(path))
    assert result.code == 0, result.stderr
    assert get(home, "mail.security") == ["starttls", "(file)"]
    assert get(home, "mail.auth") == ["login", "(file)"]
    assert get(home, "mail.admins")[-1] == "(file)"
    assert "(26 other keys)" in result.stdout


def test_labkey_smtp_from_becomes_the_from_and_the_envelope_sender(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path, _ = SAMPLES["labkey"]
    result = run_postroom(home, "config", "import", "--from", "labkey", str(path))
    assert result.code == 0, result.stderr
    assert get(home, "mail.envelope_from") == ["labkey-bounces@lab.example.org", "(file)"]
    assert get(home, "mail.from") == ["labkey-bounces@lab.example.org", "(file)"]


def test_labkey_graph_import_switches_to_graph_and_never_shows_the_client_secret(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    path, secret = DATA / "labkey-graph.properties", "Gr4ph~Secret.k9Q_x7Lm2Pz!"
    runs = [
        run_postroom(home, "config", "import", "--from", "labkey", str(path), "--dry-run"),
        run_postroom(home, "config", "import", "--from", "labkey", str(path), "--json"),
        run_postroom(home, "config", "import", "--from", "labkey", str(path)),
        run_postroom(home, "config", "get", "mail.oauth.client_secret"),
        run_postroom(home, "config", "list"),
        run_postroom(home, "config", "list", "--json"),
    ]
    assert all(run.code == 0 for run in runs), [run.stderr for run in runs]
    for run in runs:
        assert secret not in run.output
    assert "mail_graph.clientSecret;startup" in runs[2].stdout
    assert get(home, "mail.transport") == ["graph", "(file)"]
    assert get(home, "mail.oauth.provider") == ["microsoft", "(file)"]
    assert get(home, "mail.oauth.tenant_id") == ["4b1c3a2e-9f0d-4e7a-8c55-1d2e3f4a5b6c", "(file)"]
    assert get(home, "mail.from") == ["labkey-notify@lab.example.org", "(file)"]
    assert get(home, "mail.oauth.client_secret") == ["********", "(file)"]
    assert secret in (home / "postroom.toml").read_text(encoding="utf-8")


def test_labkey_graph_set_up_halfway_says_what_is_missing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = tmp_path / "50_mail.properties"
    path.write_text("mail_graph.tenantId;startup=contoso.example\n", encoding="utf-8")
    run = run_postroom(home, "config", "import", "--from", "labkey", str(path))

    assert run.code == 2, run.output
    assert "none could be imported" in run.stderr
    assert "clientId" in run.stderr
    assert not (home / "postroom.toml").exists()


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_password_is_never_in_any_output(tmp_path: Path, kind: str) -> None:
    home = tmp_path / "home"
    path, password = SAMPLES[kind]
    runs = [
        run_postroom(home, "config", "import", "--from", kind, str(path), "--dry-run"),
        run_postroom(home, "config", "import", "--from", kind, str(path), "--json"),
        run_postroom(home, "config", "import", "--from", kind, str(path)),
        run_postroom(home, "config", "get", "mail.password"),
        run_postroom(home, "config", "list"),
        run_postroom(home, "config", "list", "--json"),
    ]
    assert all(run.code == 0 for run in runs), [run.stderr for run in runs]
    for run in runs:
        assert password not in run.output
    assert password in (home / "postroom.toml").read_text(encoding="utf-8")


def test_json_output_is_json_only_with_secrets_masked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path, _ = SAMPLES["omero"]
    result = run_postroom(home, "config", "import", "--from", "omero", str(path), "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"mapped", "ignored", "written", "file"}
    assert data["written"] is True
    assert data["file"] == str(home / "postroom.toml")
    secret = [m for m in data["mapped"] if m["key"] == "mail.password"]
    assert secret == [
        {
            "source_key": "omero.mail.password",
            "key": "mail.password",
            "value": "********",
            "secret": True,
            "note": "",
        }
    ]
    assert {"source_key": "(12 other keys)", "reason": "not mail settings"} in data["ignored"]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path, _ = SAMPLES["kallithea"]
    result = run_postroom(home, "config", "import", "--from", "kallithea", str(path), "--dry-run")
    assert result.code == 0, result.stderr
    assert "Nothing written (dry run)" in result.stdout
    assert "smtp_use_tls" in result.stdout
    assert not (home / "postroom.toml").exists()
    as_json = run_postroom(
        home, "config", "import", "--from", "kallithea", str(path), "--dry-run", "--json"
    )
    assert json.loads(as_json.stdout)["written"] is False
    assert not (home / "postroom.toml").exists()


def test_settings_file_is_private_to_its_owner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path, _ = SAMPLES["labkey"]
    assert run_postroom(home, "config", "import", "--from", "labkey", str(path)).code == 0
    mode = stat.S_IMODE((home / "postroom.toml").stat().st_mode)
    assert mode == 0o600


def _conflicting_kallithea(tmp_path: Path) -> Path:
    text = SAMPLES["kallithea"][0].read_text(encoding="utf-8")
    broken = tmp_path / "production.ini"
    broken.write_text(text.replace("#smtp_use_ssl = false", "smtp_use_ssl = true"), "utf-8")
    return broken


def _seeded_home(tmp_path: Path) -> tuple[Path, bytes]:
    home = tmp_path / "home"
    assert run_postroom(home, "config", "set", "mail.from", "ops@example.org").code == 0
    return home, (home / "postroom.toml").read_bytes()


def test_ssl_and_tls_both_on_exits_2_and_leaves_file_unchanged(tmp_path: Path) -> None:
    home, before = _seeded_home(tmp_path)
    broken = _conflicting_kallithea(tmp_path)
    result = run_postroom(home, "config", "import", "--from", "kallithea", str(broken))
    assert result.code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "smtp_use_ssl and smtp_use_tls are both true" in result.stderr
    assert "mail.security" in result.stderr
    assert (home / "postroom.toml").read_bytes() == before


def test_password_without_tls_to_remote_host_exits_2_and_leaves_file_unchanged(
    tmp_path: Path,
) -> None:
    home, before = _seeded_home(tmp_path)
    peer = tmp_path / "omero.properties"
    peer.write_text(
        "omero.mail.config=true\n"
        "omero.mail.host=smtp.university.example\n"
        "omero.mail.username=omero\n"
        "omero.mail.password=Plain-Text-Pw-7\n",
        encoding="utf-8",
    )
    for extra in ([], ["--dry-run"]):
        result = run_postroom(home, "config", "import", "--from", "omero", str(peer), *extra)
        assert result.code == 2
        line = result.stderr.strip()
        assert len(line.splitlines()) == 1
        assert "omero.mail.password → mail.password" in line
        assert "plaintext" in line
        assert "omero.mail.smtp.starttls.enable=true" in line
        assert "Plain-Text-Pw-7" not in result.output
        assert (home / "postroom.toml").read_bytes() == before


def test_failed_import_into_a_new_home_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_postroom(
        home, "config", "import", "--from", "kallithea", str(_conflicting_kallithea(tmp_path))
    )
    assert result.code == 2
    assert not home.exists()


def test_bad_value_names_peer_key_and_our_key(tmp_path: Path) -> None:
    home, before = _seeded_home(tmp_path)
    peer = tmp_path / "application.properties"
    peer.write_text("mail.smtpHost=smtp.lab.example.org\nmail.smtpPort=smtp\n", "utf-8")
    result = run_postroom(home, "config", "import", "--from", "labkey", str(peer))
    assert result.code == 2
    assert "mail.smtpPort → mail.port" in result.stderr
    assert (home / "postroom.toml").read_bytes() == before


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_postroom(tmp_path, "config", "import", "--from", "omero", str(tmp_path / "nope"))
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'}: no such file; give the path of the peer's file"
    ]


def test_unknown_peer_exits_2_naming_the_three(tmp_path: Path) -> None:
    path, _ = SAMPLES["omero"]
    result = run_postroom(tmp_path, "config", "import", "--from", "redmine", str(path))
    assert result.code == 2
    for kind in SAMPLES:
        assert kind in result.stderr


def test_cross_key_warning_goes_to_stderr(tmp_path: Path) -> None:
    peer = tmp_path / "my.ini"
    peer.write_text("[app:main]\nsmtp_server = smtp.example.com\nsmtp_port = 465\n", "utf-8")
    result = run_postroom(tmp_path / "home", "config", "import", "--from", "kallithea", str(peer))
    assert result.code == 0, result.stderr
    assert "port 465 expects implicit TLS" in result.stderr
    assert "port 465 expects" not in result.stdout


def test_environment_override_of_an_imported_key_is_pointed_out(tmp_path: Path) -> None:
    path, _ = SAMPLES["labkey"]
    result = run_postroom(
        tmp_path / "home",
        "config",
        "import",
        "--from",
        "labkey",
        str(path),
        env={"POSTROOM_MAIL_HOST": "relay.internal"},
    )
    assert result.code == 0, result.stderr
    assert "mail.host is overridden by the environment (POSTROOM_MAIL_HOST)" in result.stderr
