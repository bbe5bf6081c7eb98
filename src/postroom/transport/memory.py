"""The memory transport: keeps messages in a list, for tests of host applications."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import ClassVar

from postroom.message.envelope import Envelope
from postroom.transport.base import SendResult, Transport, accept_all


@dataclass(frozen=True, slots=True)
class StoredMail:
    envelope: Envelope
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


class MemoryTransport(Transport):
    """Every instance appends to the class-wide ``outbox``; clear it between tests."""

    outbox: ClassVar[list[StoredMail]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        with self._lock:
            self.outbox.append(StoredMail(envelope, data))
        return accept_all(envelope, "kept in memory")

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls.outbox.clear()
