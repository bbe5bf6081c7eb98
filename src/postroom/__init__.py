"""Postroom: the mail subsystem of a server application, done once.

``from postroom import Postroom``; ``Postroom().send(to=..., subject=..., text=...)``
commits a message to the durable outbox and returns its id; ``Postroom().users`` is the
directory (``upsert``, ``sync``), ``Postroom().broadcast(...)`` mails every user, and
``Postroom().emit(type, actor=..., data=...)`` turns an event into notification mail.
"""

from postroom.app import Postroom
from postroom.broadcast import BroadcastReport
from postroom.errors import (
    AddressError,
    BroadcastError,
    ConfigError,
    DirectoryError,
    EventError,
    HeaderError,
    MessageError,
    MessageTooLargeError,
    PostroomError,
    TransportError,
    UserImportError,
)
from postroom.message import Attachment
from postroom.notify import EmitResult
from postroom.users import User

__all__ = [
    "AddressError",
    "Attachment",
    "BroadcastError",
    "BroadcastReport",
    "ConfigError",
    "DirectoryError",
    "EmitResult",
    "EventError",
    "HeaderError",
    "MessageError",
    "MessageTooLargeError",
    "Postroom",
    "PostroomError",
    "TransportError",
    "User",
    "UserImportError",
]
__version__ = "0.1.0"
