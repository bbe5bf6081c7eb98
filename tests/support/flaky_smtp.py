"""A small SMTP server on raw sockets whose first connections break at a chosen point.

aiosmtpd hands a message to its handler only after the final dot, so it cannot drop a
connection halfway through DATA; this server can. Connections after the scripted
failures behave like a plain server that records every message.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class FlakyServer:
    """``break_at``: "during-data" (close after part of the body, before the dot) or
    "after-dot" (close after the whole message, before replying), for the first
    ``failures`` connections."""

    break_at: str
    failures: int = 1
    messages: list[bytes] = field(default_factory=list)
    connections: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self._listen = socket.socket()
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen.bind((self.host, 0))
        self._listen.listen(16)
        self.port = self._listen.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def settings_flags(self) -> dict[str, str]:
        return {"mail.host": self.host, "mail.port": str(self.port), "mail.security": "none"}

    def stop(self) -> None:
        self._stop.set()
        self._listen.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listen.accept()
            except OSError:
                return
            self.connections += 1
            breaking = self.connections <= self.failures
            with conn, contextlib.suppress(OSError):
                self._session(conn, breaking)

    def _session(self, conn: socket.socket, breaking: bool) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 flaky.postroom.test ESMTP\r\n")
        while line := reader.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-flaky.postroom.test\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                conn.sendall(b"250 OK\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                if breaking and self.break_at == "during-data":
                    reader.readline()  # the first header line, then hang up mid-message
                    return
                body = bytearray()
                while (data_line := reader.readline()) not in (b".\r\n", b""):
                    body += data_line
                if breaking and self.break_at == "after-dot":
                    return
                self.messages.append(bytes(body))
                conn.sendall(b"250 2.0.0 queued\r\n")
            else:
                conn.sendall(b"502 not implemented\r\n")
