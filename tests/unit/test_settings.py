"""Settings: glossary, parsing, precedence, consistency checks, the file on disk."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from postroom.errors import ConfigError
from postroom.message import ComposePolicy, OutgoingMessage, compose
from postroom.settings import GLOSSARY, MASK, Home, Secret, load, update_file
from postroom.settings.values import (
    parse_bool,
    parse_duration,
    parse_host_port,
    parse_list,
    parse_rate,
    parse_size,
)

DESIGN_KEYS = [
    "mail.enabled",
    "mail.host",
    "mail.port",
    "mail.username",
    "mail.password",
    "mail.security",
    "mail.auth",
    "mail.timeout",
    "mail.tls_verify",
    "mail.tls_ca_file",
    "mail.from",
    "mail.envelope_from",
    "mail.error_from",
    "mail.admins",
    "mail.subject_prefix",
    "mail.type_header",
    "mail.transport",
    "mail.redirect_to",
    "mail.max_size",
    "mail.oauth.provider",
    "mail.oauth.tenant_id",
    "mail.oauth.client_id",
    "mail.oauth.client_secret",
    "mail.oauth.refresh_token",
    "mail.oauth.token_url",
    "mail.oauth.scope",
    "mail.graph.base_url",
    "mail.graph.save_to_sent",
    "database.url",
    "web.bind",
    "web.debug",
    "capture.bind",
]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.resolve(tmp_path / "home")


def test_glossary_has_every_design_key_with_a_description_and_env_twin() -> None:
    for key in DESIGN_KEYS:
        spec = GLOSSARY[key]
        assert spec.description
        assert spec.env == "POSTROOM_" + key.upper().replace(".", "_")
    assert GLOSSARY["mail.password"].secret
    assert [k for k, s in GLOSSARY.items() if s.secret] == [
        "mail.password",
        "mail.oauth.client_secret",
        "mail.oauth.refresh_token",
    ]


def test_defaults_match_the_design_table(home: Home) -> None:
    config = load(home, environ={})
    assert config.value("mail.enabled") is False
    assert config.value("mail.host") == "localhost"
    assert config.value("mail.port") == 25
    assert config.value("mail.security") == "none"
    assert config.value("mail.from") == "postroom@localhost"
    assert config.value("mail.type_header") == "X-Postroom-Notification-Type"
    assert config.value("mail.max_size") == 25_000_000
    assert config.value("delivery.max_age") == 5 * 86400
    assert str(config.value("web.bind")) == "127.0.0.1:8025"
    assert str(config.value("capture.bind")) == "127.0.0.1:1025"
    assert set(config.sources.values()) == {"default"}


def test_precedence_is_flag_then_env_then_file_then_default(home: Home) -> None:
    update_file(home, set_values={"mail.host": "file.example", "mail.port": "2525"}, environ={})
    env = {"POSTROOM_MAIL_HOST": "env.example", "POSTROOM_MAIL_USERNAME": "envuser"}
    config = load(home, environ=env, flags={"mail.host": "flag.example"})
    assert (config.value("mail.host"), config.sources["mail.host"]) == ("flag.example", "flag")
    assert (config.value("mail.username"), config.sources["mail.username"]) == ("envuser", "env")
    assert (config.value("mail.port"), config.sources["mail.port"]) == (2525, "file")
    assert (config.value("mail.timeout"), config.sources["mail.timeout"]) == (30.0, "default")


def test_a_non_ascii_sender_name_is_kept_as_text_and_composes(home: Home) -> None:
    # Stored as the name a reader sees, not as an RFC 2047 encoded word, which compose
    # refuses in a header value (every message would fail).
    config = load(home, environ={}, flags={"mail.from": "Pöstroom Bøt <robot@example.org>"})
    assert config.value("mail.from") == "Pöstroom Bøt <robot@example.org>"
    policy = ComposePolicy.from_settings(config.settings.mail)
    composed = compose(OutgoingMessage(to=("ada@example.org",), subject="s", text="t"), policy)
    assert composed.message["From"].addresses[0].display_name == "Pöstroom Bøt"


def test_unknown_key_suggests_the_closest(home: Home) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'mail.hots'; did you mean mail.host\?"):
        update_file(home, set_values={"mail.hots": "x"}, environ={})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mail.port", "0", "mail.port: 0 is not a port: use 1-65535"),
        ("mail.port", "70000", "mail.port: 70000 is not a port: use 1-65535"),
        ("mail.port", "abc", "mail.port: 'abc' is not a whole number"),
        ("mail.enabled", "perhaps", "mail.enabled: 'perhaps' is not a boolean"),
        ("mail.security", "tls", "mail.security: 'tls' is not one of none, starttls, ssl"),
        ("mail.auth", "xoauth", "mail.auth: 'xoauth' is not one of auto, plain, login, cram-md5"),
        ("mail.timeout", "soon", "mail.timeout: 'soon' is not a duration"),
        ("mail.from", "not an address", "mail.from: 'not an address' is not a valid e-mail"),
        ("mail.admins", "a@example.org, nope", "mail.admins: 'nope' is not a valid e-mail"),
        ("mail.subject_prefix", "[x]\r\nBcc: e@evil.example", "contains a CR character"),
        ("mail.transport", "carrier pigeon", "is not a transport"),
        ("database.url", "mysql://x", "is not a database URL"),
        ("web.bind", "localhost", "is not HOST:PORT"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(
    home: Home, key: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        update_file(home, set_values={key: value}, environ={})
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert not home.config_file.exists()


def test_password_in_plaintext_to_a_remote_host_is_refused(home: Home) -> None:
    update_file(home, set_values={"mail.host": "smtp.university.example"}, environ={})
    before = home.config_file.read_bytes()
    with pytest.raises(ConfigError) as caught:
        update_file(home, set_values={"mail.password": "hunter2"}, environ={})
    assert "mail.security=starttls or ssl" in str(caught.value)
    assert "mail.allow_plaintext_auth=true" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert home.config_file.read_bytes() == before


def test_password_in_plaintext_is_allowed_to_loopback_or_when_explicitly_allowed(
    home: Home,
) -> None:
    update_file(home, set_values={"mail.password": "pw"}, environ={})
    config = update_file(
        home,
        set_values={"mail.host": "relay.internal.example", "mail.allow_plaintext_auth": "yes"},
        environ={},
    )
    assert config.value("mail.password") == Secret("pw")


@pytest.mark.parametrize(
    ("port", "security", "fix"),
    [("465", "starttls", "mail.security=ssl"), ("587", "ssl", "mail.security=starttls")],
)
def test_port_and_security_mismatch_warns_with_the_likely_fix(
    home: Home, port: str, security: str, fix: str
) -> None:
    config = update_file(
        home, set_values={"mail.port": port, "mail.security": security}, environ={}
    )
    warnings = [w.message for w in config.warnings()]
    assert any(fix in w for w in warnings), warnings


def test_file_is_written_with_mode_0600_and_no_temporary_left(home: Home) -> None:
    update_file(home, set_values={"mail.host": "smtp.example.org"}, environ={})
    mode = stat.S_IMODE(home.config_file.stat().st_mode)
    assert mode == 0o600
    assert [p.name for p in home.path.iterdir()] == ["postroom.toml"]


def test_secret_is_masked_in_repr_and_str() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert str(secret) == MASK
    assert secret.reveal() == "hunter2"


def test_unknown_key_in_hand_edited_file_names_the_file(home: Home) -> None:
    home.ensure()
    home.config_file.write_text('[mail]\nhots = "x"\n')
    with pytest.raises(ConfigError, match=r"postroom.toml: unknown setting 'mail.hots'"):
        load(home, environ={})


def test_bad_environment_value_names_the_variable(home: Home) -> None:
    with pytest.raises(ConfigError, match=r"mail.port \(from POSTROOM_MAIL_PORT\)"):
        load(home, environ={"POSTROOM_MAIL_PORT": "smtp"})


@pytest.mark.parametrize(
    ("raw", "seconds"), [("30", 30), ("30s", 30), ("10m", 600), ("2h", 7200), ("5d", 432000)]
)
def test_durations(raw: str, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["true", "yes", "1", "TRUE", "on"])
def test_true_booleans(raw: str) -> None:
    assert parse_bool(raw) is True


def test_lists_take_commas_or_json() -> None:
    assert parse_list("a@example.org, b@example.org") == ("a@example.org", "b@example.org")
    assert parse_list('["a@example.org", "b, c <c@example.org>"]') == (
        "a@example.org",
        "b, c <c@example.org>",
    )
    assert parse_list("") == ()


def test_sizes_rates_and_bind_addresses() -> None:
    assert parse_size("25 MB") == 25_000_000
    assert parse_size("10MiB") == 10 * 1024 * 1024
    rate = parse_rate("50/min")
    assert rate is not None
    assert rate.per_second == pytest.approx(50 / 60)
    assert parse_rate("") is None
    assert str(parse_host_port("[::1]:1025")) == "[::1]:1025"
