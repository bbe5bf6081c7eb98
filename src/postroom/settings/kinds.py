"""Kinds of setting values: how each is parsed, shown, and stored in postroom.toml."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from postroom.addresses import parse_address
from postroom.headers import check_header_name, check_header_value
from postroom.settings.faults import parse_faults, show_faults
from postroom.settings.values import (
    MASK,
    HostPort,
    RateLimit,
    Secret,
    check_port,
    parse_bool,
    parse_duration,
    parse_host_port,
    parse_int,
    parse_list,
    parse_rate,
    parse_size,
    parse_str,
)


@dataclass(frozen=True, slots=True)
class Kind:
    """A value kind: ``parse`` raises ValueError with what was expected."""

    name: str
    parse: Callable[[Any], Any]
    show: Callable[[Any], str] = str
    to_toml: Callable[[Any], Any] = lambda value: value
    to_json: Callable[[Any], Any] = lambda value: value


def _show_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _show_size(size: int) -> str:
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def _whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _parse_secret(raw: Any) -> Secret:
    if isinstance(raw, Secret):
        return raw
    if not isinstance(raw, str):
        raise ValueError("a secret is text")
    if raw == MASK:
        raise ValueError(f"{MASK} is the mask shown for a secret, not a value")
    return Secret(raw)


def _parse_choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = parse_str(raw).lower()
        if text not in choices:
            raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _parse_positive_int(raw: Any) -> int:
    value = parse_int(raw)
    if value < 1:
        raise ValueError(f"{value} is too small: use 1 or more")
    return value


def _parse_port(raw: Any) -> int:
    return check_port(parse_int(raw))


def _parse_address(*, allow_name: bool, allow_empty: bool) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = parse_str(raw)
        if not text and allow_empty:
            return ""
        try:
            # As text, names unencoded: compose encodes them itself and refuses a value
            # already RFC 2047-encoded (which str(), formataddr, would make of it).
            return parse_address(text, allow_name=allow_name).shown
        except Exception as exc:
            raise ValueError(str(exc)) from None

    return parse


def _parse_address_list(raw: Any) -> tuple[str, ...]:
    single = _parse_address(allow_name=True, allow_empty=False)
    return tuple(single(item) for item in parse_list(raw))


def _parse_header_text(raw: Any) -> str:
    text = parse_str(raw)
    try:
        check_header_value("value", text)
    except Exception as exc:
        raise ValueError(str(exc)) from None
    return text


def _parse_header_name(raw: Any) -> str:
    text = parse_str(raw)
    try:
        return check_header_name(text)
    except Exception as exc:
        raise ValueError(str(exc)) from None


#: The built-in transports, by their mail.transport names.
TRANSPORT_NAMES = ("smtp", "graph", "log", "file", "memory", "capture")
_TRANSPORT = re.compile("|".join(TRANSPORT_NAMES) + r"|[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _parse_transport(raw: Any) -> str:
    text = parse_str(raw)
    if not _TRANSPORT.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a transport: use {', '.join(TRANSPORT_NAMES)} or package.module:Class"
        )
    return text


_URL_PASSWORD = re.compile(r"^([a-z][\w+.-]*://[^:/@]*:).*@", re.IGNORECASE)


def mask_url_password(url: str) -> str:
    """``scheme://user:********@host/...``: a URL as a person may see it (up to the
    last ``@``: an unencoded ``@`` in a password is masked too)."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", url)


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")  # _: internal names


def _parse_host(raw: Any) -> str:
    """A host name (letters, digits, hyphens in dot-separated labels; an IDN is turned
    into its ASCII form) or an IP address (IPv6 with or without brackets)."""
    text = parse_str(raw)
    if not text:
        raise ValueError("a host name cannot be empty: give e.g. smtp.example.org or 127.0.0.1")
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    name = text.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if not ascii_name or len(ascii_name) > 253 or not all(_HOST_LABEL.fullmatch(x) for x in labels):
        raise ValueError(
            f"{text!r} is not a host name or IP address: use letters, digits and hyphens "
            "between dots, e.g. smtp.example.org, or an address such as 192.0.2.10"
        )
    return ascii_name.lower()


def _parse_public_url(raw: Any) -> str:
    text = parse_str(raw).rstrip("/")
    if text and not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", text):
        raise ValueError(
            f"{text!r} is not a base URL: use http(s)://HOST[:PORT][/PATH], "
            "e.g. https://mail.example.org (empty: http://web.bind)"
        )
    return text


def _parse_database_url(raw: Any) -> str:
    text = parse_str(raw)
    if text and not re.match(r"(sqlite|postgresql)(\+\w+)?://", text):
        raise ValueError(
            f"{mask_url_password(text)!r} is not a database URL: use sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST/DB (empty for SQLite under the home folder)"
        )
    return text


BOOL = Kind("bool", parse_bool, show=lambda v: "true" if v else "false")
INT = Kind("int", _parse_positive_int)
PORT = Kind("port", _parse_port)
TEXT = Kind("text", parse_str)
HOST = Kind("host", _parse_host)
HEADER_TEXT = Kind("text", _parse_header_text)
HEADER_NAME = Kind("header name", _parse_header_name)
SECRET = Kind(
    "secret",
    _parse_secret,
    show=lambda v: MASK if v else "",
    to_toml=lambda v: v.reveal(),
    to_json=lambda v: MASK if v else "",
)
DURATION = Kind("duration", parse_duration, show=_show_duration, to_toml=_whole, to_json=_whole)
DURATION_OR_ZERO = Kind(
    "duration",
    lambda raw: parse_duration(raw, zero=True),
    show=_show_duration,
    to_toml=_whole,
    to_json=_whole,
)
SIZE = Kind("size", parse_size, show=_show_size)
HOST_PORT = Kind("host:port", parse_host_port, to_toml=str, to_json=str)
RATE = Kind(
    "rate",
    parse_rate,
    show=lambda v: "" if v is None else str(v),
    to_toml=lambda v: "" if v is None else str(v),
    to_json=lambda v: None if v is None else str(v),
)
LIST = Kind("list", parse_list, show=", ".join, to_toml=list, to_json=list)
ADDRESS_OPTIONAL = Kind("address", _parse_address(allow_name=False, allow_empty=True))
MAILBOX = Kind("address", _parse_address(allow_name=True, allow_empty=False))
MAILBOX_OPTIONAL = Kind("address", _parse_address(allow_name=True, allow_empty=True))
ADDRESS_LIST = Kind("address list", _parse_address_list, show=", ".join, to_toml=list, to_json=list)
TRANSPORT = Kind("transport", _parse_transport)
DATABASE_URL = Kind("url", _parse_database_url, show=mask_url_password, to_json=mask_url_password)
PUBLIC_URL = Kind("url", _parse_public_url)
FAULTS = Kind(
    "fault rules (JSON)",
    parse_faults,
    show=show_faults,
    to_toml=lambda rules: [rule.to_json() for rule in rules],
    to_json=lambda rules: [rule.to_json() for rule in rules],
)


def choice(*choices: str) -> Kind:
    return Kind("one of " + "|".join(choices), _parse_choice(choices))


__all__ = ["HostPort", "Kind", "RateLimit", "Secret", "choice"]
