"""A custom transport shaped like an HTTP mail provider: it has no SMTP reply codes,
only its own answers, so it gives each recipient a verdict and keeps the answer as
detail (as mail.transport=module:Class would, for a provider postroom does not ship)."""

from postroom.message import Envelope
from postroom.transport import RecipientResult, SendResult, Transport


class VerdictTransport(Transport):
    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        results = []
        for r in envelope.recipients:
            if r.startswith("bounce"):
                results.append(RecipientResult(r, None, "provider: 'invalid mailbox'", "permanent"))
            elif r.startswith("later"):
                answer = "provider: 'rate limited'"
                results.append(RecipientResult(r, None, answer, "temporary", retry_after=900))
            else:
                results.append(RecipientResult(r, None, "provider: 'queued id=42'", "sent"))
        return SendResult(tuple(results))
