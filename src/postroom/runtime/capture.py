"""The capture server, set up for ``postroom catch`` and ``postroom serve --catch``."""

from __future__ import annotations

import logging
import socket

from sqlalchemy import Engine

from postroom.capture import recording_warning
from postroom.capture.server import CaptureOptions, CaptureService, is_loopback, listen
from postroom.errors import ConfigError, ListenError
from postroom.runtime.delivery import shown_database
from postroom.runtime.logs import say
from postroom.settings import Configuration, HostPort
from postroom.settings.kinds import SIZE
from postroom.store.capture import CaptureStore, NewCapture

logger = logging.getLogger("postroom.capture")


def check_bind(where: HostPort, *, allowed: bool, key: str) -> None:
    """A server binds to loopback unless its ``*.allow_remote`` says otherwise."""
    if not is_loopback(where.host) and not allowed:
        section = key.partition(".")[0]
        raise ConfigError(
            f"{key} {where} is not a loopback address",
            key=key,
            fix=f"bind to 127.0.0.1:{where.port}, or set {section}.allow_remote=true "
            "to let other machines reach it",
        )


def listen_on(where: HostPort, *, flag: str) -> socket.socket:
    """A listening socket, or a ListenError naming the address and how to pick another."""
    try:
        return listen(where.host, where.port)
    except OSError as exc:
        raise ListenError(
            f"cannot listen on {where}: {exc.strerror or exc}; choose another address with {flag}",
            address=str(where),
        ) from None


def capture_service(
    config: Configuration, engine: Engine, *, quiet: bool = False
) -> tuple[CaptureService, socket.socket]:
    """The capture server of capture.*, with its listening socket, not started yet.
    Raises ConfigError (bind not allowed, TLS files) or ListenError."""
    capture = config.settings.capture
    check_bind(capture.bind, allowed=capture.allow_remote, key="capture.bind")
    options = CaptureOptions.from_settings(capture)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's chatter
    sock = listen_on(capture.bind, flag="--bind HOST:PORT")
    store = CaptureStore(engine, max_bytes=capture.max_bytes)
    service = CaptureService(store, options, on_commit=None if quiet else _log_kept)
    service.faults.replace(capture.faults)
    return service, sock


def announce_capture(config: Configuration, service: CaptureService) -> None:
    capture = config.settings.capture
    options = service.options
    where = str(capture.bind)
    host, _, port = where.rpartition(":")
    say(
        f"postroom catch: listening on {where}; keeps every message in "
        f"{shown_database(config)}, never relays"
    )
    say(
        f"  limits: SIZE {SIZE.show(options.max_size)}, {options.max_recipients} recipients, "
        f"{options.max_sessions} sessions, idle timeout {options.idle_timeout:g}s; "
        f"keeps the newest {capture.max_messages}; "
        f"STARTTLS {'on' if options.tls_context else 'off'}; "
        f"AUTH {'any login accepted' if options.auth else 'off'}"
    )
    say(
        f"  point an app at host {host.strip('[]')} port {port} "
        f"({'STARTTLS' if options.tls_context else 'no TLS'}); "
        "read its mail with `postroom captured list`"
    )
    if capture.faults:
        say(f"  scripted faults (capture.faults): {len(capture.faults)} rule(s)")
        for rule in capture.faults:
            say(f"    {rule}")
    if capture.allow_remote and not is_loopback(capture.bind.host):
        say(
            f"warning: capture.allow_remote=true: any machine that reaches {where} can leave "
            "mail in the record (it is never relayed); do not expose it beyond a trusted network"
        )
    note = recording_warning(config)
    if note:
        say(note)


def _log_kept(ids: list[int], items: list[NewCapture]) -> None:
    for pk, item in zip(ids, items, strict=True):
        logger.info(
            "kept #%d from <%s> to %s (%d bytes)",
            pk,
            item.mail_from,
            ", ".join(f"<{r}>" for r in item.rcpt_tos),
            len(item.raw),
        )
