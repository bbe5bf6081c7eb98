"""What every response of the service gets: a Host check and security headers.

The Host check answers 400 to a name the service does not serve, so that a page on
another site cannot reach it through DNS rebinding (a name that resolves to
127.0.0.1). Loopback names, web.bind's host and web.public_url's are always served;
web.allowed_hosts adds more (``.example.org`` takes its subdomains, ``*`` any).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postroom.service.errors import error_response
from postroom.settings import Configuration

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")  # noqa: S104 - names, not a bind

#: Pages: scripts and styles only from here; images from here or inline. A mail's HTML,
#: shown in a sandboxed srcdoc frame, inherits this (no script, no remote image) and
#: keeps its inline styles.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def served_hosts(config: Configuration) -> tuple[str, ...]:
    web = config.settings.web
    names = [*LOOPBACK_NAMES, *web.allowed_hosts]
    bind = web.bind.host.strip("[]")
    if bind not in WILDCARD_BINDS:
        names.append(bind)
    if web.public_url:
        names.append(urlsplit(web.public_url).hostname or "")
    return tuple(dict.fromkeys(name.lower() for name in names if name))


def host_allowed(host_header: str, served: Iterable[str]) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8025
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    for name in served:
        if name == "*" or host == name:
            return True
        if name.startswith(".") and (host == name[1:] or host.endswith(name)):
            return True
    return False


class Guards:
    def __init__(self, app: ASGIApp, *, served: tuple[str, ...]) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if not host_allowed(host, self.served):
            await error_response(
                400,
                "bad_host",
                f"this service does not answer to the host name {host[:100]!r}; "
                "add it to web.allowed_hosts if it is yours",
            )(scope, receive, send)
            return
        path = str(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Content-Security-Policy", PAGE_POLICY)
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)
