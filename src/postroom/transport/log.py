"""The log transport: the whole message goes to the log, nothing is delivered.

This is where mail goes while mail.enabled is false (what Kallithea does when no SMTP
server is set), so an admin can still read every message that would have been sent.
"""

from __future__ import annotations

import logging

from postroom.message.envelope import Envelope
from postroom.transport.base import SendResult, Transport, accept_all

logger = logging.getLogger("postroom.mail")


class LogTransport(Transport):
    outcome = "logged"

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        text = data.decode("utf-8", "replace").replace("\r\n", "\n")
        logger.info(
            "mail not delivered (logged only): from <%s> to %s\n%s",
            envelope.sender,
            ", ".join(f"<{r}>" for r in envelope.recipients),
            text,
        )
        return accept_all(envelope, "logged, not delivered")
