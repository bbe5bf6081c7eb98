"""The runtime: delivery woken by new mail (in this process, and on PostgreSQL from
any other), settings changed while running, and the recording-mode switch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from tests.support.cli import run_postroom
from tests.support.pg import throwaway_engine
from tests.support.smtpd import SMTPServer
from tests.support.waiting import wait_until

from postroom.runtime import Runtime
from postroom.settings import Home, load, update_file
from postroom.settings.configfile import read_config_file
from postroom.store.capture_queries import list_captured

#: A poll so long that mail delivered within a test's timeout was woken, not polled.
ASLEEP = "600"


def settings_for(server: SMTPServer, **more: str) -> dict[str, str]:
    return {
        "mail.enabled": "true",
        "mail.host": server.host,
        "mail.port": str(server.port),
        "delivery.poll_interval": ASLEEP,
        **more,
    }


@pytest.fixture
def runtime(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Runtime]:
    flags = settings_for(smtp_server)
    with Runtime(load(Home.resolve(tmp_path), flags=flags, environ={}), flags=flags) as running:
        yield running


def test_mail_enqueued_in_this_process_wakes_the_idle_worker(
    runtime: Runtime, smtp_server: SMTPServer
) -> None:
    runtime.start_delivery(concurrency=2)
    for number in range(3):
        runtime.postroom.send(to=f"u{number}@example.org", subject="s", text="t")
        wait_until(lambda n=number: len(smtp_server.messages) == n + 1, timeout=20)
    stats = runtime.stop_delivery()
    assert stats is not None
    assert stats.sent == 3


def test_a_retry_or_release_wakes_it_too(runtime: Runtime, smtp_server: SMTPServer) -> None:
    held = runtime.postroom.send(to="ada@example.org", subject="s", text="t", held=True)
    runtime.start_delivery(concurrency=1)
    assert runtime.postroom.outbox.release_held(held)
    wait_until(lambda: smtp_server.messages, timeout=20)


def test_settings_changed_while_running_apply_to_the_next_message(
    tmp_path: Path, smtp_server: SMTPServer, make_smtp_server: Callable[..., SMTPServer]
) -> None:
    other = make_smtp_server()
    home = Home.resolve(tmp_path)
    update_file(home, set_values=settings_for(smtp_server), environ={})
    with Runtime(load(home, environ={})) as runtime:
        _deliver_then_switch(runtime, smtp_server, other)


def _deliver_then_switch(runtime: Runtime, smtp_server: SMTPServer, other: SMTPServer) -> None:
    runtime.start_delivery(concurrency=1)
    runtime.postroom.send(to="first@example.org", subject="s", text="t")
    wait_until(lambda: smtp_server.messages, timeout=20)
    runtime.update_settings(
        set_values={"mail.port": str(other.port), "mail.subject_prefix": "[lab]"}
    )
    assert read_config_file(runtime.config.home.config_file)["mail.port"] == other.port
    runtime.postroom.send(to="second@example.org", subject="s", text="t")
    wait_until(lambda: other.messages, timeout=20)
    assert b"Subject: [lab] s" in other.messages[0].content
    assert len(smtp_server.messages) == 1


def test_the_recording_switch_writes_the_file_or_only_this_runs_flags(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    home = Home.resolve(tmp_path / "plain")
    with Runtime(load(home, environ={})) as runtime:
        assert runtime.set_recording(True) is None
        assert read_config_file(home.config_file)["mail.transport"] == "capture"
        runtime.postroom.send(to="ada@example.org", subject="kept", text="t")
        runtime.start_delivery(concurrency=1)
        wait_until(lambda: list_captured(runtime.postroom.engine), timeout=20)
        assert runtime.set_recording(False) is None
        assert read_config_file(home.config_file)["mail.transport"] == "smtp"
    caught = Home.resolve(tmp_path / "catch")
    flags = {"mail.enabled": "true", "mail.transport": "capture"}
    with Runtime(load(caught, flags=flags, environ={}), flags=flags) as runtime:
        assert runtime.set_recording(False) is None
        assert runtime.config.settings.mail.transport == "smtp"
        assert not caught.config_file.exists()
    env_home = Home.resolve(tmp_path / "env")
    with Runtime(load(env_home, environ={"POSTROOM_MAIL_TRANSPORT": "capture"})) as runtime:
        refusal = runtime.set_recording(False)
    assert refusal is not None
    assert "POSTROOM_MAIL_TRANSPORT" in refusal


def test_mail_sent_from_another_process_wakes_a_worker_on_postgresql(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    with throwaway_engine() as engine:
        url = engine.url.render_as_string(hide_password=False)
        database = engine.url.database
        env = {
            "POSTROOM_DATABASE_URL": url,
            "POSTROOM_MAIL_ENABLED": "true",
            "POSTROOM_MAIL_HOST": smtp_server.host,
            "POSTROOM_MAIL_PORT": str(smtp_server.port),
            "POSTROOM_DELIVERY_POLL_INTERVAL": ASLEEP,
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "postroom", "worker", "--concurrency", "1"],
            env={**_clean_env(), "POSTROOM_HOME": str(tmp_path), **env},
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: _listening(url, database), timeout=30)
            # The worker claimed once at start and now sleeps: only NOTIFY wakes it.
            sent = run_postroom(tmp_path, "send", "--to", "ada@example.org", "--subject",
                                "woken", "--text", "t", env=env)  # fmt: skip
            assert sent.code == 0, sent.output
            wait_until(lambda: smtp_server.messages, timeout=20)
        finally:
            worker.terminate()
            assert worker.wait(timeout=60) == 0
    assert b"Subject: woken" in smtp_server.messages[0].content


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}


def _listening(url: str, database: str | None) -> bool:
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (database,),
        ).fetchone()
    return bool(found and found[0])
