"""What a report tells of the request: method, URL, headers, query, form, user, client.

Read from a WSGI environ or an ASGI scope (plus the body bytes the middleware kept),
never from a framework's own request object, so it works the same under Flask,
Django, Starlette and FastAPI.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

FORM_TYPE = "application/x-www-form-urlencoded"
BODY_KEPT = 64 * 1024  # bytes of a form body kept for the report


@dataclass(frozen=True)
class RequestInfo:
    method: str
    url: str
    path: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    user: str = ""
    client: str = ""
    route: str = ""  # the route pattern where the framework tells it (/users/{id})

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), "")

    @property
    def internal(self) -> bool:
        """INTERNAL IP in the subject: the client is on loopback or a private network."""
        try:
            address = ipaddress.ip_address(self.client)
        except ValueError:
            return False
        return address.is_private or address.is_loopback


def _form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    if not content_type.lower().startswith(FORM_TYPE) or not body:
        return []
    text = body[:BODY_KEPT].decode("utf-8", "replace")
    return parse_qsl(text, keep_blank_values=True)


def from_wsgi(environ: Mapping[str, Any], body: bytes = b"") -> RequestInfo:
    from wsgiref.util import request_uri

    headers = [
        (key[5:].replace("_", "-").title(), str(value))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers.append((key.replace("_", "-").title(), str(environ[key])))
    try:
        url = request_uri(dict(environ))
    except (KeyError, TypeError):
        url = str(environ.get("PATH_INFO", ""))
    user = environ.get("postroom.user") or environ.get("REMOTE_USER") or ""
    return RequestInfo(
        method=str(environ.get("REQUEST_METHOD", "")),
        url=url,
        path=str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")),
        headers=headers,
        query=parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True),
        form=_form(str(environ.get("CONTENT_TYPE", "")), body),
        user=str(user),
        client=str(environ.get("REMOTE_ADDR", "")),
    )


def from_asgi(scope: Mapping[str, Any], body: bytes = b"") -> RequestInfo:
    raw_headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or []
    headers = [(k.decode("latin-1").title(), v.decode("latin-1")) for k, v in raw_headers]
    host = next((v for k, v in headers if k.lower() == "host"), "")
    if not host and scope.get("server"):
        server_host, server_port = scope["server"]
        host = f"{server_host}:{server_port}"
    path = str(scope.get("root_path", "")) + str(scope.get("path", ""))
    query_bytes: bytes = scope.get("query_string") or b""
    query = query_bytes.decode("latin-1")
    url = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
    client = scope.get("client") or ("", 0)
    route = scope.get("route")
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    return RequestInfo(
        method=str(scope.get("method", "")),
        url=url,
        path=path,
        headers=headers,
        query=parse_qsl(query, keep_blank_values=True),
        form=_form(content_type, body),
        user=_asgi_user(scope),
        client=str(client[0]),
        route=str(getattr(route, "path", "") or ""),
    )


def _asgi_user(scope: Mapping[str, Any]) -> str:
    if scope.get("postroom.user"):
        return str(scope["postroom.user"])
    user = scope.get("user")  # Starlette's AuthenticationMiddleware
    if user is None:
        return ""
    name = getattr(user, "display_name", "") or getattr(user, "username", "")
    authenticated = getattr(user, "is_authenticated", True)
    return str(name) if authenticated else ""
