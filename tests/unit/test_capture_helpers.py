"""Pure helpers of the mail record: header summaries, links, the recording warning."""

from __future__ import annotations

from pathlib import Path

from postroom.capture import recording_warning
from postroom.capture.server import is_loopback
from postroom.settings import Home, load
from postroom.store.capture import header_summary
from postroom.testing import extract_links


def test_header_summary_unfolds_and_decodes_encoded_words() -> None:
    raw = (
        b"Received: from x\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n  more\r\n"
        b"From: Ada <ada@example.org>\r\nTO: bob@example.org,\r\n\tcy@example.org\r\n"
        b"\r\nSubject: not a header\r\n"
    )
    assert header_summary(raw) == (
        "Grüße and more",
        "Ada <ada@example.org>",
        "bob@example.org, cy@example.org",
    )


def test_header_summary_of_a_message_without_headers_is_empty() -> None:
    assert header_summary(b"just text, no header block") == ("", "", "")
    assert header_summary(b"") == ("", "", "")


def test_links_come_from_text_and_html_each_once_without_trailing_punctuation() -> None:
    text = "Reset: https://app.example.org/reset?token=abc&user=7.\nOr (http://x.org/a)."
    html = (
        '<p>Click <a href="https://app.example.org/reset?token=abc&amp;user=7">here</a>'
        '<img src="https://cdn.example.org/logo.png"> or see https://docs.example.org/help</p>'
        '<a href="mailto:help@example.org">mail</a>'
    )
    assert extract_links(text, html) == [
        "https://app.example.org/reset?token=abc&user=7",
        "http://x.org/a",
        "https://cdn.example.org/logo.png",
        "https://docs.example.org/help",
    ]


def test_recording_warning_only_when_mail_is_on_and_recorded(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    on = {"mail.enabled": "true", "mail.transport": "capture"}
    assert "NOT delivered" in (recording_warning(load(home, flags=on, environ={})) or "")
    off = {"mail.enabled": "false", "mail.transport": "capture"}
    assert recording_warning(load(home, flags=off, environ={})) is None
    assert recording_warning(load(home, flags={"mail.enabled": "true"}, environ={})) is None


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "mail.example.org"]))
