"""A custom transport as a host application would write one (mail.transport=module:Class)."""

from postroom.message import Envelope
from postroom.transport import RecipientResult, SendResult, Transport


class ShoutingTransport(Transport):
    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        return SendResult(tuple(RecipientResult(r, 250, "SHOUTED") for r in envelope.recipients))
