"""The transport interface: open, send many messages, close.

A transport is built from the settings and the home folder, opened once, then carries
many messages (an SMTP transport reuses one connection). ``send`` reports a result per
recipient, because a server may accept some recipients and refuse others. Errors that
end the whole attempt (connection refused, dropped, timed out, login or TLS refused)
are raised as :class:`postroom.errors.TransportError` subclasses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Literal, Self

from postroom.errors import Verdict, verdict_of_code
from postroom.message.envelope import Envelope
from postroom.settings import Home, Settings

Outcome = Literal["sent", "logged", "recorded"]


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What one attempt meant for one recipient.

    Over SMTP ``code`` is its RCPT reply, or the DATA reply once RCPT was accepted (a
    250 here means the server took responsibility for the mail), and the verdict
    follows from it. A transport that does not speak SMTP (Graph, an HTTP provider)
    gives ``code=None`` and its own ``verdict``, with its reply in ``reply`` as detail;
    ``retry_after`` is the earliest sensible retry it was told (HTTP Retry-After).
    """

    recipient: str
    code: int | None
    reply: str
    given_verdict: Verdict | None = None
    retry_after: float | None = None

    @property
    def verdict(self) -> Verdict:
        return self.given_verdict or verdict_of_code(self.code)

    @property
    def accepted(self) -> bool:
        return self.verdict == "sent"

    @property
    def temporary(self) -> bool:
        return self.verdict == "temporary"

    @property
    def permanent(self) -> bool:
        return self.verdict == "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    recipients: tuple[RecipientResult, ...]

    @property
    def all_accepted(self) -> bool:
        return all(r.accepted for r in self.recipients)


class Transport(ABC):
    """Base of every transport; see the module docstring for the contract."""

    #: What a successful send means for the message: delivered, only logged, or recorded.
    outcome: ClassVar[Outcome] = "sent"

    def __init__(self, settings: Settings, *, home: Home) -> None:
        self.settings = settings
        self.home = home

    def open(self) -> None:  # noqa: B027 - optional hook, most transports need no set-up
        """Prepare to send (connect, log in). Raises TransportError."""

    @abstractmethod
    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        """Send one message (``data``: the whole message, CRLF line ends)."""

    def send_many(self, items: Iterable[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
        """Send messages one after another, yielding each result in order.

        Transports that can do better (SMTP pipelining: one round trip a message)
        override this. On an error, messages without a result were not confirmed.
        """
        for envelope, data in items:
            yield self.send(envelope, data)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` took. Never raises."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def accept_all(envelope: Envelope, reply: str) -> SendResult:
    """The result of a transport that takes every recipient (log, file, memory)."""
    return SendResult(tuple(RecipientResult(r, 250, reply) for r in envelope.recipients))
