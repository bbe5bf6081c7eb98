"""Transports: how a composed message leaves (DESIGN §1). Chosen by mail.transport."""

from __future__ import annotations

import importlib

from postroom.errors import TransportLoadError
from postroom.settings import Home, Settings
from postroom.transport.base import RecipientResult, SendResult, Transport
from postroom.transport.file import FileTransport
from postroom.transport.log import LogTransport
from postroom.transport.memory import MemoryTransport

__all__ = [
    "FileTransport",
    "LogTransport",
    "MemoryTransport",
    "RecipientResult",
    "SendResult",
    "Transport",
    "build_transport",
    "transport_class",
]


def transport_class(name: str) -> type[Transport]:
    """The class behind a mail.transport value; one that cannot be loaded is a
    TransportLoadError (a configuration fault: delivery pauses)."""
    if name == "smtp":
        from postroom.transport.smtp import SMTPTransport

        return SMTPTransport
    if name == "graph":
        from postroom.transport.graph import GraphTransport

        return GraphTransport
    if name == "capture":
        from postroom.transport.capture import CaptureTransport

        return CaptureTransport
    builtin: dict[str, type[Transport]] = {
        "log": LogTransport,
        "file": FileTransport,
        "memory": MemoryTransport,
    }
    if name in builtin:
        return builtin[name]
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TransportLoadError(
            f"mail.transport: cannot import {module_name} ({exc})",
            fix="install the package that provides it, or set mail.transport=smtp",
        ) from None
    found = getattr(module, class_name, None)
    if not (isinstance(found, type) and issubclass(found, Transport)):
        raise TransportLoadError(
            f"mail.transport: {name} is not a postroom Transport class",
            fix="point it at a subclass of postroom.transport.Transport",
        )
    return found


def build_transport(settings: Settings, home: Home) -> Transport:
    """The transport mail goes through: the log transport while mail.enabled is false."""
    name = settings.mail.transport if settings.mail.enabled else "log"
    return transport_class(name)(settings, home=home)
