"""The capture SMTP server: aiosmtpd, keeping every message in the mail record.

It never relays: a message it accepts goes into the mail record and nowhere else. A
session answers 250 only once the message is committed (see
:mod:`postroom.capture.writer`). Limits come from capture.*: SIZE announced and
enforced (552), recipients per message (452), aiosmtpd's command line limit (500),
an idle timeout, and concurrent sessions (421). Command lines must end in CRLF: a
bare CR or LF in a command is refused, and plaintext pipelined after STARTTLS is
thrown away (aiosmtpd), so nothing can be smuggled past the parser (each session is a
:class:`~postroom.capture.session.CaptureSMTP`).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from postroom.capture.faults import FaultScript
from postroom.capture.session import CaptureSMTP, SessionTables, abort
from postroom.capture.writer import RecordWriter
from postroom.errors import ConfigError
from postroom.settings.glossary import CaptureSettings
from postroom.store.capture import CaptureStore, NewCapture
from postroom.store.schema import SOURCE_SMTP

logger = logging.getLogger("postroom.capture")

IDENT = "postroom catch (keeps mail, never relays)"
BUSY_REPLY = b"421 4.7.0 Too many connections to the capture server, try again later\r\n"
TOO_MANY_RECIPIENTS = "452 4.5.3 Error: too many recipients"


@dataclass(frozen=True)
class CaptureOptions:
    """What a capture server enforces and offers, from the capture.* settings."""

    max_size: int = 25_000_000
    max_recipients: int = 1000
    max_sessions: int = 100
    idle_timeout: float = 300.0
    max_messages: int | None = 10_000
    auth: bool = False
    tls_context: ssl.SSLContext | None = None
    hostname: str = "localhost"

    @classmethod
    def from_settings(cls, capture: CaptureSettings) -> CaptureOptions:
        """Raises ConfigError when the STARTTLS files are missing or do not load."""
        return cls(
            max_size=capture.max_size,
            max_recipients=capture.max_recipients,
            max_sessions=capture.max_sessions,
            idle_timeout=capture.idle_timeout,
            max_messages=capture.max_messages,
            auth=capture.auth,
            tls_context=tls_context(capture.tls_cert, capture.tls_key),
            hostname=socket.gethostname() or "localhost",
        )


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    """A server context for STARTTLS, or None when no certificate is set."""
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "capture.tls_cert" if not cert else "capture.tls_key"
        raise ConfigError(
            f"{missing} is empty but the other half of the pair is set",
            key=missing,
            fix="set both capture.tls_cert and capture.tls_key, or neither",
        )
    for key_name, path in (("capture.tls_cert", cert), ("capture.tls_key", key)):
        if not Path(path).is_file():
            raise ConfigError(
                f"{key_name} {path} does not exist", key=key_name, fix="give a PEM file's path"
            )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"capture.tls_cert/capture.tls_key cannot be loaded ({exc})",
            key="capture.tls_cert",
            fix="give a PEM certificate and its private key",
        ) from None
    return context


def _accept_any_login(
    server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    login = data.login if isinstance(data, LoginPassword) else data
    user = login.decode("utf-8", "replace") if isinstance(login, bytes) else str(login)
    return AuthResult(success=True, handled=False, auth_data=user)


def _answer(server: SMTP, reply: str) -> str:
    """A scripted reply; after a 421 the connection is closed, as the code says."""
    if reply.startswith("421") and server.transport is not None:
        # Runs after aiosmtpd has written the reply; close() sends it before closing.
        asyncio.get_running_loop().call_soon(server.transport.close)
    return reply


def _peer(peer: Any) -> str | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None if peer is None else str(peer)


class CaptureHandler:
    """aiosmtpd hooks: recipients limit, scripted faults, and the hand-off to the writer."""

    def __init__(self, writer: RecordWriter, faults: FaultScript, options: CaptureOptions) -> None:
        self.writer = writer
        self.faults = faults
        self.options = options

    async def handle_EHLO(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if not self.options.auth:
            responses = [line for line in responses if not line[4:].startswith("AUTH")]
        # aiosmtpd reads pipelined commands one by one; say so, as real servers do.
        return [responses[0], "250-PIPELINING", *responses[1:]]

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.options.max_recipients:
            return TOO_MANY_RECIPIENTS
        if self.faults.rules and (rule := self.faults.at_rcpt(address)) is not None:
            return _answer(server, rule.reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Any, envelope: Any
    ) -> str:
        rule = self.faults.after_dot(envelope.rcpt_tos) if self.faults.rules else None
        if rule is not None and rule.action is None:
            return _answer(server, rule.reply)
        item = NewCapture(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=envelope.original_content or b"",
            source=SOURCE_SMTP,
            peer=_peer(session.peer),
            helo=session.host_name,
            tls=session.ssl is not None,
            auth_user=session.auth_data if session.authenticated else None,
        )
        try:
            pk = await self.writer.submit(item)
        except Exception as exc:
            return f"451 4.3.0 Error: could not store the message ({type(exc).__name__}); try later"
        if rule is not None:  # drop-after-dot: kept, but the client never hears so
            abort(server.transport)
            return "421 4.3.0 dropped"
        return f"250 2.0.0 OK: kept in the mail record as {pk}"


class _Busy(asyncio.Protocol):
    """What a connection past capture.max_sessions gets: 421, then the door."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(BUSY_REPLY)
        transport.close()


class CaptureService:
    """A capture server on the running loop: the sessions, the writer, the faults."""

    def __init__(
        self,
        store: CaptureStore,
        options: CaptureOptions,
        *,
        faults: FaultScript | None = None,
        on_commit: Callable[[list[int], list[NewCapture]], None] | None = None,
    ) -> None:
        self.options = options
        self.faults = faults or FaultScript()
        self.writer = RecordWriter(store, max_messages=options.max_messages, on_commit=on_commit)
        self.handler = CaptureHandler(self.writer, self.faults, options)
        self._tables = SessionTables.of(CaptureSMTP, self.handler)
        self._live: set[CaptureSMTP] = set()
        self._server: asyncio.Server | None = None

    @property
    def sessions(self) -> int:
        """Sessions open right now."""
        return len(self._live)

    def _factory(self) -> asyncio.BaseProtocol:
        if len(self._live) >= self.options.max_sessions:
            return _Busy()
        session = CaptureSMTP(
            self.handler,
            tables=self._tables,
            faults=self.faults,
            on_lost=lambda: self._live.discard(session),
            data_size_limit=self.options.max_size,
            hostname=self.options.hostname,
            ident=IDENT,
            tls_context=self.options.tls_context,
            timeout=self.options.idle_timeout,
            authenticator=_accept_any_login if self.options.auth else None,
            auth_require_tls=not self.options.auth,
        )
        self._live.add(session)
        return session

    async def start(self, sock: socket.socket) -> None:
        """Serve on ``sock``, a bound, listening TCP socket."""
        self.writer.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._factory, sock=sock)

    async def stop(self) -> None:
        """Stop accepting, close every session, then commit what is queued."""
        if self._server is not None:
            self._server.close()
            for session in list(self._live):
                abort(session.transport)
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let the aborted sessions run connection_lost
        self.writer.stop()


def serve_forever(service: CaptureService, sock: socket.socket) -> None:
    """Run ``service`` on ``sock`` until SIGINT or SIGTERM, then stop it cleanly:
    every message acknowledged with 250 is committed by the time this returns."""

    async def main() -> None:
        # Everything loaded so far (SQLAlchemy, the CLI) stays out of the collector's
        # way: full collections then only walk what the sessions allocate.
        gc.freeze()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start(sock)
        try:
            await stop.wait()
        finally:
            await service.stop()

    asyncio.run(main())


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int, *, backlog: int = 128) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one). Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: small replies go out at once instead of
        # waiting for the peer's delayed ACK (40 ms a request over keep-alive).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
