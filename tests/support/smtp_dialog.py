"""A raw-socket SMTP client for tests that must send exactly the bytes they choose:
bare CR or LF, pipelined commands, smuggled end-of-data sequences."""

from __future__ import annotations

import socket
import ssl
import time


class Dialog:
    """One connection; ``reply()`` reads one whole (possibly multi-line) reply."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Dialog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unread: {self._buffer!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self._line()
            lines.append(line[4:].decode("utf-8", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), "\n".join(lines)

    def command(self, line: str | bytes) -> tuple[int, str]:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def pending(self, wait: float = 0.3) -> bytes:
        """Whatever the server sent that was not read yet, after ``wait`` seconds."""
        self.sock.settimeout(wait)
        try:
            while chunk := self.sock.recv(65536):
                self._buffer += chunk
        except (TimeoutError, BlockingIOError):
            pass
        except (ConnectionError, OSError):
            pass
        data, self._buffer = self._buffer, b""
        return data

    def is_closed(self, within: float = 5.0) -> bool:
        """Whether the server closes the connection within ``within`` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return False
            except (ConnectionError, OSError):
                return True
            if not chunk:
                return True
            self._buffer += chunk
        return False

    def starttls(self, context: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        """Wrap the socket after the server's 220 (nothing buffered is kept)."""
        self._buffer = b""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def send_message(self, sender: str, recipients: list[str], body: bytes) -> tuple[int, str]:
        """MAIL, RCPT (each must be accepted), DATA with ``body`` (already dot-stuffed,
        ending in CRLF), and the final dot; returns the reply to the dot."""
        assert self.command(f"MAIL FROM:<{sender}>")[0] == 250
        for recipient in recipients:
            assert self.command(f"RCPT TO:<{recipient}>")[0] == 250
        assert self.command("DATA")[0] == 354
        self.send(body + b".\r\n")
        return self.reply()
