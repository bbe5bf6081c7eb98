"""What a caller asks to send: plain values, checked and encoded only by compose."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from postroom.errors import MessageError

# RFC 2045 type/subtype: tokens of printable ASCII without tspecials.
_MIME_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE = re.compile(rf"{_MIME_NAME}/{_MIME_NAME}")
_PATH_SEPARATORS = re.compile(r"[/\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Control, format (bidi overrides that disguise an extension), surrogate, separators.
# '"<>' as well: Windows refuses them, and a reader unwraps a name in quotes or <>.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_MAX_FILENAME = 200


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message.

    ``filename`` is reduced to a safe base name when the message is composed, so a
    path or control characters from the caller never reach the recipient.
    """

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        if not _CONTENT_TYPE.fullmatch(self.content_type):
            raise MessageError(
                f"attachment {self.filename!r} has content type {self.content_type!r}; "
                "give it as type/subtype, e.g. application/pdf"
            )

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0].lower()

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2].lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    """One message as asked for, before composing.

    Addresses are ``addr`` or ``Name <addr>``. ``bcc`` recipients get the message but
    appear in no header. ``actor_name`` is the full name of the user whose action
    caused the mail (it shows in From). ``thread_id`` is a stable id of the object the
    mail is about, so that all mail about it shares a thread. ``message_id`` is given
    once, at enqueue; compose makes one when it is absent. ``from_`` overrides
    mail.from (error reports use mail.error_from).
    """

    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    type: str = "message"
    # Not hashed: a mapping is not hashable, and the message is still a value.
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    actor_name: str | None = None
    # Auto-Submitted: auto-generated (RFC 3834): notifications, reports, broadcasts;
    # not a message a person asked to send.
    automatic: bool = False
    reply_to: tuple[str, ...] = ()
    thread_id: str | None = None
    message_id: str | None = None
    from_: str | None = None

    def __post_init__(self) -> None:
        # Copy, so the caller's dict cannot change a message already made.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))


def safe_filename(name: str) -> str:
    """Reduce an attachment's file name to a safe base name.

    Directories (``/`` and Windows ``\\``), drive letters, ``..``, ``"<>``, control
    and format characters and leading dots go; what is left empty becomes ``attachment``.
    """
    kept = "".join(
        c for c in name if c not in '"<>' and unicodedata.category(c) not in _UNSAFE_CATEGORIES
    )
    parts = [part for part in _PATH_SEPARATORS.split(_DRIVE.sub("", kept)) if part.strip(". ")]
    base = parts[-1].strip().lstrip(".").strip() if parts else ""
    if len(base) > _MAX_FILENAME:
        stem, dot, extension = base.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            base = f"{stem[: _MAX_FILENAME - len(extension) - 1]}.{extension}"
        else:
            base = base[:_MAX_FILENAME].rstrip()  # a cut may end in a space, which readers drop
    return base or "attachment"
