"""The log, file, memory and custom transports, and how mail.transport picks one."""

from __future__ import annotations

import logging
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from postroom import Postroom
from postroom.delivery.worker import Worker
from postroom.errors import TransportLoadError
from postroom.message import Envelope
from postroom.settings import Home, load
from postroom.store.queries import get_message
from postroom.transport import (
    FileTransport,
    LogTransport,
    MemoryTransport,
    build_transport,
    transport_class,
)

RAW = (
    b"From: app@example.org\r\nTo: ada@example.org\r\nSubject: Welcome aboard\r\n"
    b"Message-ID: <1@example.org>\r\n\r\nHello Ada,\r\nyour account is ready.\r\n"
)
ENVELOPE = Envelope("bounces@example.org", ("ada@example.org", "bob@example.org"))


def test_mail_switched_off_goes_to_the_log_transport(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    config = load(home, environ={}, flags={"mail.transport": "file"})
    assert isinstance(build_transport(config.settings, home), LogTransport)
    enabled = load(home, environ={}, flags={"mail.transport": "file", "mail.enabled": "true"})
    assert isinstance(build_transport(enabled.settings, home), FileTransport)


def test_log_transport_logs_the_whole_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = Home.resolve(tmp_path)
    transport = build_transport(load(home, environ={}).settings, home)
    with caplog.at_level(logging.INFO, logger="postroom.mail"), transport:
        result = transport.send(ENVELOPE, RAW)
    assert transport.outcome == "logged"
    assert result.all_accepted
    logged = caplog.text
    assert "not delivered" in logged
    assert "Subject: Welcome aboard" in logged
    assert "your account is ready." in logged
    assert "<ada@example.org>, <bob@example.org>" in logged


def test_file_transport_writes_one_eml_per_message(tmp_path: Path) -> None:
    home = Home.resolve(tmp_path)
    config = load(home, environ={}, flags={"mail.enabled": "true", "mail.transport": "file"})
    with build_transport(config.settings, home) as transport:
        transport.send(ENVELOPE, RAW)
        transport.send(ENVELOPE, RAW.replace(b"Welcome aboard", b"Second"))
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Subject"] == "Welcome aboard"
    assert parsed.get_all("X-Postroom-Envelope-To") == ["<ada@example.org>", "<bob@example.org>"]
    assert not list((tmp_path / "mail").glob("*.part"))


def test_memory_transport_keeps_messages_for_tests(tmp_path: Path) -> None:
    MemoryTransport.clear()
    home = Home.resolve(tmp_path)
    config = load(home, environ={}, flags={"mail.enabled": "true", "mail.transport": "memory"})
    with build_transport(config.settings, home) as transport:
        transport.send(ENVELOPE, RAW)
    assert len(MemoryTransport.outbox) == 1
    assert MemoryTransport.outbox[0].message["Subject"] == "Welcome aboard"
    MemoryTransport.clear()


def test_custom_transport_by_dotted_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "data" / "custom_transport"))
    cls = transport_class("shouting_transport:ShoutingTransport")
    home = Home.resolve(tmp_path)
    transport = cls(load(home, environ={}).settings, home=home)
    result = transport.send(ENVELOPE, RAW)
    assert [r.reply for r in result.recipients] == ["SHOUTED", "SHOUTED"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("no_such_module_anywhere:Transport", "cannot import no_such_module_anywhere"),
        ("postroom.errors:PostroomError", "is not a postroom Transport class"),
    ],
)
def test_a_custom_transport_that_does_not_load_is_a_configuration_fault(
    name: str, expected: str
) -> None:
    with pytest.raises(TransportLoadError, match=expected):
        transport_class(name)


def test_a_custom_transport_gives_verdicts_without_smtp_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "data" / "custom_transport"))
    flags = {"mail.enabled": "true", "mail.transport": "verdict_transport:VerdictTransport"}
    with Postroom(tmp_path, settings=flags) as postroom:
        pk = postroom.send(
            to=["ada@example.org", "bounce@example.org", "later@example.org"],
            subject="s",
            text="t",
        )
        started = time.time()
        Worker(postroom.config, postroom.outbox, concurrency=1).run(once=True)
        detail = get_message(postroom.engine, pk)
    assert detail is not None
    assert {r.address: (r.status, r.code, r.reply) for r in detail.summary.recipients} == {
        "ada@example.org": ("sent", None, "provider: 'queued id=42'"),
        "bounce@example.org": ("failed", None, "provider: 'invalid mailbox'"),
        "later@example.org": ("deferred", None, "provider: 'rate limited'"),
    }
    assert detail.summary.status == "deferred"
    assert detail.summary.next_attempt_at is not None
    assert detail.summary.next_attempt_at >= started + 900  # the provider's wait, honoured
