"""Value types of settings and the parsers that read them from text or TOML.

Each parser takes the raw value (a string from the command line or environment, or
a TOML value from the file) and returns the typed value, or raises ``ValueError``
whose text says what was expected; the loader adds the key and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MASK = "********"


class Secret:
    """A secret string whose repr and str are masked, so it cannot leak by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call this only where the value is really used."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})" if self._value else "Secret('')"

    def __str__(self) -> str:
        return MASK if self._value else ""


@dataclass(frozen=True, slots=True)
class HostPort:
    """An address to bind or connect to: ``host:port`` (IPv6 as ``[::1]:port``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` messages per ``per_seconds``."""

    count: int
    per_seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.per_seconds

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}.get(self.per_seconds)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.per_seconds:g}s"


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ValueError(f"{raw!r} is not a boolean: use true/false, yes/no or 1/0")


def parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
        return int(raw)
    raise ValueError(f"{raw!r} is not a whole number")


def parse_str(raw: Any) -> str:
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool | int | float):
        return str(raw)
    raise ValueError(f"{raw!r} is not text")


_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(raw: Any, *, zero: bool = False) -> float:
    """Seconds, as a number or with a suffix: ``30``, ``30s``, ``10m``, ``2h``, ``5d``;
    more than 0 (or, with ``zero``, 0 or more)."""
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a duration")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and (
        match := re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*", raw.lower())
    ):
        value = float(match.group(1)) * _DURATION_UNITS[match.group(2) or ""]
    else:
        raise ValueError(f"{raw!r} is not a duration: use seconds (30) or 30s, 10m, 2h, 5d")
    if value < 0 or (value == 0 and not zero):
        least = "0 or more" if zero else "more than 0"
        raise ValueError(f"{raw!r} is not {least}: give a duration such as 30s or 5m")
    return value


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_size(raw: Any) -> int:
    """Bytes, as a number or with a unit: ``25 MB``, ``10MiB``, ``500kb``."""
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a size")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and (
        match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", raw.lower())
    ):
        if match.group(2) not in _SIZE_UNITS:
            raise ValueError(f"{raw!r} has an unknown unit: use B, KB, MB, GB (or KiB, MiB, GiB)")
        value = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"{raw!r} is not a size: use bytes (1000000) or 25 MB, 10 MiB")
    if value < 0:
        raise ValueError(f"{raw!r} is negative: a size is 0 or more")
    return value


def parse_list(raw: Any) -> tuple[str, ...]:
    """A list: a TOML array, a JSON array, or comma-separated text."""
    items: Sequence[Any]
    if isinstance(raw, list | tuple):
        items = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{raw!r} is not a valid JSON array ({exc.msg})") from None
            if not isinstance(decoded, list):
                raise ValueError(f"{raw!r} is not a JSON array")
            items = decoded
        else:
            items = text.split(",") if text else []
    else:
        raise ValueError(f"{raw!r} is not a list: use comma-separated values or a JSON array")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"list item {item!r} is not text")
        if item.strip():
            out.append(item.strip())
    return tuple(out)


def parse_host_port(raw: Any) -> HostPort:
    text = parse_str(raw)
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)", text)
    if not match:
        raise ValueError(f"{text!r} is not HOST:PORT (IPv6 as [::1]:PORT)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    check_port(port)
    return HostPort(host, port)


def check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError(f"{port} is not a port: use 1-65535")
    return port


def parse_rate(raw: Any) -> RateLimit | None:
    """``50/min``, ``10/s``, ``1000/h``, ``20000/d``; empty for no limit."""
    text = parse_str(raw).lower().replace(" ", "")
    if not text or text in {"0", "none", "off"}:
        return None
    match = re.fullmatch(r"(\d+)/(\d*)(s|sec|second|m|min|minute|h|hour|d|day)", text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{raw!r} is not a rate: use COUNT/UNIT such as 50/min, 10/s, 1000/h")
    unit = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[match.group(3)[0]]
    return RateLimit(int(match.group(1)), unit * int(match.group(2) or 1))
