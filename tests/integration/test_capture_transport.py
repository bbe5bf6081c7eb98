"""Recording mode: mail.transport=capture keeps outgoing mail in the mail record."""

from __future__ import annotations

from pathlib import Path

from postroom import Postroom
from postroom.delivery.worker import Worker
from postroom.store.capture_queries import list_captured
from postroom.store.queries import get_message
from postroom.transport import transport_class
from postroom.transport.capture import CaptureTransport

RECORDING = {"mail.enabled": "true", "mail.transport": "capture"}


def test_capture_is_a_built_in_transport() -> None:
    assert transport_class("capture") is CaptureTransport
    assert CaptureTransport.outcome == "recorded"


def test_outgoing_mail_is_recorded_not_delivered(tmp_path: Path) -> None:
    with Postroom(tmp_path, settings=RECORDING) as postroom:
        first = postroom.send(
            to="ada@example.org", bcc="audit@example.org", subject="One", text="1"
        )
        second = postroom.send(to="bob@example.org", subject="Two", text="2")
        stats = Worker(postroom.config, postroom.outbox, concurrency=2).run(once=True)
        assert stats.sent == 2
        summaries = [get_message(postroom.engine, pk) for pk in (first, second)]
        kept = list_captured(postroom.engine, oldest_first=True)
    for detail in summaries:
        assert detail is not None
        assert (detail.summary.status, detail.summary.outcome) == ("sent", "recorded")
        assert not detail.summary.delivered
    assert [(m.subject, m.source) for m in kept] == [("One", "transport"), ("Two", "transport")]
    assert kept[0].rcpt_tos == ("ada@example.org", "audit@example.org")  # bcc in the envelope
    assert kept[0].mail_from == "postroom@localhost"


def test_recording_mode_keeps_only_the_newest_max_messages(tmp_path: Path) -> None:
    settings = {**RECORDING, "capture.max_messages": "3"}
    with Postroom(tmp_path, settings=settings) as postroom:
        postroom.send_many(
            [{"to": "a@example.org", "subject": f"s{i}", "text": "t"} for i in range(5)]
        )
        Worker(postroom.config, postroom.outbox, concurrency=1).run(once=True)
        kept = list_captured(postroom.engine, oldest_first=True)
    assert [m.subject for m in kept] == ["s2", "s3", "s4"]
