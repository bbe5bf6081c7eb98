"""Every error postroom raises, in one tree.

::

    PostroomError
    ├── ConfigError                  a setting is unknown or has a bad value (key, fix)
    │   └── ConfigImportError        a peer's configuration file cannot be mapped (path, line)
    ├── MessageError                 a message cannot be composed as asked
    │   ├── EventError               an event cannot be emitted: unknown type, bad field (field)
    │   ├── AddressError             an address is malformed (address)
    │   ├── HeaderError              a header is refused: CR/LF/NUL, encoded newline, not allowed
    │   └── MessageTooLargeError     over mail.max_size (size, limit)
    ├── DirectoryError               a user or group is unknown, taken, or given a bad value (names)
    │   ├── NotFoundError            no user or group of that name or id
    │   ├── NameTakenError           a user or group of that name exists already
    │   └── UserImportError          rows of a user import are refused (problems: line, text)
    ├── BroadcastError               a broadcast cannot be made as asked (no recipients, blank body)
    ├── TokenError                   an API token name is taken, unknown or not allowed; an
    │                                unsubscribe link is altered or expired
    ├── ListenError                  a server cannot listen on its address (in use, refused)
    ├── StorageError                 the home folder or the database cannot be used (path, fix)
    └── TransportError               delivery through a transport failed
        ├── ConnectError             resolve / TCP connect failed or timed out (host, port)
        ├── ServerDisconnected       the peer closed the connection mid-conversation
        ├── TransportTimeout         a network step took longer than mail.timeout (step)
        ├── SMTPReplyError           the server answered with an unexpected code (code, reply)
        ├── SMTPUTF8Required         a non-ASCII address met a server without SMTPUTF8
        └── TransportConfigError     cannot work as configured (not the message's fault)
            ├── SMTPProtocolError    the server's answer is not SMTP (wrong port, TLS expected)
            ├── TLSError             the TLS handshake failed or STARTTLS is not offered
            │   └── CertificateError the certificate is not trusted or names another host
            ├── AuthenticationError  the server refused the login (code, reply)
            └── TransportLoadError   mail.transport names a class that cannot be loaded

A user-facing error prints as one line that names the thing and the fix. Whether a
failure is temporary (retry later) or permanent is decided here and nowhere else: from a
reply code by :func:`verdict_of_code`, from an error's data by :func:`is_temporary`.
"""

from __future__ import annotations

from typing import Literal

#: Exit status of every command (DESIGN §4): success, a failure of the work, bad input.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class PostroomError(Exception):
    """Base of every error postroom raises on purpose."""


# -- settings ---------------------------------------------------------------------------


class ConfigError(PostroomError):
    """A setting is unknown or holds a value it cannot take."""

    def __init__(self, message: str, *, key: str | None = None, fix: str | None = None) -> None:
        self.key = key
        self.fix = fix
        super().__init__(message if fix is None else f"{message}; {fix}")


class ConfigImportError(ConfigError):
    """A peer's configuration file cannot be read or mapped."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")


# -- messages ---------------------------------------------------------------------------


class MessageError(PostroomError):
    """A message cannot be composed as asked."""


class EventError(MessageError):
    """An event that cannot be emitted: unknown type, or a payload with a bad field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AddressError(MessageError):
    """An e-mail address is malformed or not allowed."""

    def __init__(self, message: str, *, address: str) -> None:
        self.address = address
        super().__init__(message)


class HeaderError(MessageError):
    """A header name or value is refused (line breaks, NUL, not on the allow-list)."""

    def __init__(self, message: str, *, header: str) -> None:
        self.header = header
        super().__init__(message)


class MessageTooLargeError(MessageError):
    """The composed message is larger than mail.max_size."""

    def __init__(
        self,
        *,
        size: int,
        limit: int,
        what: str = "the mail.max_size limit",
        fix: str = "send a smaller message or raise mail.max_size",
    ) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message is {size:,} bytes, over {what} of {limit:,} bytes; {fix}")


# -- directory and broadcasts ----------------------------------------------------------


class DirectoryError(PostroomError):
    """A user or group is unknown or taken, or a value given for one is refused."""

    def __init__(self, message: str, *, names: tuple[str, ...] = ()) -> None:
        self.names = names
        super().__init__(message)


class NotFoundError(DirectoryError):
    """No user or group goes by the name or id given."""


class NameTakenError(DirectoryError):
    """A user or group of that name exists already."""


class UserImportError(DirectoryError):
    """A user import has bad rows; nothing of it was stored."""

    def __init__(self, message: str, *, problems: tuple[tuple[int, str], ...]) -> None:
        self.problems = problems  # (line number, what is wrong with the row)
        super().__init__(message)


class BroadcastError(PostroomError):
    """A broadcast cannot be made as asked: no recipients, blank subject or body."""


class TokenError(PostroomError):
    """An API token cannot be made or found as asked (name taken, unknown, bad scope)."""


class StorageError(PostroomError):
    """The home folder or the database cannot be read or written: read-only, full,
    missing, unreachable or locked. Not the input's fault: the environment's."""

    def __init__(self, message: str, *, fix: str) -> None:
        self.fix = fix
        super().__init__(f"{message}; {fix}")


def storage_error(exc: OSError, *, doing: str) -> StorageError:
    """One line for an OSError met while ``doing`` something with a file or folder."""
    import errno

    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    fixes = {
        errno.ENOSPC: "free some disk space (nothing was half-written)",
        errno.EROFS: "the file system is read-only: choose a writable home with --home "
        "or POSTROOM_HOME",
        errno.EACCES: "check the permissions, or choose another home with --home or POSTROOM_HOME",
        errno.EPERM: "check the permissions, or choose another home with --home or POSTROOM_HOME",
        errno.ENOTDIR: "part of the path is a file, not a folder: choose another home "
        "with --home or POSTROOM_HOME",
        errno.ENOENT: "check that the folder exists, or choose another home",
    }
    fix = fixes.get(exc.errno or 0, "check the path and its permissions")
    return StorageError(f"cannot {doing}{where}: {reason}", fix=fix)


class ListenError(PostroomError):
    """A server (the service, the capture server) cannot listen on its address."""

    def __init__(self, message: str, *, address: str) -> None:
        self.address = address
        super().__init__(message)


# -- transports -------------------------------------------------------------------------


class TransportError(PostroomError):
    """Delivery through a transport failed."""

    #: SMTP reply code when the failure came from a server reply, else None.
    code: int | None = None
    reply: str = ""
    #: The likely fix, when the raiser knows one (also the end of the message);
    #: diagnostics show it apart from what went wrong.
    fix: str | None = None

    def split_fix(self) -> tuple[str, str | None]:
        """What went wrong, and the fix apart (the message ends with "; fix" when known)."""
        text = str(self)
        if self.fix and text.endswith("; " + self.fix):
            text = text[: -len(self.fix) - 2]
        return text, self.fix


class ConnectError(TransportError):
    """The server could not be resolved or reached."""

    def __init__(self, message: str, *, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(message)


class ServerDisconnected(TransportError):
    """The server closed the connection before the conversation was over."""


class TransportTimeout(TransportError):
    """A network step took longer than mail.timeout."""

    def __init__(self, message: str, *, step: str) -> None:
        self.step = step
        super().__init__(message)


class SMTPReplyError(TransportError):
    """The server answered a command with a code the client did not hope for."""

    def __init__(self, message: str, *, code: int, reply: str) -> None:
        self.code = code
        self.reply = reply
        super().__init__(message)


class SMTPUTF8Required(TransportError):
    """A message needs SMTPUTF8 (non-ASCII local part) and the server does not offer it."""


class TransportConfigError(TransportError):
    """The transport cannot work as configured; the message itself is not at fault.

    The worker pauses the transport and keeps messages queued, instead of failing them.
    """


class SMTPProtocolError(TransportConfigError):
    """The server answered with something that is not SMTP: a wrong port, or a server
    that expects TLS from the first byte."""


class TLSError(TransportConfigError):
    """The TLS handshake failed, or STARTTLS was configured but not offered."""


class CertificateError(TLSError):
    """The server's certificate is not trusted, or is for another host."""


class AuthenticationError(TransportConfigError):
    """The server refused the login."""

    def __init__(self, message: str, *, code: int | None = None, reply: str = "") -> None:
        self.code = code
        self.reply = reply
        super().__init__(message)


#: What one attempt means for one recipient, whatever the transport: taken (sent), worth
#: trying again later (temporary), or never (permanent). A configuration fault is not a
#: verdict on a recipient: it is raised as a TransportConfigError and pauses delivery.
Verdict = Literal["sent", "temporary", "permanent"]


def verdict_of_code(code: int | None) -> Verdict:
    """An SMTP reply code's verdict: 2xx sent, 4xx temporary, 5xx permanent. No code
    (a transport with replies of its own that gave no verdict) is temporary: retrying
    never loses mail."""
    if code is None or 400 <= code < 500:
        return "temporary"
    return "sent" if 200 <= code < 300 else "permanent"


def is_temporary_code(code: int) -> bool:
    """4xx replies are temporary: the same command may work later."""
    return verdict_of_code(code) == "temporary"


def is_temporary(error: BaseException) -> bool:
    """Whether delivery may succeed if tried again later, judged from the error's data.

    Connection trouble, timeouts, dropped connections and 4xx replies are temporary;
    5xx replies and message faults are permanent. Configuration faults (login, TLS) are
    temporary for the message: the admin fixes the configuration and the mail goes out.
    """
    if isinstance(error, TransportConfigError):
        return True
    if isinstance(error, SMTPReplyError) and error.code is not None:
        return is_temporary_code(error.code)
    if isinstance(error, SMTPUTF8Required | MessageError):
        return False
    return bool(isinstance(error, TransportError | OSError))


class TransportLoadError(TransportConfigError):
    """mail.transport names a module or class that cannot be loaded here: delivery
    pauses (mail stays queued) until it is installed or the setting changed."""

    def __init__(self, message: str, *, fix: str) -> None:
        self.fix = fix
        super().__init__(f"{message}; {fix}")
