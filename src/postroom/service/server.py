"""``postroom serve``: the service, the delivery worker and (``--catch``) the capture
server, in one process.

The listening socket is bound before anything else starts, so a busy port or a
forbidden address is one line at once. SIGTERM or SIGINT stops taking requests,
lets the worker finish and record what it has in flight, stops the capture server
after committing what it acknowledged, and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import signal
import socket
from types import FrameType

import uvicorn

from postroom.capture.server import CaptureService
from postroom.runtime import Runtime, describe_route, say, setup_logging, shown_database
from postroom.runtime.capture import announce_capture, capture_service, check_bind, listen_on
from postroom.service.app import close_app, create_app
from postroom.settings import Configuration
from postroom.store.directory_schema import ROOT_USERNAME

logger = logging.getLogger("postroom.service")
GRACE = 30  # seconds requests in flight get at shutdown


def console_url(config: Configuration) -> str:
    web = config.settings.web
    if web.public_url:
        return web.public_url + "/console/"
    host = web.bind.host
    if host in ("0.0.0.0", "::", "[::]"):  # noqa: S104 - a name, not a bind
        host = socket.gethostname()
    return f"http://{host}:{web.bind.port}/console/"


def first_login(runtime: Runtime) -> str | None:
    """The first time (no admin can log in yet): a generated password for root."""
    users = runtime.postroom.users
    if users.console_admins():
        return None
    password = secrets.token_urlsafe(12)
    users.set_password(ROOT_USERNAME, password)
    return password


def catch_flags(config: Configuration) -> dict[str, str]:
    """``--catch``: recording mode, and SMTP settings still at their defaults pointed at
    the capture server, so that test-email walks through it too."""
    flags = {"mail.enabled": "true", "mail.transport": "capture"}
    bind = config.settings.capture.bind
    defaults = {"mail.host": bind.host.strip("[]"), "mail.port": str(bind.port)}
    defaults["mail.security"] = "none"
    for key, value in defaults.items():
        if config.sources[key] == "default":
            flags[key] = value
    return flags


def serve(
    config: Configuration, *, flags: dict[str, str], catch: bool = False, deliver: bool = True
) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status. ``config`` was loaded with
    ``flags`` (``catch_flags`` among them with ``catch``)."""
    setup_logging()
    config.check()
    web = config.settings.web
    check_bind(web.bind, allowed=web.allow_remote, key="web.bind")
    sock = listen_on(web.bind, flag="--bind HOST:PORT")
    with sock, Runtime(config, flags=flags) as runtime:
        runtime.check_templates()
        app = create_app(runtime)
        capture: tuple[CaptureService, socket.socket] | None = None
        if catch:
            capture = capture_service(config, runtime.postroom.engine)
        password = first_login(runtime)
        worker = runtime.start_delivery() if deliver else None
        _announce(config, runtime, password, worker_name=worker.name if worker else None)
        if capture is not None:
            announce_capture(config, capture[0])
        runtime.server_event("server.up")
        stopping: list[int] = []

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            stopping.append(signum)

        # Ours from before uvicorn takes them until the worker has drained: uvicorn
        # raises the signal again once it stops, and a second SIGTERM while messages
        # are finishing must not cut them off.
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            try:
                asyncio.run(_run(app, sock, web.bind.host, web.bind.port, config, capture))
            finally:
                close_app(app)
            down = runtime.server_event("server.down")
            if worker is not None:
                if down and not runtime.wait_sent(down):
                    say("server.down mail is queued; it goes out when delivery runs again")
                say("stopping: finishing messages in flight ...")
                stats = runtime.stop_delivery()
                if stats is not None:
                    say(stats.summary())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    say("postroom serve stopped")
    return 0


async def _run(
    app: object,
    sock: socket.socket,
    host: str,
    port: int,
    config: Configuration,
    capture: tuple[CaptureService, socket.socket] | None,
) -> None:
    server = uvicorn.Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            log_config=None,
            access_log=False,  # a URL may hold what should not be logged
            proxy_headers=True,
            forwarded_allow_ips=list(config.settings.web.trusted_proxies),
            server_header=False,
            timeout_graceful_shutdown=GRACE,
            lifespan="off",
        )
    )
    if capture is not None:
        await capture[0].start(capture[1])
    # What start-up loaded (FastAPI, SQLAlchemy, pydantic's models) stays out of the
    # collector's way: full collections then walk only what requests allocate.
    gc.freeze()
    try:
        await server.serve(sockets=[sock])
    finally:
        if capture is not None:
            await capture[0].stop()
            capture[1].close()


def _announce(
    config: Configuration, runtime: Runtime, password: str | None, *, worker_name: str | None
) -> None:
    url = console_url(config)
    say(f"postroom serve: console at {url}  (API: {url.removesuffix('/console/')}/api/docs)")
    if password is not None:
        say(
            f"  first login: user {ROOT_USERNAME}, password {password}  (shown this once; "
            f"change it under Users, or with `postroom user passwd {ROOT_USERNAME}`)"
        )
    else:
        say("  log in as an admin with a console password (`postroom user passwd USER` sets one)")
    say(f"  home: {config.home.path}; database {shown_database(config)}")
    if worker_name is not None:
        say(f"  delivery worker {worker_name}: {describe_route(runtime.config)}")
    else:
        say("  no delivery worker here (--no-worker): run `postroom worker` next to it")
    say("  stop with Ctrl-C or SIGTERM (messages in flight finish first)")
