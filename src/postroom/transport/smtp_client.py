"""A lean, blocking SMTP client that pipelines (RFC 2920) and reuses its connection.

Each step of a session is its own method, so ``postroom test-email`` can time and
explain them one by one: :meth:`SMTPClient.resolve`, :meth:`~SMTPClient.connect`,
:meth:`~SMTPClient.handshake` (implicit TLS), :meth:`~SMTPClient.read_greeting`,
:meth:`~SMTPClient.ehlo`, :meth:`~SMTPClient.starttls`, :meth:`~SMTPClient.login`,
then :meth:`~SMTPClient.send` (or :meth:`~SMTPClient.send_many`) as often as needed,
and :meth:`~SMTPClient.quit`. :meth:`~SMTPClient.open` runs the steps up to the login.

Every socket operation has ``mail.timeout``. Failures raise the
:class:`postroom.errors.TransportError` subclasses; a reply about one recipient is
not a failure but part of the :class:`SendResult`. The password is revealed only
where AUTH encodes it, and transcripts mask every AUTH line.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable, Iterator
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any, Self

from postroom.errors import (
    ConnectError,
    ServerDisconnected,
    SMTPReplyError,
    TLSError,
    TransportError,
)
from postroom.message.envelope import Envelope
from postroom.settings import Secret
from postroom.settings.glossary import MailSettings
from postroom.transport import smtp_auth, smtp_tls, smtp_transaction
from postroom.transport.base import SendResult
from postroom.transport.smtp_auth import Credentials
from postroom.transport.smtp_connection import SMTPConnection, Transcript, connect_error
from postroom.transport.smtp_protocol import (
    Capabilities,
    Reply,
    encode_data,
    end_of_data,
    mail_command,
    parse_ehlo,
    rcpt_command,
    with_fix,
)

if TYPE_CHECKING:  # OAuth2 is imported only when mail.auth=xoauth2
    from postroom.transport.oauth import TokenSource

__all__ = ["SMTPClient", "Transcript"]


class SMTPClient:
    """One SMTP session at a time. Not thread-safe: give each thread its own client."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        security: str = "none",
        timeout: float = 30.0,
        username: str = "",
        password: Secret = Secret(""),
        auth: str = "auto",
        tls_verify: bool = True,
        tls_ca_file: str = "",
        helo_name: str = "",
        allow_plaintext_auth: bool = False,
        tokens: TokenSource | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"security must be none, starttls or ssl, not {security!r}")
        self.host = host
        self.port = port
        self.security = security
        self.timeout = timeout
        self.username = username
        self._password = password
        self.auth = auth
        self.tls_verify = tls_verify
        self.tls_ca_file = tls_ca_file
        self.helo_name = helo_name
        self.allow_plaintext_auth = allow_plaintext_auth
        #: Where XOAUTH2 tokens come from (mail.auth=xoauth2), else None.
        self.tokens = tokens
        self.transcript = transcript
        self.context: ssl.SSLContext | None = None
        self.connection: SMTPConnection | None = None
        self.addresses: list[tuple[Any, ...]] = []
        self.peer: tuple[Any, ...] | None = None
        self.greeting: Reply | None = None
        self.capabilities: Capabilities | None = None
        self.tls = False
        self.authenticated = False

    @classmethod
    def from_settings(cls, mail: MailSettings, *, transcript: Transcript | None = None) -> Self:
        oauth = mail.auth == "xoauth2"
        if oauth:
            from postroom.transport.oauth import TokenSource
        return cls(
            mail.host,
            mail.port,
            security=mail.security,
            timeout=mail.timeout,
            # XOAUTH2 names the mailbox it sends as: mail.username, else mail.from's address.
            username=mail.username or (parseaddr(mail.from_)[1] if oauth else ""),
            password=mail.password,
            auth=mail.auth,
            tls_verify=mail.tls_verify,
            tls_ca_file=mail.tls_ca_file,
            helo_name=mail.helo_name,
            allow_plaintext_auth=mail.allow_plaintext_auth,
            tokens=TokenSource(mail, "smtp") if oauth else None,
            transcript=transcript,
        )

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<SMTPClient {self.where} security={self.security} {state}>"

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def messages(self) -> int:
        """Transactions run on the current connection (a message refused before any
        command, too big or needing SMTPUTF8, is not one)."""
        return self.connection.transactions if self.connection is not None else 0

    @property
    def is_open(self) -> bool:
        return self.connection is not None and self.connection.is_open

    @property
    def end_of_data_sent(self) -> bool:
        """Whether the last send got as far as the end of a message's data: from then
        on the server may have taken it, so it must not be resent blindly."""
        return self.connection is not None and self.connection.end_of_data_sent

    # -- the session, step by step ----------------------------------------------------

    def open(self) -> Self:
        """Connect, secure, greet, EHLO and log in, as the settings say."""
        try:
            self.connect()
            if self.security == "ssl":
                self.handshake()
            self.read_greeting()
            self.ehlo()
            if self.security == "starttls":
                self.starttls()
            self.login()
        except BaseException:
            self.close()
            raise
        return self

    def resolve(self) -> list[str]:
        """Look the host up; returns the addresses that connect will try, in order."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            fix = "check mail.host: the name is wrong or DNS does not know it"
            reason = getattr(exc, "strerror", None) or str(exc)
            message = f"cannot resolve mail.host {self.host!r} ({reason}); {fix}"
            raise with_fix(ConnectError(message, host=self.host, port=self.port), fix) from None
        self.addresses = [info for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
        return [str(info[4][0]) for info in self.addresses]

    def connect(self) -> None:
        """Open the TCP connection, trying each resolved address in turn."""
        if not self.addresses:
            self.resolve()
        self.close()
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in self.addresses:
            sock = socket.socket(family, kind, proto)
            sock.settimeout(self.timeout)
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connection = SMTPConnection(
                sock,
                where=self.where,
                timeout=self.timeout,
                implicit_tls=self.security == "ssl",
                transcript=self.transcript,
            )
            self.peer = sockaddr
            self.tls = self.authenticated = False
            self.greeting = self.capabilities = None
            return
        raise connect_error(error, self.host, self.port, self.where, self.timeout)

    def handshake(self) -> None:
        """Implicit TLS (mail.security=ssl): the TLS handshake right after connecting."""
        self._start_tls()

    def read_greeting(self) -> Reply:
        reply = self._conn().read_reply("greeting")
        self.greeting = reply
        if reply.code != 220:
            raise self._reply_error("greeting", reply, "the server does not take mail now")
        return reply

    def ehlo(self) -> Capabilities:
        """EHLO, or HELO if EHLO is refused and neither TLS nor a login is needed."""
        conn = self._conn()
        name = self.helo_name or smtp_tls.local_name(conn.require_socket())
        reply = conn.command(f"EHLO {name}", "ehlo")
        if reply.code == 250:
            self.capabilities = parse_ehlo(reply)
            return self.capabilities
        if 500 <= reply.code < 600 and self.security != "starttls" and not self.username:
            reply = conn.command(f"HELO {name}", "ehlo")
            if reply.code == 250:
                self.capabilities = Capabilities(name=reply.text, extended=False)
                return self.capabilities
        raise self._reply_error("ehlo", reply, "check mail.helo_name")

    def starttls(self) -> Capabilities:
        """STARTTLS, the handshake, and EHLO again. Never carries on in plaintext."""
        caps = self._caps()
        if not caps.starttls:
            fix = (
                "enable STARTTLS on the server, or use its implicit-TLS port with "
                "mail.security=ssl; mail.security=none only on a trusted network"
            )
            raise with_fix(TLSError(f"{self.where} does not offer STARTTLS; {fix}"), fix)
        reply = self._conn().command("STARTTLS", "starttls")
        if reply.code != 220:
            fix = "check the server's TLS setup, or use mail.security=ssl on its TLS port"
            raise with_fix(TLSError(f"{self.where} refused STARTTLS: {reply}; {fix}"), fix)
        self._start_tls()
        self.capabilities = None
        return self.ehlo()

    def _start_tls(self) -> None:
        conn = self._conn()
        if self.context is None:
            self.context = smtp_tls.make_context(verify=self.tls_verify, ca_file=self.tls_ca_file)
        try:
            tls = smtp_tls.wrap(
                conn.require_socket(),
                self.context,
                host=self.host,
                where=self.where,
                timeout=self.timeout,
                implicit=self.security == "ssl",
                probe_names=self._certificate_names,
            )
        except TransportError:
            self.close()
            raise
        conn.replace_socket(tls)
        self.tls = True

    def _certificate_names(self) -> tuple[str, ...]:
        """The names on the server's certificate, fetched on a second connection that
        checks the chain but not the name. Only to explain a name mismatch."""
        probe = SMTPClient(
            self.host, self.port, security=self.security, timeout=min(self.timeout, 5.0)
        )
        probe.addresses = self.addresses
        try:
            probe.context = smtp_tls.make_context(verify=True, ca_file=self.tls_ca_file)
            probe.context.check_hostname = False
            probe.connect()
            if self.security == "ssl":
                probe.handshake()
            probe.read_greeting()
            if self.security == "starttls":
                probe.ehlo()
                probe.starttls()
            sock = probe._conn().require_socket()
            cert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
            return smtp_tls.certificate_names(cert or {})
        except (TransportError, OSError, ValueError):
            return ()
        finally:
            probe.quit()

    def tls_info(self) -> dict[str, object] | None:
        """Protocol, cipher and certificate of the TLS connection, or None in plaintext."""
        sock = self.connection.sock if self.connection is not None else None
        if not isinstance(sock, ssl.SSLSocket):
            return None
        return smtp_tls.describe(sock, verified=self.tls_verify)

    def login(self) -> None:
        """Log in if mail.username is set (always with mail.auth=xoauth2); see
        :mod:`postroom.transport.smtp_auth`."""
        if not self.username:
            return
        credentials = Credentials(
            self.username, self._password, self.auth, self.allow_plaintext_auth, self.tokens
        )
        smtp_auth.login(self._conn(), self._caps(), credentials, tls=self.tls, where=self.where)
        self.authenticated = True

    # -- mail -------------------------------------------------------------------------

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        """Send one message; the result has one reply per recipient.

        With PIPELINING, MAIL, every RCPT and DATA go in one write. Raises
        SMTPUTF8Required before writing anything if an address needs SMTPUTF8 and the
        server lacks it; connection trouble raises and closes the connection.
        """
        return smtp_transaction.send(self._conn(), self._caps(), envelope, data)

    def send_many(self, items: Iterable[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
        """Send messages back to back, yielding each result in order: one round trip per
        message with PIPELINING. See :func:`smtp_transaction.send_many`."""
        yield from smtp_transaction.send_many(self._conn(), self._caps(), items)

    # One command at a time, for diagnostics.

    def mail(self, sender: str, *, size: int | None = None, smtputf8: bool = False) -> Reply:
        """MAIL FROM, starting the transaction's overall cap (for ``size`` bytes of data);
        :meth:`data` or :meth:`rset` ends it."""
        self._conn().begin_transaction(size or 0)
        size = size if self._caps().has_size else None
        command = mail_command(sender, size=size, smtputf8=smtputf8, eight_bit=False)
        return self._command_bytes(command, "mail")

    def rcpt(self, recipient: str, *, smtputf8: bool = False) -> Reply:
        return self._command_bytes(rcpt_command(recipient, smtputf8=smtputf8), "rcpt")

    def data(self, data: bytes) -> Reply:
        """DATA and the message: the final reply, or the DATA reply if it was not 354."""
        conn = self._conn()
        try:
            reply = conn.command("DATA", "data")
            if reply.code != 354:
                return reply
            payload = encode_data(data)
            conn.write_data(payload, end_of_data(payload))
            return conn.read_reply("data")
        finally:
            conn.end_transaction()

    def rset(self) -> Reply:
        conn = self._conn()
        conn.end_transaction()
        return conn.command("RSET", "rset")

    def still_open(self) -> bool:
        """Whether the connection can take another message (see SMTPConnection)."""
        return self.connection is not None and self.connection.still_open()

    def quit(self) -> None:
        """QUIT politely and close. Never raises."""
        if self.is_open:
            with contextlib.suppress(TransportError, OSError):
                self._conn().command("QUIT", "quit")
        self.close()

    def close(self) -> None:
        """Close the connection without a word. Never raises."""
        if self.connection is not None:
            self.connection.close()

    # -- helpers ----------------------------------------------------------------------

    def _conn(self) -> SMTPConnection:
        if self.connection is None or not self.connection.is_open:
            raise ServerDisconnected(f"not connected to {self.where}; open the client first")
        return self.connection

    def _caps(self) -> Capabilities:
        self._conn()
        if self.capabilities is None:
            raise TransportError(f"no EHLO yet on the connection to {self.where}")
        return self.capabilities

    def _command_bytes(self, command: bytes, step: str) -> Reply:
        conn = self._conn()
        conn.write(command, step, lines=[command])
        return conn.read_reply(step)

    def _reply_error(self, step: str, reply: Reply, fix: str) -> SMTPReplyError:
        message = f"{self.where} answered {step} with {reply}; {fix}"
        return with_fix(SMTPReplyError(message, code=reply.code, reply=reply.text), fix)
