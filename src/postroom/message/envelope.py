"""The SMTP envelope: who the transport says the message is from and for."""

from __future__ import annotations

from dataclasses import dataclass

from postroom.headers import check_envelope_text


@dataclass(frozen=True, slots=True)
class Envelope:
    """MAIL FROM and RCPT TO of one message.

    ``sender`` may be empty (the null reverse-path ``<>``). ``smtputf8`` is true when an
    address has a non-ASCII local part, so the server must offer SMTPUTF8.
    """

    sender: str
    recipients: tuple[str, ...]
    smtputf8: bool = False

    def __post_init__(self) -> None:
        if self.sender:
            check_envelope_text("envelope sender", self.sender)
        if not self.recipients:
            raise ValueError("an envelope needs at least one recipient")
        for recipient in self.recipients:
            check_envelope_text("envelope recipient", recipient)
