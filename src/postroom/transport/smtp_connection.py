"""One SMTP connection's lines: write commands, read replies, keep a transcript.

Socket failures become transport errors here and nowhere else: a timeout is a
:class:`TransportTimeout` naming the step, a closed or reset connection a
:class:`ServerDisconnected`, an answer that is not SMTP an :class:`SMTPProtocolError`.
Any of them closes the connection, whose state is then unknown.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence

from postroom.errors import (
    ConnectError,
    ServerDisconnected,
    SMTPProtocolError,
    TransportError,
    TransportTimeout,
)
from postroom.transport.smtp_protocol import Reply, parse_reply_line, redact, with_fix

#: The first four bytes of a reply's last line, ``250 ``, and its code.
_FINAL_LINE = {b"%d " % code: code for code in range(200, 600)}

#: Bytes per second a server must at least take message data at: writing a message
#: may last mail.timeout plus one second per this many bytes (10 MB: 200 s more).
DATA_FLOOR = 50_000

#: A whole transaction (MAIL to the final reply) may last this many mail.timeouts plus
#: 1s per DATA_FLOOR bytes. Each reply has its own deadline, but a server answering
#: each one just in time would otherwise hold a worker for (recipients + 3) timeouts.
TRANSACTION_TIMEOUTS = 3

#: How many distinct one-line replies a connection remembers (see read_reply).
KNOWN_REPLIES = 32

#: Receives each line of the conversation: ("C", line) sent, ("S", line) received.
Transcript = Callable[[str, str], None]


def data_deadline(timeout: float, size: int) -> float:
    """Seconds allowed to write ``size`` bytes of message data: the transaction's cap
    grows with the message, so a large one on a slow link is not cut off, while a
    server that stops reading is given up on."""
    return timeout + size / DATA_FLOOR


def transaction_deadline(timeout: float, size: int) -> float:
    """Seconds allowed for a whole transaction whose message data is ``size`` bytes."""
    return TRANSACTION_TIMEOUTS * timeout + size / DATA_FLOOR


def connect_error(
    error: OSError | None, host: str, port: int, where: str, timeout: float
) -> ConnectError:
    """Why no connection to ``where`` could be opened, and the likely fix."""
    if isinstance(error, TimeoutError):
        what = f"timed out after {timeout:g}s connecting to {where}"
        fix = "a firewall may drop the connection, or mail.host / mail.port is wrong"
    elif isinstance(error, ConnectionRefusedError):
        what = f"{where} refused the connection"
        fix = "is the SMTP server running? check mail.host and mail.port"
    else:
        reason = error.strerror if error is not None and error.strerror else str(error)
        what = f"cannot reach {where} ({reason})"
        fix = "check mail.host and mail.port, and the network route to the server"
    return with_fix(ConnectError(f"{what}; {fix}", host=host, port=port), fix)


class SMTPConnection:
    """A connected socket (plain or TLS) and the bytes read from it but not yet used."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        where: str,
        timeout: float,
        implicit_tls: bool = False,
        transcript: Transcript | None = None,
    ) -> None:
        self.sock: socket.socket | None = sock
        self.where = where
        self.timeout = timeout
        self.implicit_tls = implicit_tls
        self.transcript = transcript
        self._buf = b""
        self._pos = 0
        #: True once the end of a message's data was written: from then on the server
        #: may have taken the message, so a failure must not lead to a blind resend.
        self.end_of_data_sent = False
        #: One-line replies seen on this connection, by their bytes (``250 2.1.5 Ok``
        #: comes for every RCPT): a repeat is not parsed again.
        self._known: dict[bytes, Reply] = {}
        #: The last replies to each kind of pipelined group, with their bytes.
        self._groups: dict[tuple[str, ...], tuple[bytes, tuple[Reply, ...]]] = {}
        #: Transactions that got their replies here (see smtp_transaction._results).
        self.transactions = 0
        #: The running transaction's cap (seconds allowed) and what is left of it.
        self._cap_total = 0.0
        self._cap_left: float | None = None

    @property
    def is_open(self) -> bool:
        return self.sock is not None

    def require_socket(self) -> socket.socket:
        if self.sock is None:
            raise ServerDisconnected(f"the connection to {self.where} is closed")
        return self.sock

    def replace_socket(self, sock: socket.socket) -> None:
        """Carry on over ``sock`` (the TLS layer after STARTTLS). Whatever was read before
        is dropped: nothing the server sent before the handshake may be trusted."""
        self.sock = sock
        self._buf, self._pos = b"", 0

    def peer_is_loopback(self) -> bool:
        try:
            address = str(self.require_socket().getpeername()[0]).split("%")[0]
            return ipaddress.ip_address(address).is_loopback
        except (OSError, ValueError, TransportError):
            return False

    def begin_transaction(self, size: int) -> None:
        """Start the overall cap of a transaction carrying ``size`` bytes of data. It
        counts only time spent waiting on the server, never the caller's own pauses
        between results (a commit, a rate limit)."""
        limit = TRANSACTION_TIMEOUTS * self.timeout + size / DATA_FLOOR  # transaction_deadline
        self._cap_total = self._cap_left = limit

    def end_transaction(self) -> None:
        self._cap_left = None

    def _spend(self, since: float) -> None:
        if self._cap_left is not None:
            self._cap_left -= time.monotonic() - since

    def _cap_reached(self) -> bool:
        return self._cap_left is not None and self._cap_left <= 0.01

    # -- writing ----------------------------------------------------------------------

    def command(self, line: str, step: str, *, secret: bool = False) -> Reply:
        """Send one command line and read its reply. ``secret`` masks it in the transcript
        (answers to AUTH challenges); AUTH commands are always masked."""
        if self.transcript is not None:
            self.transcript("C", redact(line, in_auth=secret))
        self.write((line + "\r\n").encode("utf-8"), step)
        return self.read_reply(step)

    def write(self, data: bytes, step: str, *, lines: Sequence[bytes] = ()) -> None:
        """Write ``data`` at once; ``lines`` are what the transcript shows of it."""
        if self.transcript is not None:
            for line in lines:
                self.transcript("C", line.decode("utf-8", "replace").rstrip("\r\n"))
        try:
            self.require_socket().sendall(data)
        except OSError as exc:
            raise self._io_error(exc, step) from None

    def write_data(self, payload: bytes, tail: bytes, *, more: bytes = b"") -> None:
        """Write an encoded message, its end (``tail``), then ``more`` (the next pipelined
        commands), in as few system calls and copies as the socket allows, within
        :func:`data_deadline` for the whole of it."""
        if self.transcript is not None:
            self.transcript("C", f"<message data: {len(payload)} bytes>")
            self.transcript("C", ".")
            for line in more.splitlines():
                self.transcript("C", line.decode("utf-8", "replace"))
        sock = self.sock
        if sock is None:
            raise ServerDisconnected(f"the connection to {self.where} is closed")
        cap_left = self._cap_left
        if cap_left is not None and cap_left <= 0.01:  # _cap_reached()
            raise self._over_cap("data")
        self.end_of_data_sent = True
        limit = self.timeout + len(payload) / DATA_FLOOR  # data_deadline()
        allowed = limit if cap_left is None or limit < cap_left else cap_left
        started = time.monotonic()
        try:
            if len(payload) < 65536 or isinstance(sock, ssl.SSLSocket):
                sock.settimeout(allowed)  # sendall: one limit for the whole call
                sock.sendall(payload + tail + more)
                return
            deadline = started + allowed
            parts = [memoryview(payload), memoryview(tail + more)]
            while parts:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                sent = sock.sendmsg(parts)
                while parts and sent >= len(parts[0]):
                    sent -= len(parts.pop(0))
                if parts:
                    parts[0] = parts[0][sent:]
        except TimeoutError:
            self._spend(started)
            started = time.monotonic()
            if self._cap_reached():
                raise self._over_cap("data") from None
            self.close()
            fix = "the link or the server is too slow for this message; raise mail.timeout"
            message = (
                f"{self.where} took more than {limit:.0f}s to take {len(payload)} bytes of "
                f"message data (mail.timeout plus 1s per {DATA_FLOOR // 1000} kB); {fix}"
            )
            raise with_fix(TransportTimeout(message, step="data"), fix) from None
        except OSError as exc:
            raise self._io_error(exc, "data") from None
        finally:
            if self._cap_left is not None:  # _spend(started)
                self._cap_left -= time.monotonic() - started
            if self.sock is not None:
                sock.settimeout(self.timeout)

    # -- reading ----------------------------------------------------------------------

    def read_reply(self, step: str) -> Reply:
        """The next complete (possibly multi-line) reply, within ``timeout`` for the
        whole of it: a server that trickles a byte at a time still times out."""
        lines: list[str] = []
        deadline: float | None = None  # set by the first read from the socket
        while True:
            buf, pos = self._buf, self._pos
            end = buf.find(b"\n", pos)
            if end < 0:
                deadline = self._fill(step, deadline)
                continue
            self._pos = end + 1
            if not lines and self.transcript is None:  # the usual reply: one line
                line = buf[pos:end]
                reply = self._known.get(line)
                if reply is not None:
                    return reply
                code = _FINAL_LINE.get(line[:4])
                if code is not None:  # "250 text": what parse_reply_line would make of it
                    reply = Reply(code, (line[4:].decode("utf-8", "replace").strip(),))
                    if len(self._known) < KNOWN_REPLIES and (step != "data" or code == 354):
                        self._known[line] = reply  # MAIL, RCPT and DATA replies recur
                    return reply
            raw = buf[pos:end].rstrip(b"\r")
            if self.transcript is not None:
                self.transcript("S", raw.decode("utf-8", "replace"))
            try:
                code, last, text = parse_reply_line(raw)
            except ValueError:
                raise self._not_smtp(raw, step) from None
            lines.append(text)
            if last:
                return Reply(code, tuple(lines))

    def read_replies(self, steps: tuple[str, ...]) -> list[Reply]:
        """The replies to pipelined commands, one per step (its name for errors), each
        within ``timeout`` as :meth:`read_reply`. Stops after a 421: the server is
        leaving and the rest never comes."""
        buf, pos = self._buf, self._pos
        if self.transcript is None:
            known_group = self._groups.get(steps)
            if known_group is not None and buf.startswith(known_group[0], pos):
                self._pos = pos + len(known_group[0])  # the same bytes as last time
                return list(known_group[1])
        replies: list[Reply] = []
        known = self._known if self.transcript is None else {}
        for step in steps:
            end = self._buf.find(b"\n", self._pos)
            reply = known.get(self._buf[self._pos : end]) if end >= 0 else None
            if reply is None:
                reply = self.read_reply(step)
            else:  # a reply seen before, already read from the socket
                self._pos = end + 1
            replies.append(reply)
            if reply.code == 421:
                break
        remember = steps in self._groups or len(self._groups) < KNOWN_REPLIES
        if remember and self._buf is buf and self.transcript is None:  # all read before
            self._groups[steps] = (buf[pos : self._pos], tuple(replies))
        return replies

    def _fill(self, step: str, deadline: float | None) -> float:
        """Read what the server sent, within what is left of the reply's ``deadline``
        (None: the reply's first read, which starts it). Returns the deadline."""
        sock = self.require_socket()
        started = time.monotonic()
        if deadline is None:
            deadline, left = started + self.timeout, self.timeout
        else:
            left = deadline - started
        if self._cap_left is not None and self._cap_left < left:
            left = self._cap_left  # the transaction's cap ends first
        if left <= 0:
            raise self._io_error(TimeoutError(), step)
        try:
            if left != self.timeout:  # the socket keeps mail.timeout between calls
                sock.settimeout(min(left, self.timeout))
            try:
                chunk = sock.recv(65536)
            finally:
                self._spend(started)
                if left != self.timeout:
                    sock.settimeout(self.timeout)  # writes keep their own whole-call limit
        except OSError as exc:
            raise self._io_error(exc, step) from None
        if not chunk:
            self.close()
            raise ServerDisconnected(f"{self.where} closed the connection during {step}")
        if self._pos >= len(self._buf):
            self._buf, self._pos = chunk, 0
        else:
            self._buf, self._pos = self._buf[self._pos :] + chunk, 0
        return deadline

    def still_open(self) -> bool:
        """Whether the connection can carry another message: the server has neither
        closed it nor said anything unasked (like a 421 before hanging up). A connection
        that cannot is closed. Costs one non-blocking read."""
        sock = self.sock
        if sock is None:
            return False
        if self._pos >= len(self._buf):
            try:
                sock.setblocking(False)
                try:
                    chunk = sock.recv(4096)
                finally:
                    sock.settimeout(self.timeout)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                return True
            except OSError:
                chunk = b""
            if chunk and self.transcript is not None:
                self.transcript("S", chunk.decode("utf-8", "replace").rstrip("\r\n"))
        self.close()
        return False

    def close(self) -> None:
        """Close the socket without a word. Never raises."""
        sock, self.sock = self.sock, None
        self._buf, self._pos = b"", 0
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # -- failures ---------------------------------------------------------------------

    def _over_cap(self, step: str) -> TransportError:
        self.close()
        fix = "the server is too slow for this message; raise mail.timeout if it is just slow"
        message = (
            f"{self.where} did not finish a message within {round(self._cap_total, 1):g}s (during "
            f"{step}; a transaction may take {TRANSACTION_TIMEOUTS} x mail.timeout plus 1s "
            f"per {DATA_FLOOR // 1000} kB of message); {fix}"
        )
        return with_fix(TransportTimeout(message, step=step), fix)

    def _io_error(self, exc: OSError, step: str) -> TransportError:
        if isinstance(exc, TimeoutError) and self._cap_reached():
            return self._over_cap(step)
        self.close()
        if isinstance(exc, TimeoutError):
            fix = "the server is slow or stuck; raise mail.timeout if it is just slow"
            if step == "greeting" and not self.implicit_tls:
                fix = (
                    "a firewall or proxy may hold the connection, or mail.port is wrong; "
                    "if the port expects implicit TLS (like 465), set mail.security=ssl"
                )
            message = f"{self.where} did not answer {step} within {self.timeout:g}s; {fix}"
            return with_fix(TransportTimeout(message, step=step), fix)
        reason = exc.strerror or exc.__class__.__name__
        return ServerDisconnected(f"connection to {self.where} lost during {step} ({reason})")

    def _not_smtp(self, raw: bytes, step: str) -> SMTPProtocolError:
        self.close()
        fix = "check mail.port and mail.security: the server does not speak SMTP there"
        if step == "greeting" and not self.implicit_tls:
            fix = "if the port expects implicit TLS (like 465), set mail.security=ssl"
        message = f"{self.where} answered {raw[:60]!r} to {step}, which is not SMTP; {fix}"
        return with_fix(SMTPProtocolError(message), fix)
