"""Secrets out of error reports, by name and by value, default-deny (pure).

By name: headers that carry credentials are always masked, and any header, form field,
query parameter or local variable whose name contains one of ``reports.scrub_names``.
By value, wherever text appears (URL, exception message, traceback, locals): passwords
inside URLs, bearer and postroom tokens, JWTs, card numbers (Luhn-checked) and the
deployment's own secrets (mail.password, the database password) in any spelling of
them that a report could show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

MASK = "********"
ALWAYS_MASKED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)@")
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+|=)([A-Za-z0-9._~+/=-]{8,})")
_POSTROOM_TOKEN = re.compile(r"\bpr_[A-Za-z0-9_-]{8,}")
_JWT = re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}")
_DIGITS = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return 13 <= len(digits) <= 19 and total % 10 == 0


def _card(match: re.Match[str]) -> str:
    return MASK if _luhn(match.group(0)) else match.group(0)


@dataclass(frozen=True)
class Scrubber:
    """``names``: substrings (any case) of names whose values are masked; ``secrets``:
    literal values never to show (masked in every spelling: as is, URL-quoted)."""

    names: tuple[str, ...]
    secrets: tuple[str, ...] = ()
    _spellings: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        spellings: set[str] = set()
        for secret in self.secrets:
            if len(secret) >= 4:  # shorter would mask ordinary text
                spellings.update({secret, quote(secret, safe=""), quote_plus(secret)})
        ordered = tuple(sorted(spellings, key=len, reverse=True))
        object.__setattr__(self, "_spellings", ordered)

    def secret_name(self, name: str) -> bool:
        lowered = name.lower()
        return any(part and part.lower() in lowered for part in self.names)

    def text(self, value: str) -> str:
        """``value`` with every secret-looking part masked."""
        for secret in self._spellings:
            if secret in value:
                value = value.replace(secret, MASK)
        value = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", value)
        value = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, value)
        value = _POSTROOM_TOKEN.sub(MASK, value)
        value = _JWT.sub(MASK, value)
        return _DIGITS.sub(_card, value)

    def header(self, name: str, value: str) -> str:
        if name.lower() in ALWAYS_MASKED_HEADERS or self.secret_name(name):
            return MASK
        return self.text(value)

    def pairs(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Form fields, query parameters or locals: masked by name, then by value."""
        return [
            (self.text(name), MASK if self.secret_name(name) else self.text(value))
            for name, value in items
        ]

    def headers(self, items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(name, self.header(name, value)) for name, value in items]


def secrets_of(settings_values: Mapping[str, object], keys: Sequence[str]) -> tuple[str, ...]:
    """The deployment's own secrets among ``keys`` (their plain values)."""
    found = []
    for key in keys:
        value = settings_values.get(key)
        if value:
            found.append(str(value))
    return tuple(found)
