"""The SMTP transport: mail through the server in mail.host, over one reused connection."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from postroom.errors import ServerDisconnected
from postroom.message.envelope import Envelope
from postroom.settings import Home, Settings
from postroom.transport.base import SendResult, Transport
from postroom.transport.smtp_client import SMTPClient, Transcript

#: After this long without a message, check that the server has not hung up before
#: reusing the connection (servers drop idle clients, often after saying 421).
IDLE_CHECK_SECONDS = 1.0


class SMTPTransport(Transport):
    """Sends through :class:`SMTPClient`; one connection carries many messages.

    ``open`` connects, secures and logs in; ``send`` reconnects when the server closed
    the connection between messages; ``close`` says QUIT and never raises. Not
    thread-safe: one transport per delivery thread.
    """

    def __init__(
        self, settings: Settings, *, home: Home, transcript: Transcript | None = None
    ) -> None:
        super().__init__(settings, home=home)
        self.client = SMTPClient.from_settings(settings.mail, transcript=transcript)
        self._last_used = 0.0

    def open(self) -> None:
        if not self.client.is_open:
            self.client.open()
        self._last_used = time.monotonic()

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        client = self.client
        reused = client.is_open and self._fresh_enough()
        if not reused:
            client.open()
        try:
            result = client.send(envelope, data)
        except ServerDisconnected:
            # A reused connection may have been closed by the server just before we
            # wrote; until the end of the data is sent the server cannot have taken the
            # message, so sending it once more on a fresh connection is safe.
            if not reused or client.end_of_data_sent:
                raise
            client.open()
            result = client.send(envelope, data)
        self._last_used = time.monotonic()
        return result

    def send_many(self, items: Iterable[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
        """Send messages back to back on one connection, one round trip each when the
        server pipelines; results come in order. Stops at the first connection failure
        (raised): messages without a result were not confirmed."""
        client = self.client
        if not (client.is_open and self._fresh_enough()):
            client.open()
        try:
            yield from client.send_many(items)
        finally:  # what the idle check counts from (results come back to back)
            self._last_used = time.monotonic()

    def _fresh_enough(self) -> bool:
        idle = time.monotonic() - self._last_used
        return idle <= IDLE_CHECK_SECONDS or self.client.still_open()

    def close(self) -> None:
        self.client.quit()
