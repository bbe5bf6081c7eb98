"""E-mail addresses: parsed, checked with email-validator, normalised for SMTP.

IDN domains become punycode so that headers and the envelope stay ASCII; a
non-ASCII local part is kept and marks the address as needing SMTPUTF8, which the
transport checks against what the server offers. Pure and low in the layers:
settings check their address values with it, composing checks every recipient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formataddr
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from postroom.errors import AddressError
from postroom.headers import check_header_value

_NAME_ADDR = re.compile(r"^\s*(.*?)\s*<([^<>]*)>\s*$", re.DOTALL)
# Hosts that are not public domain names but are fine on a server's own network.
_LOCAL_HOSTS = {"localhost", "localhost.localdomain"}
# Parsed addresses kept: validating one costs ~20 µs, and mail goes to the same people.
_CACHED = 4096
_CACHED_LENGTH = 500
# A display name with one of these is shown as a quoted string.
_SPECIALS = frozenset('()<>@,:;."[]')


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: display name (may be empty) and the normalised addr-spec."""

    addr_spec: str
    name: str = ""
    smtputf8: bool = False

    @property
    def domain(self) -> str:
        return self.addr_spec.rpartition("@")[2]

    @property
    def shown(self) -> str:
        """As a reader shows it: str() of the stdlib's parsed header, names decoded."""
        if not self.name:
            return self.addr_spec
        name = self.name
        if not _SPECIALS.isdisjoint(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.addr_spec}>"

    def with_name(self, name: str) -> Address:
        check_header_value("display name", name)
        return Address(self.addr_spec, name, self.smtputf8)

    def __str__(self) -> str:
        return formataddr((self.name, self.addr_spec)) if self.name else self.addr_spec


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _check_bare_name(name: str, text: str) -> None:
    """Refuse an unquoted display name that a reader could split another way.

    ``a(b <bob@example.org>`` or ``x"y <bob@example.org>`` may be split differently by
    another parser (the CVE-2023-27043 class): a name with a ``<``, ``>`` or ``"``, or
    parentheses that do not pair up, is refused, not guessed at.
    """
    if "<" in name or ">" in name:
        # "A <a@x> B <b@x>" would otherwise silently become one mailbox, b@x.
        raise AddressError(
            f"{text!r} holds more than one address; give one address per entry "
            "(quote a display name that has < or > in it)",
            address=text,
        )
    depth = 0
    for char in name:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if '"' in name or depth != 0:
        raise AddressError(
            f"{text!r}: the name before <...> holds a quote or unpaired parentheses, so "
            "another program could read it as another address; give the address alone, "
            'or put the name in double quotes ("Name" <addr>)',
            address=text,
        )


def parse_address(text: str, *, allow_name: bool = True) -> Address:
    """Parse ``addr`` or ``Name <addr>``; raise AddressError naming the problem.

    Pure, so memoised: the same text gives the same (frozen) Address. Refusals are
    not kept; they raise again each time.
    """
    if len(text) > _CACHED_LENGTH:  # a huge display name is not worth keeping
        return _parse_address(text, allow_name)
    return _parse_address_cached(text, allow_name)


def _parse_address(text: str, allow_name: bool) -> Address:
    check_header_value("address", text)
    name = ""
    spec = text.strip()
    if match := _NAME_ADDR.match(text):
        if not allow_name:
            raise AddressError(
                f"{text!r}: give the bare address here, without a display name", address=text
            )
        raw_name, spec = match.group(1).strip(), match.group(2).strip()
        name = _unquote(raw_name)
        if name == raw_name:
            _check_bare_name(name, text)
        if "@" in name:
            raise AddressError(
                f"{text!r}: the display name holds an @, so it reads as another address "
                "than the one mail goes to; give the address alone, or a name without @",
                address=text,
            )
    if not spec:
        raise AddressError(f"{text!r} is not an e-mail address: it is empty", address=text)
    if fast := _plain_address(spec):
        return Address(addr_spec=fast, name=name)
    local, at, domain = spec.rpartition("@")
    local_host = at and domain.lower() in _LOCAL_HOSTS
    try:
        checked = validate_email(
            f"{local}@example.com" if local_host else spec,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=True,
        )
    except EmailNotValidError as exc:
        if spec.count("@") > 1:
            raise AddressError(
                f"{spec!r} is not one e-mail address; give one address per entry", address=spec
            ) from None
        raise AddressError(f"{spec!r} is not a valid e-mail address: {exc}", address=spec) from None
    if local_host:
        addr_spec = f"{checked.local_part}@{domain.lower()}"
    else:
        addr_spec = f"{checked.local_part}@{checked.ascii_domain}"
    return Address(addr_spec=addr_spec, name=name, smtputf8=bool(checked.smtputf8))


_parse_address_cached = lru_cache(maxsize=_CACHED)(_parse_address)

# The everyday address: a dot-atom local part at an ASCII host name whose top-level
# domain is letters. email-validator accepts every such address unchanged except for
# lower-casing the domain (a property test pins this), so it is checked here at a
# tenth of the cost; anything else (IDN, quoted, literal, odd) goes to email-validator.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})")
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def _plain_address(spec: str) -> str | None:
    match = _PLAIN.fullmatch(spec)
    if match is None or len(spec) > 254 or len(match.group(1)) > 64:
        return None
    domain = match.group(2).lower()
    if len(domain) > 253 or "--" in domain:  # xn-- and other reserved label forms
        return None
    if any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE):
        return None
    return f"{match.group(1)}@{domain}"


def parse_address_list(items: list[str] | tuple[str, ...] | str) -> tuple[Address, ...]:
    """Parse a list of addresses (a string is taken as a one-item list)."""
    if isinstance(items, str):
        items = [items]
    return tuple(parse_address(item) for item in items)
