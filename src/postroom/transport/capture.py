"""The capture transport (recording mode): outgoing mail goes into the mail record.

``mail.transport = capture`` keeps every message, with its envelope, in the same record
``postroom catch`` fills, instead of delivering it (LabKey's "Record email messages
sent"). A message is "sent" with the outcome ``recorded``: listings, test-email and the
worker all say that it was not delivered. Each batch the worker hands over is
committed in one transaction before any result is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from postroom.message.envelope import Envelope
from postroom.store.capture import CaptureStore, NewCapture
from postroom.store.engine import url_for
from postroom.store.migrate import open_database
from postroom.store.schema import SOURCE_TRANSPORT
from postroom.transport.base import SendResult, Transport, accept_all

BATCH = 100
REPLY = "recorded in the mail record, not delivered"


class CaptureTransport(Transport):
    outcome = "recorded"

    _store: CaptureStore | None = None

    def open(self) -> None:
        if self._store is not None:
            return
        self._store = CaptureStore(
            open_database(url_for(self.settings, self.home)),
            max_bytes=self.settings.capture.max_bytes,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.engine.dispose()
            self._store = None

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        return next(self.send_many([(envelope, data)]))

    def send_many(self, items: Iterable[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
        self.open()
        assert self._store is not None
        max_messages = self.settings.capture.max_messages
        pending = iter(items)
        while batch := list(islice(pending, BATCH)):
            self._store.insert([_record(e, d) for e, d in batch], max_messages=max_messages)
            for envelope, _data in batch:
                yield accept_all(envelope, REPLY)


def _record(envelope: Envelope, data: bytes) -> NewCapture:
    return NewCapture(
        mail_from=envelope.sender,
        rcpt_tos=tuple(envelope.recipients),
        raw=data,
        source=SOURCE_TRANSPORT,
    )
