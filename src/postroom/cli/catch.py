"""``postroom catch``: run the capture SMTP server in the foreground."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from postroom.app import Postroom
from postroom.capture import recording_warning
from postroom.capture.server import (
    CaptureOptions,
    CaptureService,
    is_loopback,
    listen,
    serve_forever,
)
from postroom.cli.common import EXIT_FAILED, err, fail, state, warn
from postroom.cli.worker import setup_logging
from postroom.settings import Configuration
from postroom.settings.kinds import SIZE
from postroom.store.capture import CaptureStore, NewCapture
from postroom.store.engine import database_url

logger = logging.getLogger("postroom.capture")


def command(
    ctx: typer.Context,
    bind: Annotated[
        str | None,
        typer.Option(
            "--bind",
            metavar="HOST:PORT",
            help="Where to listen (default capture.bind, 127.0.0.1:1025). "
            "Env: POSTROOM_CAPTURE_BIND.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per message received.")
    ] = False,
) -> None:
    """Run the capture SMTP server: keep every message it receives, never relay.

    Point an application at it (host 127.0.0.1, port 1025, no TLS, any or no login)
    and read what it sent with `postroom captured list`. Stop with Ctrl-C.
    """
    cli = state(ctx)
    if bind is not None:
        cli.flags["capture.bind"] = bind
    raise typer.Exit(run_catch(cli.config(), quiet=quiet))


def run_catch(config: Configuration, *, quiet: bool = False) -> int:
    capture = config.settings.capture
    where = capture.bind
    if not is_loopback(where.host) and not capture.allow_remote:
        fail(
            f"capture.bind {where} is not a loopback address; bind to 127.0.0.1:{where.port}, "
            "or set capture.allow_remote=true to let other machines send mail here"
        )
    options = CaptureOptions.from_settings(capture)
    setup_logging()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's chatter
    try:
        sock = listen(where.host, where.port)
    except OSError as exc:
        fail(
            f"cannot listen on {where}: {exc.strerror or exc}; "
            "choose another address with --bind HOST:PORT",
            EXIT_FAILED,
        )
    with Postroom(config=config) as postroom:
        service = CaptureService(
            CaptureStore(postroom.engine),
            options,
            on_commit=None if quiet else _log_kept,
        )
        service.faults.replace(capture.faults)
        _announce(config, options, str(where))
        serve_forever(service, sock)
        err.print(
            f"postroom catch stopped: {service.writer.written} message(s) kept "
            f"in {service.writer.commits} commit(s)",
            markup=False,
        )
    return 0


def _announce(config: Configuration, options: CaptureOptions, where: str) -> None:
    capture = config.settings.capture
    url = make_url(database_url(config)).render_as_string(hide_password=True)
    host, _, port = where.rpartition(":")
    err.print(
        f"postroom catch: listening on {where}; keeps every message in {url}, never relays",
        markup=False,
    )
    err.print(
        f"  limits: SIZE {SIZE.show(options.max_size)}, {options.max_recipients} recipients, "
        f"{options.max_sessions} sessions, idle timeout {options.idle_timeout:g}s; "
        f"keeps the newest {capture.max_messages}; "
        f"STARTTLS {'on' if options.tls_context else 'off'}; "
        f"AUTH {'any login accepted' if options.auth else 'off'}",
        markup=False,
    )
    err.print(
        f"  point an app at host {host.strip('[]')} port {port} "
        f"({'STARTTLS' if options.tls_context else 'no TLS'}); "
        "read its mail with `postroom captured list`",
        markup=False,
    )
    if capture.faults:
        err.print(
            f"  scripted faults (capture.faults): {len(capture.faults)} rule(s)", markup=False
        )
        for rule in capture.faults:
            err.print(f"    {rule}", markup=False)
    if capture.allow_remote and not is_loopback(capture.bind.host):
        warn(
            f"warning: capture.allow_remote=true: any machine that reaches {where} can leave "
            "mail in the record (it is never relayed); do not expose it beyond a trusted network"
        )
    note = recording_warning(config)
    if note:
        warn(note)


def _log_kept(ids: list[int], items: list[NewCapture]) -> None:
    for pk, item in zip(ids, items, strict=True):
        logger.info(
            "kept #%d from <%s> to %s (%d bytes)",
            pk,
            item.mail_from,
            ", ".join(f"<{r}>" for r in item.rcpt_tos),
            len(item.raw),
        )
