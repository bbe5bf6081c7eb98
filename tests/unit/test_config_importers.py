"""Importing a peer's mail settings: the .properties reader and every mapping rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.errors import ConfigError, ConfigImportError
from postroom.settings.importers import (
    ImportPlan,
    check_plan,
    explain_error,
    import_peer_config,
    parse_properties,
)
from postroom.settings.importers.base import format_seconds, read_properties
from postroom.settings.importers.labkey import normalise

DATA = Path(__file__).parent.parent / "data"


def plan_of(kind: str, tmp_path: Path, text: str, name: str = "peer.conf") -> ImportPlan:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return import_peer_config(kind, path)


def reasons(plan: ImportPlan) -> dict[str, str]:
    return {item.source_key: item.reason for item in plan.ignored}


def sources(plan: ImportPlan) -> dict[str, str]:
    return {item.key: item.source_key for item in plan.mapped}


# -- the .properties format ------------------------------------------------------------


def test_properties_accept_equals_colon_and_blank_as_separator() -> None:
    text = "a=1\nb: 2\nc 3\nd = 4\ne\t:\t5\nf\n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": ""}


def test_properties_skip_hash_and_bang_comments_and_blank_lines() -> None:
    text = "# comment\n   ! also a comment\n\n  \nkey=value # not a comment\n"
    assert parse_properties(text) == {"key": "value # not a comment"}


def test_properties_backslash_continues_line_without_leading_blanks() -> None:
    text = "url=jdbc:postgresql://db:5432/\\\n        labkey\nnext=1\n"
    assert parse_properties(text) == {"url": "jdbc:postgresql://db:5432/labkey", "next": "1"}


def test_properties_continuation_line_starting_with_hash_is_not_a_comment() -> None:
    assert parse_properties("a=x\\\n  #y\n") == {"a": "x#y"}


def test_properties_comment_ending_in_backslash_does_not_continue() -> None:
    assert parse_properties("# note \\\na=1\n") == {"a": "1"}


def test_properties_even_backslashes_are_a_literal_backslash_not_a_continuation() -> None:
    assert parse_properties("a=C:\\\\dir\\\\\nb=2\n") == {"a": "C:\\dir\\", "b": "2"}


def test_properties_decode_unicode_and_character_escapes() -> None:
    text = "pw=L4bkey\\u0021Mail\nname=J\\u00f6rg\ntab=a\\tb\nsmile=\\uD83D\\uDE00\nx=\\q\n"
    assert parse_properties(text) == {
        "pw": "L4bkey!Mail",
        "name": "Jörg",
        "tab": "a\tb",
        "smile": "😀",
        "x": "q",
    }


def test_properties_escaped_separator_belongs_to_the_key() -> None:
    assert parse_properties("a\\=b\\:c\\ d=value\n") == {"a=b:c d": "value"}


def test_properties_later_duplicate_wins_and_crlf_is_a_line_end() -> None:
    assert parse_properties("a=1\r\na=2\rb=3\r\n") == {"a": "2", "b": "3"}


def test_properties_malformed_unicode_escape_names_file_and_line() -> None:
    with pytest.raises(ConfigImportError) as caught:
        parse_properties("ok=1\nbad=\\u12G4\n", path="app.properties")
    assert caught.value.line == 2
    assert str(caught.value).startswith("app.properties:2: malformed \\u escape")


def test_properties_file_in_latin1_is_read(tmp_path: Path) -> None:
    path = tmp_path / "latin1.properties"
    path.write_bytes("name=J\xf6rg\n".encode("latin-1"))
    assert read_properties(path) == {"name": "Jörg"}


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


def _escape(text: str, *, key: bool) -> str:
    out = []
    for index, char in enumerate(text):
        if char in "\\=:#!" or (char == " " and (key or index == 0)):
            out.append("\\" + char)
        elif not " " <= char <= "~":
            out.extend(f"\\u{unit:04x}" for unit in _utf16_units(char))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


@given(st.dictionaries(_TEXT.filter(bool), _TEXT, max_size=5))
def test_properties_round_trip_what_java_would_write(values: dict[str, str]) -> None:
    text = "".join(f"{_escape(k, key=True)}={_escape(v, key=False)}\n" for k, v in values.items())
    assert parse_properties(text) == values


# -- dispatch and reading --------------------------------------------------------------


def test_unknown_peer_is_an_error_naming_the_three(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"omero.*kallithea.*labkey"):
        import_peer_config("redmine", tmp_path / "x")


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match="no such file") as caught:
        import_peer_config("omero", tmp_path / "absent.properties")
    assert "\n" not in str(caught.value)


def test_folder_instead_of_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match="is a folder"):
        import_peer_config("labkey", tmp_path)


def test_milliseconds_become_exact_seconds() -> None:
    assert [format_seconds(ms) for ms in (60000, 1500, 1, 30250)] == ["60", "1.5", "0.001", "30.25"]


# -- OMERO -----------------------------------------------------------------------------


def test_omero_sample_maps_gmail_ssl_setup() -> None:
    plan = import_peer_config("omero", DATA / "omero-mail.properties")
    check_plan(plan)
    assert plan.values() == {
        "mail.enabled": "true",
        "mail.host": "smtp.gmail.com",
        "mail.port": "465",
        "mail.security": "ssl",
        "mail.username": "omero-notifications@gmail.com",
        "mail.password": "gmail-App-Passw0rd-xk2q",
        "mail.from": "omero-notifications@gmail.com",
        "mail.timeout": "60",
        "mail.admins": json.dumps(
            ["Imaging Facility <imaging-admin@example.org>", "Jane Doe <jane.doe@example.org>"]
        ),
        "mail.error_from": "OMERO.web <omero-web@example.org>",
        "mail.subject_prefix": "[OMERO.web]",
    }
    assert sources(plan)["mail.security"] == "omero.mail.smtp.socketFactory.class"
    assert sources(plan)["mail.timeout"] == "omero.mail.smtp.connectiontimeout"
    why = reasons(plan)
    assert "never falls back to plaintext" in why["omero.mail.smtp.socketFactory.fallback"]
    assert "logs in whenever mail.username is set" in why["omero.mail.smtp.auth"]
    assert why["(12 other keys)"] == "not mail settings"


def test_omero_password_is_a_secret_and_masked_when_shown() -> None:
    plan = import_peer_config("omero", DATA / "omero-mail.properties")
    (password,) = [m for m in plan.mapped if m.key == "mail.password"]
    assert password.secret
    assert password.shown == "********"


def test_omero_host_without_mail_config_says_mail_enabled_is_left_alone(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.host=smtp.example.org\n")
    assert plan.values() == {"mail.host": "smtp.example.org"}
    assert "omero.mail.config is not in the file" in plan.mapped[0].note


def test_omero_smtps_protocol_means_ssl(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.transport.protocol=smtps\n")
    assert plan.values() == {"mail.security": "ssl"}


def test_omero_starttls_enable_means_starttls_and_says_postroom_never_falls_back(
    tmp_path: Path,
) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.smtp.starttls.enable=true\n")
    assert plan.values() == {"mail.security": "starttls"}
    assert "refuses" in plan.mapped[0].note


def test_omero_ssl_factory_beats_starttls_and_says_why(tmp_path: Path) -> None:
    text = (
        "omero.mail.smtp.starttls.enable=true\n"
        "omero.mail.smtp.socketFactory.class=javax.net.ssl.SSLSocketFactory\n"
    )
    plan = plan_of("omero", tmp_path, text)
    assert plan.values() == {"mail.security": "ssl"}
    assert "STARTTLS does not apply" in reasons(plan)["omero.mail.smtp.starttls.enable"]


def test_omero_explicit_starttls_false_means_no_tls(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.smtp.starttls.enable=false\n")
    assert plan.values() == {"mail.security": "none"}


def test_omero_custom_socket_factory_decides_nothing(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.smtp.socketFactory.class=org.example.TrustAll\n")
    assert plan.values() == {}
    assert "cannot load" in reasons(plan)["omero.mail.smtp.socketFactory.class"]


def test_omero_unknown_protocol_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match=r"transport\.protocol.*smtp or smtps"):
        plan_of("omero", tmp_path, "omero.mail.transport.protocol=imap\n")


def test_omero_socket_factory_port_wins_over_port_and_says_so(tmp_path: Path) -> None:
    text = (
        "omero.mail.port=25\n"
        "omero.mail.smtp.socketFactory.class=javax.net.ssl.SSLSocketFactory\n"
        "omero.mail.smtp.socketFactory.port=465\n"
    )
    plan = plan_of("omero", tmp_path, text)
    assert plan.values()["mail.port"] == "465"
    assert sources(plan)["mail.port"] == "omero.mail.smtp.socketFactory.port"
    assert "socketFactory.port=465 wins" in reasons(plan)["omero.mail.port"]


def test_omero_socket_factory_port_without_factory_is_ignored(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.smtp.socketFactory.port=465\n")
    assert "mail.port" not in plan.values()
    assert "no socket factory" in reasons(plan)["omero.mail.smtp.socketFactory.port"]


def test_omero_largest_timeout_in_milliseconds_becomes_seconds(tmp_path: Path) -> None:
    text = (
        "omero.mail.smtp.connectiontimeout=1500\n"
        "omero.mail.smtp.timeout=2500\n"
        "omero.mail.smtp.writetimeout=0\n"
    )
    plan = plan_of("omero", tmp_path, text)
    assert plan.values() == {"mail.timeout": "2.5"}
    assert "no time limit" in reasons(plan)["omero.mail.smtp.writetimeout"]
    assert "1500 ms" in reasons(plan)["omero.mail.smtp.connectiontimeout"]


def test_omero_timeout_that_is_not_a_number_names_key_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match=r"smtp\.timeout.*mail\.timeout.*30000"):
        plan_of("omero", tmp_path, "omero.mail.smtp.timeout=30s\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("omero.mail.username=u\nomero.mail.smtp.auth=false\n", "mail.username is set"),
        ("omero.mail.smtp.auth=true\n", "no user name is set"),
        ("omero.mail.smtp.auth=false\n", "without login"),
    ],
)
def test_omero_auth_maps_nothing_but_explains(tmp_path: Path, text: str, expected: str) -> None:
    plan = plan_of("omero", tmp_path, text)
    assert "mail.auth" not in plan.values()
    assert expected in reasons(plan)["omero.mail.smtp.auth"]


def test_omero_debug_points_at_test_email(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.smtp.debug=true\n")
    assert "postroom test-email" in reasons(plan)["omero.mail.smtp.debug"]


def test_omero_bean_naming_python_class_becomes_transport(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.bean=mysite.mail:RelayTransport\n")
    assert plan.values() == {"mail.transport": "mysite.mail:RelayTransport"}


def test_omero_java_bean_is_ignored_with_custom_transport_advice(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.bean=myMailImplementation\n")
    assert plan.values() == {}
    assert "mail.transport=package.module:Class" in reasons(plan)["omero.mail.bean"]


def test_omero_admins_as_python_literal_with_quoted_names(tmp_path: Path) -> None:
    text = "omero.web.admins=[('Doe, Jane', 'jane@example.org'), ('', 'ops@example.org')]\n"
    plan = plan_of("omero", tmp_path, text)
    check_plan(plan)
    assert json.loads(plan.values()["mail.admins"]) == [
        '"Doe, Jane" <jane@example.org>',
        "ops@example.org",
    ]


def test_omero_admins_that_are_not_pairs_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match=r"omero\.web\.admins.*mail\.admins"):
        plan_of("omero", tmp_path, "omero.web.admins=admin@example.org\n")


def test_omero_masked_password_from_config_get_is_not_imported(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.password=********\n")
    assert plan.values() == {}
    assert "--show-password" in reasons(plan)["omero.mail.password"]


def test_omero_web_django_settings_fill_only_what_omero_mail_leaves_empty(
    tmp_path: Path,
) -> None:
    text = (
        "omero.mail.host=smtp.example.org\n"
        "omero.web.email_host=web-smtp.example.org\n"
        "omero.web.email_port=587\n"
        "omero.web.email_host_user=web\n"
        "omero.web.email_host_password=web-secret\n"
        "omero.web.email_use_tls=True\n"
    )
    plan = plan_of("omero", tmp_path, text)
    assert plan.values() == {
        "mail.host": "smtp.example.org",
        "mail.port": "587",
        "mail.username": "web",
        "mail.password": "web-secret",
        "mail.security": "starttls",
    }
    assert "which wins" in reasons(plan)["omero.web.email_host"]
    notes = {m.source_key: m.note for m in plan.mapped}
    assert "OMERO.web's Django setting" in notes["omero.web.email_port"]
    assert [m.secret for m in plan.mapped if m.key == "mail.password"] == [True]


def test_omero_web_tls_and_ssl_both_true_is_an_error(tmp_path: Path) -> None:
    text = "omero.web.email_use_tls=true\nomero.web.email_use_ssl=true\n"
    with pytest.raises(ConfigImportError, match="both true"):
        plan_of("omero", tmp_path, text)


def test_omero_other_keys_are_not_mail_settings(tmp_path: Path) -> None:
    text = "omero.db.name=omero\nomero.mail.smtp.localhost=omero.example.org\n"
    plan = plan_of("omero", tmp_path, text)
    assert reasons(plan) == {
        "omero.mail.smtp.localhost": "no postroom equivalent",
        "omero.db.name": "not a mail setting",
    }


# -- Kallithea -------------------------------------------------------------------------


def test_kallithea_sample_maps_starttls_submission() -> None:
    plan = import_peer_config("kallithea", DATA / "kallithea.ini")
    check_plan(plan)
    assert plan.values() == {
        "mail.enabled": "true",
        "mail.host": "smtp.example.com",
        "mail.port": "587",
        "mail.security": "starttls",
        "mail.username": "kallithea",
        "mail.password": "Sm7p-Secret-kallithea",
        "mail.auth": "login",
        "mail.from": "Kallithea <kallithea-noreply@example.com>",
        "mail.subject_prefix": "[Kallithea]",
        "mail.admins": json.dumps(["admin@example.com", "scm-team@example.com"]),
        "mail.error_from": "Kallithea Errors <kallithea-noreply@example.com>",
    }
    why = reasons(plan)
    assert why["debug"].startswith("false")
    # Dozens of unrelated keys, one line: and no secret of theirs in any reason.
    assert [key for key in why if key.endswith("other keys)")] == ["(26 other keys)"]
    assert "Db-Pass" not in repr(plan.ignored)


def test_kallithea_app_main_wins_over_default(tmp_path: Path) -> None:
    text = "[DEFAULT]\nsmtp_server = old.example.com\n[app:main]\nsmtp_server = new.example.com\n"
    assert plan_of("kallithea", tmp_path, text).values()["mail.host"] == "new.example.com"


def test_kallithea_set_line_in_app_main_overrides_default(tmp_path: Path) -> None:
    text = "[DEFAULT]\ndebug = false\n[app:main]\nset debug = true\n"
    plan = plan_of("kallithea", tmp_path, text)
    assert "web.debug=true" in reasons(plan)["debug"]
    assert "web.debug" not in plan.values()


def test_kallithea_percent_signs_are_not_interpolated(tmp_path: Path) -> None:
    text = "[app:main]\nsmtp_server = mail.example.com\ncache_dir = %(here)s/data\nx = 100%\n"
    assert plan_of("kallithea", tmp_path, text).values()["mail.host"] == "mail.example.com"


def test_kallithea_ssl_and_tls_both_true_is_an_error_naming_both(tmp_path: Path) -> None:
    text = "[app:main]\nsmtp_server = m.example.com\nsmtp_use_ssl = true\nsmtp_use_tls = yes\n"
    with pytest.raises(ConfigImportError, match="smtp_use_ssl and smtp_use_tls are both true"):
        plan_of("kallithea", tmp_path, text)


def test_kallithea_ssl_flag_means_ssl(tmp_path: Path) -> None:
    text = "[app:main]\nsmtp_server = m.example.com\nsmtp_use_ssl = true\nsmtp_use_tls = false\n"
    plan = plan_of("kallithea", tmp_path, text)
    assert plan.values()["mail.security"] == "ssl"
    assert "smtp_use_tls" in reasons(plan)


@pytest.mark.parametrize("line", ["smtp_server =\n", ""])
def test_kallithea_without_server_keeps_mail_off(tmp_path: Path, line: str) -> None:
    plan = plan_of("kallithea", tmp_path, f"[app:main]\n{line}email_prefix = [K]\n")
    assert plan.values()["mail.enabled"] == "false"
    assert "mail.host" not in plan.values()
    assert "only logs" in plan.mapped[0].note


@pytest.mark.parametrize(
    ("value", "expected"), [("PLAIN", "plain"), ("CRAM-MD5", "cram-md5"), ("login", "login")]
)
def test_kallithea_smtp_auth_is_lowercased(tmp_path: Path, value: str, expected: str) -> None:
    plan = plan_of("kallithea", tmp_path, f"[app:main]\nsmtp_auth = {value}\n")
    assert plan.values()["mail.auth"] == expected


def test_kallithea_unknown_smtp_auth_is_ignored_with_reason(tmp_path: Path) -> None:
    plan = plan_of("kallithea", tmp_path, "[app:main]\nsmtp_auth = XOAUTH2\n")
    assert "mail.auth" not in plan.values()
    assert "not a mechanism postroom offers" in reasons(plan)["smtp_auth"]


def test_kallithea_email_to_splits_on_commas_and_spaces(tmp_path: Path) -> None:
    text = "[app:main]\nemail_to = a@example.com b@example.com,Ops Team <ops@example.com>\n"
    plan = plan_of("kallithea", tmp_path, text)
    check_plan(plan)
    assert json.loads(plan.values()["mail.admins"]) == [
        "a@example.com",
        "b@example.com",
        "Ops Team <ops@example.com>",
    ]


def test_kallithea_lists_mail_looking_unknown_keys_one_by_one(tmp_path: Path) -> None:
    keys = "".join(f"key{n} = {n}\n" for n in range(10))
    plan = plan_of("kallithea", tmp_path, f"[app:main]\nsmtp_helo = me\n{keys}")
    assert reasons(plan) == {
        "smtp_helo": "not a mail setting",
        "(10 other keys)": "not mail settings",
    }


def test_kallithea_bad_boolean_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match="smtp_use_tls = 'maybe'"):
        plan_of("kallithea", tmp_path, "[app:main]\nsmtp_use_tls = maybe\n")


def test_kallithea_file_that_is_not_ini_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigImportError, match=r"not a Kallithea \.ini") as caught:
        plan_of("kallithea", tmp_path, "smtp_server = x\n")
    assert caught.value.line == 1


# -- LabKey ----------------------------------------------------------------------------


def test_labkey_sample_maps_smtp_from_to_the_from_and_envelope_sender() -> None:
    plan = import_peer_config("labkey", DATA / "labkey-application.properties")
    check_plan(plan)
    assert plan.values() == {
        "mail.enabled": "true",
        "mail.host": "smtp.office365.com",
        "mail.port": "587",
        "mail.security": "starttls",
        "mail.username": "labkey-notify@lab.example.org",
        "mail.password": "L4bkey!Mail-Pw",
        "mail.from": "labkey-bounces@lab.example.org",
        "mail.envelope_from": "labkey-bounces@lab.example.org",
    }
    assert sources(plan)["mail.security"] == "mail.smtpstartTlsEnable"
    assert "logs in whenever" in reasons(plan)["mail.smtpAuth"]
    assert "Db-Pass" not in repr(plan.ignored)


def test_labkey_keys_match_without_case_or_dots() -> None:
    assert {
        normalise(k)
        for k in ("mail.smtpStartTlsEnable", "mail.smtpstartTlsEnable", "mail.smtp.starttls.enable")
    } == {"mail.smtpstarttlsenable"}


def test_labkey_ssl_socket_factory_means_ssl(tmp_path: Path) -> None:
    text = (
        "mail.smtpHost=m.example.org\nmail.smtpSocketFactoryClass=javax.net.ssl.SSLSocketFactory\n"
    )
    assert plan_of("labkey", tmp_path, text).values()["mail.security"] == "ssl"


def test_labkey_older_dotted_keys_are_accepted_and_camel_case_wins(tmp_path: Path) -> None:
    text = "mail.smtp.host=old.example.org\nmail.smtp.port=25\nmail.smtpHost=new.example.org\n"
    plan = plan_of("labkey", tmp_path, text)
    assert plan.values()["mail.host"] == "new.example.org"
    assert plan.values()["mail.port"] == "25"
    assert "which wins" in reasons(plan)["mail.smtp.host"]


def test_labkey_unfilled_template_placeholder_is_ignored(tmp_path: Path) -> None:
    plan = plan_of("labkey", tmp_path, "mail.smtpHost=@@smtpHost@@\n")
    assert plan.values() == {}
    assert "placeholder" in reasons(plan)["mail.smtpHost"]


def test_labkey_smtp_from_with_a_name_keeps_it_in_from_and_bare_in_the_envelope(
    tmp_path: Path,
) -> None:
    plan = plan_of("labkey", tmp_path, "mail.smtpFrom=LabKey <bounces@example.org>\n")
    assert plan.values() == {
        "mail.from": "LabKey <bounces@example.org>",
        "mail.envelope_from": "bounces@example.org",
    }


def test_labkey_template_anonymous_user_means_no_login(tmp_path: Path) -> None:
    text = "mail.smtpHost=localhost\nmail.smtpPort=25\nmail.smtpUser=Anonymous\n"
    plan = plan_of("labkey", tmp_path, text)
    assert "mail.username" not in plan.values()
    assert "no login" in reasons(plan)["mail.smtpUser"]


def test_labkey_logs_in_only_over_tls(tmp_path: Path) -> None:
    text = "mail.smtpHost=relay.lab\nmail.smtpUser=labkey\nmail.smtpPassword=pw\n"
    plan = plan_of("labkey", tmp_path, text)
    assert "mail.username" not in plan.values()
    assert "mail.password" not in plan.values()
    assert "only over SSL or STARTTLS" in reasons(plan)["mail.smtpUser"]
    with_tls = plan_of("labkey", tmp_path, text + "mail.smtpStartTlsEnable=true\n")
    assert with_tls.values()["mail.username"] == "labkey"


LABKEY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Context docBase="/labkey/labkeywebapp" reloadable="true" crossContext="true">
  <Resource name="jdbc/labkeyDataSource" auth="Container" type="javax.sql.DataSource"
            username="labkey" password="Db-Pass-3e8a" url="jdbc:postgresql://db/labkey"/>
  <Resource name="mail/Session" auth="Container" type="javax.mail.Session"
            mail.smtp.host="smtp.labkey.example" mail.smtp.user="labkey"
            mail.smtp.port="25"/>
</Context>
"""


def test_labkey_xml_is_read_from_its_mail_resource(tmp_path: Path) -> None:
    path = tmp_path / "labkey.xml"
    path.write_text(LABKEY_XML)
    plan = import_peer_config("labkey", path)
    check_plan(plan)
    assert plan.values() == {
        "mail.enabled": "true",
        "mail.host": "smtp.labkey.example",
        "mail.port": "25",
    }
    assert "Db-Pass" not in repr(plan)


def test_xml_without_a_mail_resource_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labkey.xml"
    path.write_text("<Context><Resource type='javax.sql.DataSource'/></Context>")
    with pytest.raises(ConfigImportError, match=r"javax\.mail\.Session"):
        import_peer_config("labkey", path)


GRAPH_SECRET = "Gr4ph~Secret.k9Q_x7Lm2Pz!"
GRAPH_LINES = (
    "mail_graph.tenantId=contoso.onmicrosoft.com\n"
    "mail_graph.clientId=0c9e8d7f-6a5b-4c3d-9e1f-a0b1c2d3e4f5\n"
    f"mail_graph.clientSecret={GRAPH_SECRET}\n"
    "mail_graph.fromAddress=labkey@contoso.example\n"
)


def test_labkey_graph_sample_maps_oauth_settings_and_the_graph_transport() -> None:
    plan = import_peer_config("labkey", DATA / "labkey-graph.properties")
    check_plan(plan)
    assert plan.values() == {
        "mail.oauth.tenant_id": "4b1c3a2e-9f0d-4e7a-8c55-1d2e3f4a5b6c",
        "mail.oauth.client_id": "0c9e8d7f-6a5b-4c3d-9e1f-a0b1c2d3e4f5",
        "mail.oauth.client_secret": GRAPH_SECRET,
        "mail.from": "labkey-notify@lab.example.org",
        "mail.transport": "graph",
        "mail.oauth.provider": "microsoft",
        "mail.enabled": "true",
    }
    assert sources(plan)["mail.oauth.client_secret"] == "mail_graph.clientSecret;startup"
    assert sources(plan)["mail.transport"] == "mail_graph.tenantId;startup"
    assert reasons(plan) == {
        "SiteSettings.baseServerURL;startup": "not a mail setting",
        "SiteSettings.sslRequired;startup": "not a mail setting",
    }


def test_labkey_graph_client_secret_is_masked_in_everything_the_plan_reports() -> None:
    plan = import_peer_config("labkey", DATA / "labkey-graph.properties")
    (secret,) = [m for m in plan.mapped if m.key == "mail.oauth.client_secret"]
    assert secret.secret
    assert secret.shown == "********"
    report = [(m.source_key, m.key, m.shown, m.note) for m in plan.mapped] + plan.ignored
    assert GRAPH_SECRET not in repr(report)
    assert [m.key for m in plan.mapped if m.secret] == ["mail.oauth.client_secret"]


@pytest.mark.parametrize(
    "prefix", ["mail_graph.", "MAIL_GRAPH.", "context.mail_graph.", "mail.graph."]
)
def test_labkey_graph_spellings_are_accepted(tmp_path: Path, prefix: str) -> None:
    text = GRAPH_LINES.replace("mail_graph.", prefix)
    values = plan_of("labkey", tmp_path, text).values()
    assert values["mail.transport"] == "graph"
    assert values["mail.oauth.tenant_id"] == "contoso.onmicrosoft.com"
    assert values["mail.oauth.client_secret"] == GRAPH_SECRET


def test_labkey_graph_partly_set_imports_nothing_and_names_what_is_missing(
    tmp_path: Path,
) -> None:
    text = (
        "mail_graph.tenantId;startup=contoso.onmicrosoft.com\n"
        f"mail_graph.clientSecret;startup={GRAPH_SECRET}\n"
        "mail_graph.fromAddress;startup=\n"
        "mail_graph.clientid;startup=0c9e8d7f\n"
        "mail_graph.scope;startup=https://graph.microsoft.com/.default\n"
    )
    plan = plan_of("labkey", tmp_path, text)
    assert plan.values() == {}
    why = reasons(plan)
    for key in ("mail_graph.tenantId;startup", "mail_graph.clientSecret;startup"):
        assert "only when tenantId, clientId, clientSecret and fromAddress" in why[key]
        assert why[key].endswith("missing: clientId, fromAddress")
    assert why["mail_graph.fromAddress;startup"] == "empty: left as it is"
    assert "reads clientId exactly (case matters)" in why["mail_graph.clientid;startup"]
    assert "not a Graph setting" in why["mail_graph.scope;startup"]
    assert GRAPH_SECRET not in repr(plan)


def test_labkey_graph_startup_spelling_wins_and_servlet_fallback_is_unused(
    tmp_path: Path,
) -> None:
    text = (
        GRAPH_LINES
        + "mail_graph.tenantId;startup=fabrikam.onmicrosoft.com\n"
        + "mail.graph.clientId=ffffffff-0000-0000-0000-000000000000\n"
    )
    plan = plan_of("labkey", tmp_path, text)
    assert plan.values()["mail.oauth.tenant_id"] == "fabrikam.onmicrosoft.com"
    assert plan.values()["mail.oauth.client_id"] == "0c9e8d7f-6a5b-4c3d-9e1f-a0b1c2d3e4f5"
    why = reasons(plan)
    assert why["mail_graph.tenantId"] == (
        "another spelling of mail_graph.tenantId;startup, which wins"
    )
    assert "only when no mail_graph.* key is set" in why["mail.graph.clientId"]


def test_labkey_graph_with_an_smtp_host_is_a_conflict(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigImportError, match=r"mail\.smtpHost and mail_graph\.tenantId"
    ) as caught:
        plan_of("labkey", tmp_path, "mail.smtpHost=smtp.office365.com\n" + GRAPH_LINES)
    assert "configuration conflict" in str(caught.value)
    assert GRAPH_SECRET not in str(caught.value)


def test_labkey_graph_leaves_smtp_keys_without_a_host_unused(tmp_path: Path) -> None:
    text = "mail.smtpHost=@@smtpHost@@\nmail.smtpFrom=old@contoso.example\n" + GRAPH_LINES
    plan = plan_of("labkey", tmp_path, text)
    assert plan.values()["mail.from"] == "labkey@contoso.example"
    assert "mail.envelope_from" not in plan.values()
    assert "LabKey sends through Microsoft Graph" in reasons(plan)["mail.smtpFrom"]
    assert "placeholder" in reasons(plan)["mail.smtpHost"]


# -- applying: errors name the peer key ------------------------------------------------


def test_bad_value_names_peer_key_our_key_and_fix(tmp_path: Path) -> None:
    plan = plan_of("labkey", tmp_path, "mail.smtpHost=m.example.org\nmail.smtpPort=smtp\n")
    with pytest.raises(ConfigImportError) as caught:
        check_plan(plan)
    message = str(caught.value)
    assert "mail.smtpPort → mail.port" in message
    assert "correct mail.smtpPort in the file" in message
    assert "nothing was written" in message


def test_plaintext_password_conflict_names_the_password_key_and_peer_fix(tmp_path: Path) -> None:
    text = "omero.mail.host=m.example.org\nomero.mail.password=Zq9-secret\n"
    plan = plan_of("omero", tmp_path, text)
    conflict = ConfigError("mail.password would be sent in plaintext", key="mail.security")
    explained = explain_error(plan, conflict)
    assert isinstance(explained, ConfigImportError)
    assert "omero.mail.password → mail.password" in str(explained)
    assert "omero.mail.smtp.starttls.enable=true" in str(explained)
    assert "Zq9-secret" not in str(explained)


def test_error_not_caused_by_the_plan_is_returned_unchanged(tmp_path: Path) -> None:
    plan = plan_of("omero", tmp_path, "omero.mail.host=m.example.org\n")
    other = ConfigError("delivery.backoff_min is longer", key="delivery.backoff_min")
    assert explain_error(plan, other) is other
