"""Postroom: the mail subsystem of a server application, done once.

``from postroom import Postroom``; ``Postroom().send(to=..., subject=..., text=...)``
commits a message to the durable outbox and returns its id; ``Postroom().users`` is the
directory (``upsert``, ``sync``), ``Postroom().broadcast(...)`` mails every user, and
``Postroom().emit(type, actor=..., data=...)`` turns an event into notification mail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom._lazy import lazy_exports
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

if TYPE_CHECKING:
    from postroom.app import Postroom
    from postroom.broadcast import BroadcastReport
    from postroom.message import Attachment
    from postroom.notify import EmitResult
    from postroom.users import User

#: Imported on first use: ``import postroom`` (and every CLI command, which imports
#: this package first) should not pay for SQLAlchemy and the notifier.
__getattr__ = lazy_exports(
    __name__,
    {
        "Attachment": "postroom.message",
        "BroadcastReport": "postroom.broadcast",
        "EmitResult": "postroom.notify",
        "Postroom": "postroom.app",
        "User": "postroom.users",
    },
)

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
