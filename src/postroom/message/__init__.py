"""Messages: the model, composing to MIME bytes, and the SMTP envelope."""

from postroom.message.compose import ComposedMessage, ComposePolicy, compose
from postroom.message.envelope import Envelope
from postroom.message.model import Attachment, OutgoingMessage, safe_filename

__all__ = [
    "Attachment",
    "ComposePolicy",
    "ComposedMessage",
    "Envelope",
    "OutgoingMessage",
    "compose",
    "safe_filename",
]
