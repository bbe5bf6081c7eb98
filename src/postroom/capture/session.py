"""One SMTP session of the capture server: aiosmtpd's protocol, stricter and cheaper.

:class:`CaptureSMTP` is aiosmtpd's ``SMTP`` with command lines that must end in CRLF
(a bare CR or LF is refused and the command is not run), an idle timeout counted from
the last byte received, and the drop-before-dot fault. It is also cheaper to start:
aiosmtpd's ``SMTP.__init__`` finds its command, AUTH and hook methods by introspection
(``inspect.getmembers``, ``dir``, ``inspect.signature``) on every connection, about
0.3 ms of a connection that costs ~1 ms in all; :class:`SessionTables` looks them up
once per server and each session binds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MethodType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthenticatorType, _AuthMechAttr, login_always_fail

from postroom.capture.faults import FaultScript

BARE_NEWLINE = "X-POSTROOM-BARE-NEWLINE"  # stands in for a command line with bare CR/LF
BARE_NEWLINE_LINE = BARE_NEWLINE.encode() + b"\r\n"
BARE_NEWLINE_REPLY = "500 5.5.2 Error: bare CR or LF in a command line; end lines with CRLF"
DROP_WAIT = 5.0  # seconds a drop-before-dot waits for the first line of the message


def abort(transport: asyncio.BaseTransport | None) -> None:
    """Close at once, without flushing: the client sees the connection drop."""
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()


class _StrictCommandReader(asyncio.StreamReader):
    """Hands aiosmtpd only command lines that end in CRLF with no other CR or LF.

    aiosmtpd reads a command with ``readuntil()`` (LF) and each line of a message with
    ``readuntil(b"\\r\\n")``; only the first kind is checked, and the second goes
    straight to the stream (no coroutine of ours per line of a message)."""

    def readuntil(self, separator: bytes = b"\n") -> Any:  # type: ignore[override]
        if separator == b"\n":
            return self._command_line()
        return super().readuntil(separator)

    async def _command_line(self) -> bytes:
        line = await super().readuntil(b"\n")
        if line[-2:] != b"\r\n" or line.count(b"\r") != 1:
            return BARE_NEWLINE_LINE
        return line


@dataclass(frozen=True)
class SessionTables:
    """What aiosmtpd's ``SMTP.__init__`` finds by introspection, found once: command
    methods (``smtp_*``) and built-in AUTH mechanisms (``auth_*``) of the protocol
    class, unbound; the handler's hooks (``handle_*``) and AUTH mechanisms, bound."""

    commands: tuple[tuple[str, Callable[..., Any]], ...]
    builtin_auth: tuple[tuple[str, Callable[..., Any]], ...]
    handler_auth: Mapping[str, Callable[..., Any]]
    hooks: Mapping[str, Callable[..., Any]]
    ehlo_hook_ver: str | None

    @classmethod
    def of(cls, protocol: type[CaptureSMTP], handler: Any) -> SessionTables:
        def mechanism(name: str, method: Any) -> str:
            fallback = name.replace("auth_", "").replace("__", "-")
            return str(getattr(method, "__auth_mechanism_name__", fallback))

        hooks = {
            name.replace("handle_", ""): getattr(handler, name)
            for name in dir(handler)
            if name.startswith("handle_")
        }
        ehlo = hooks.get("EHLO")
        if ehlo is not None and len(inspect.signature(ehlo).parameters) != 5:
            raise TypeError("the capture handler's handle_EHLO must take 5 arguments")
        commands = [
            (name.replace("smtp_", ""), getattr(protocol, name))
            for name in dir(protocol)
            if name.startswith("smtp_")
        ]
        return cls(
            commands=(*commands, (BARE_NEWLINE, protocol.refuse_bare_newline)),
            builtin_auth=tuple(
                (mechanism(name, method), method)
                for name, method in inspect.getmembers(protocol)
                if name.startswith("auth_")
            ),
            handler_auth={
                mechanism(name, method): method
                for name, method in inspect.getmembers(handler)
                if name.startswith("auth_")
            },
            hooks=hooks,
            ehlo_hook_ver=None if ehlo is None else "new",
        )


class CaptureSMTP(SMTP):
    """aiosmtpd's SMTP with strict command lines, an idle timeout counted from the last
    byte received, drop-before-dot faults, and no introspection per connection."""

    def __init__(
        self,
        handler: Any,
        *,
        tables: SessionTables,
        faults: FaultScript,
        on_lost: Callable[[], None],
        data_size_limit: int,
        hostname: str,
        ident: str,
        timeout: float,
        tls_context: Any = None,
        authenticator: AuthenticatorType | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        # What SMTP.__init__ (aiosmtpd 1.4.6) sets for these options, with the method
        # tables bound from ``tables`` instead of found again for every connection.
        # test_a_session_is_set_up_as_aiosmtpd_sets_it_up pins this against aiosmtpd.
        self.__ident__ = ident
        self.loop = asyncio.get_running_loop()
        asyncio.StreamReaderProtocol.__init__(
            self,
            _StrictCommandReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = False
        self._timeout_duration = timeout
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        self._authenticator = authenticator
        self._auth_callback = None if authenticator is not None else login_always_fail
        self._auth_required = False
        self._auth_methods = {
            name: _AuthMechAttr(MethodType(method, self), True)
            for name, method in tables.builtin_auth
        }
        for name, method in tables.handler_auth.items():
            self._auth_methods[name] = _AuthMechAttr(method, False)
        self._handle_hooks = tables.hooks  # type: ignore[assignment]
        self._ehlo_hook_ver = tables.ehlo_hook_ver
        self._smtp_methods = {name: MethodType(method, self) for name, method in tables.commands}
        self._enforce_call_limit = False
        # Ours.
        self._faults = faults
        self._on_lost: Callable[[], None] | None = on_lost
        self._last_received = self.loop.time()

    def data_received(self, data: bytes) -> None:
        self._last_received = self.loop.time()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        # aiosmtpd counts idle time from the last command; a long DATA upload is not
        # idle, so count from the last byte received instead.
        quiet_for = self.loop.time() - self._last_received
        if quiet_for < self._timeout_duration:
            self._reset_timeout(self._timeout_duration - quiet_for)
            return
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def connection_lost(self, error: Exception | None) -> None:
        if self._on_lost is not None:
            self._on_lost()
            self._on_lost = None
        super().connection_lost(error)

    async def refuse_bare_newline(self, arg: str | None) -> None:
        await self.push(BARE_NEWLINE_REPLY)

    async def smtp_DATA(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd command
        envelope, session = self.envelope, self.session
        if (
            self._faults.rules
            and not arg
            and envelope is not None
            and envelope.rcpt_tos
            and session is not None
            and session.host_name
            and self._faults.before_dot(envelope.rcpt_tos) is not None
        ):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            # Take the first line of the message, then hang up before the dot.
            with contextlib.suppress(
                TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError
            ):
                await asyncio.wait_for(self._reader.readuntil(b"\r\n"), DROP_WAIT)
            abort(self.transport)
            return
        await super().smtp_DATA(arg)
