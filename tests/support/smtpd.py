"""Real SMTP servers for tests: aiosmtpd in a thread on 127.0.0.1, on a free port.

``start_server`` gives a plain, STARTTLS, implicit-TLS or login-requiring server whose
:class:`Recorder` handler keeps every envelope and message and answers recipients and
DATA as scripted (``{"*@later.example": "451 4.3.0 try later"}``; the reply ``"drop"``
closes the connection instead). ``silent_server`` accepts connections and never greets.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import hmac
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

LOOPBACK = "127.0.0.1"


@dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    peer: Any
    received_at: float = field(default_factory=time.time)


@dataclass
class Recorder:
    """aiosmtpd handler: records everything, answers as scripted.

    ``rcpt_replies`` and ``data_replies`` map shell-style address patterns to a reply
    (or ``"drop"``); for DATA the pattern is matched against the accepted recipients.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    pipelining: bool = True
    #: Answer DATA with 354 even when every RCPT was refused (as some servers do).
    open_data_anyway: bool = False
    messages: list[Received] = field(default_factory=list)
    ehlo_peers: list[Any] = field(default_factory=list)
    ehlo_names: list[str] = field(default_factory=list)
    mail_froms: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    cram_md5_user: str | None = None
    cram_md5_password: str | None = None
    #: Seconds the server takes over each RCPT (a slow or tarpitting server).
    rcpt_delay: float = 0.0

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlo_peers.append(session.peer)
        self.ehlo_names.append(hostname)
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mail_froms.append(address)
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpts.append(address)
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        reply = _scripted(self.rcpt_replies, [address])
        if reply == "drop":
            _drop(server)
            return "421 dropping"
        if reply is not None:
            if self.open_data_anyway:
                envelope.rcpt_tos.append(address)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any
    ) -> str:
        reply = _scripted(self.data_replies, envelope.rcpt_tos)
        if reply == "drop":
            _drop(server)
            return "421 dropping"
        if reply is not None:
            return reply
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.original_content or b"",
                mail_options=list(envelope.mail_options),
                peer=session.peer,
            )
        )
        return f"250 2.0.0 OK queued as {len(self.messages)}"

    async def auth_CRAM__MD5(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, args: list[str]
    ) -> AuthResult:
        challenge = b"<1896.697170952@postroom.test>"
        answer = await server.challenge_auth(challenge)
        if answer is MISSING or self.cram_md5_password is None:
            return AuthResult(success=False, handled=False)
        user, _, digest = bytes(answer).decode().partition(" ")
        expected = hmac.new(self.cram_md5_password.encode(), challenge, hashlib.md5).hexdigest()
        ok = hmac.compare_digest(digest, expected) and user == self.cram_md5_user
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    @property
    def connections(self) -> int:
        """Distinct client connections that said EHLO."""
        return len(set(self.ehlo_peers))


def _scripted(replies: dict[str, str], addresses: list[str]) -> str | None:
    for pattern, reply in replies.items():
        if any(fnmatch.fnmatchcase(a.lower(), pattern.lower()) for a in addresses):
            return reply
    return None


def _drop(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.abort()


@dataclass
class Authenticator:
    """Accepts one user and password; counts what it was asked."""

    username: str
    password: str
    attempts: list[str] = field(default_factory=list)
    #: The reply to a wrong login, e.g. Microsoft's "535 5.7.139 ... basic authentication
    #: is disabled"; None: aiosmtpd's own.
    refusal: str | None = None

    def __call__(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        self.attempts.append(mechanism)
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.username.encode()
            and data.password == self.password.encode()
        )
        if not ok and self.refusal is not None:
            return AuthResult(success=False, handled=False, message=self.refusal)
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


class _Controller(Controller):
    """A Controller on a socket bound beforehand, so port 0 gives a free port safely."""

    def __init__(self, handler: Any, *, listen: socket.socket, **kwargs: Any) -> None:
        self._listen = listen
        super().__init__(handler, hostname=LOOPBACK, port=listen.getsockname()[1], **kwargs)
        self._require_auth = bool(kwargs.get("auth_required"))
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        kwargs = dict(self.SMTP_kwargs)
        kwargs["auth_required"] = False  # set below: aiosmtpd warns about auth without TLS
        smtp = SMTP(self.handler, **kwargs)
        smtp._auth_required = self._require_auth
        self.sessions.append(smtp)
        return smtp

    def stop(self, no_assert: bool = False) -> None:
        """Close every client connection first: aiosmtpd leaves TLS ones open."""

        def abort_all() -> None:
            for smtp in self.sessions:
                if smtp.transport is not None:
                    smtp.transport.abort()

        self.loop.call_soon_threadsafe(abort_all)
        super().stop(no_assert)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(
            self._factory_invoker, sock=self._listen, ssl=self.ssl_context
        )


@dataclass
class SMTPServer:
    """A running test server: where it listens and what it recorded."""

    controller: Any
    handler: Recorder
    host: str
    port: int
    mode: str
    authenticator: Authenticator | None = None
    stopped: bool = False

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def settings_flags(self) -> dict[str, str]:
        """The ``mail.*`` settings that point a client at this server."""
        return {
            "mail.host": self.host,
            "mail.port": str(self.port),
            "mail.security": {"plain": "none"}.get(self.mode, self.mode),
        }

    def stop(self) -> None:
        """Stop listening and drop every connection; stopping twice is fine."""
        if not self.stopped:
            self.stopped = True
            self.controller.stop()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server TLS context with a certificate from ``ca`` for ``names``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost", LOOPBACK))).configure_cert(context)
    return context


def start_server(
    handler: Recorder | None = None,
    *,
    mode: str = "plain",
    tls_context: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    auth: tuple[str, str] | None = None,
    auth_required: bool = False,
    cram_md5: bool = False,
    smtputf8: bool = True,
    data_size_limit: int | None = 33554432,
    idle_timeout: float = 300,
) -> SMTPServer:
    """Start a server: ``mode`` is plain, starttls (needs ``tls_context``) or ssl."""
    handler = handler or Recorder()
    listen = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.bind((LOOPBACK, 0))
    listen.listen(64)
    kwargs: dict[str, Any] = {
        "enable_SMTPUTF8": smtputf8,
        "data_size_limit": data_size_limit,
        "server_hostname": "mx.postroom.test",
        "ready_timeout": 10.0,
        "timeout": idle_timeout,
    }
    authenticator = None
    if auth is not None:
        authenticator = Authenticator(*auth)
        kwargs.update(authenticator=authenticator, auth_required=auth_required)
        kwargs["auth_require_tls"] = False
        if cram_md5:
            handler.cram_md5_user, handler.cram_md5_password = auth
    if not cram_md5:
        kwargs["auth_exclude_mechanism"] = ["CRAM-MD5"]
    if mode == "starttls":
        assert tls_context is not None
        kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
    elif mode == "ssl":
        assert tls_context is not None
        kwargs["ssl_context"] = tls_context
    controller = _Controller(handler, listen=listen, **kwargs)
    controller.start()
    return SMTPServer(controller, handler, LOOPBACK, listen.getsockname()[1], mode, authenticator)


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[SMTPServer]:
    server = start_server(*args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


class SilentServer:
    """Accepts TCP connections (the kernel does, from the backlog) and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.host = LOOPBACK
        self.port: int = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class TricklingServer:
    """Answers every line it gets (and the greeting) with ``reply``, one byte every
    ``interval`` seconds: each read gets something, the whole reply takes long."""

    def __init__(self, *, greeting_fast: bool = False, interval: float = 0.2) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.host = LOOPBACK
        self.port: int = self.sock.getsockname()[1]
        self.greeting_fast = greeting_fast
        self.interval = interval
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket, data: bytes) -> None:
        for byte in data:
            if self.stopping.wait(self.interval):
                return
            conn.sendall(bytes([byte]))

    def _talk(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            greeting = b"220 trickle.example ESMTP ready and taking its time\r\n"
            if self.greeting_fast:
                conn.sendall(greeting)
            else:
                self._trickle(conn, greeting)
            while not self.stopping.is_set() and conn.recv(4096):
                self._trickle(conn, b"250-trickle.example at one byte a time\r\n250 OK\r\n")

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])
