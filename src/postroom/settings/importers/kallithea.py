"""Kallithea: the mail settings of its PasteDeploy ``.ini`` (production.ini, my.ini).

The file is read with interpolation off: ``%(here)s`` and log formats like
``%(asctime)s`` are not ours to expand, and expanding them could fail on keys we do
not even import. Settings live in ``[DEFAULT]`` and ``[app:main]``; ``[app:main]``
wins, and its ``set key = value`` lines override ``[DEFAULT]`` as PasteDeploy does.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

from postroom.errors import ConfigImportError
from postroom.settings.importers.base import (
    NOT_MAIL,
    ImportPlan,
    ignore_unrelated,
    parse_peer_bool,
    read_text,
)

KIND = "kallithea"

_DIRECT = {
    "smtp_port": "mail.port",
    "smtp_username": "mail.username",
    "smtp_password": "mail.password",
    "app_email_from": "mail.from",
    "email_prefix": "mail.subject_prefix",
    "error_email_from": "mail.error_from",
}
_HANDLED = {*_DIRECT, "smtp_server", "smtp_use_ssl", "smtp_use_tls", "smtp_auth"}
_HANDLED |= {"email_to", "debug"}
_MECHANISMS = {"plain", "login", "cram-md5"}

HINTS = {
    "mail.security": "set smtp_use_tls = true (STARTTLS, port 587) or smtp_use_ssl = true "
    "(port 465) in the file and import again",
}


def _settings(path: Path) -> dict[str, str]:
    """``[DEFAULT]`` overlaid with ``[app:main]``, ``set`` lines applied."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(read_text(path), source=str(path))
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        summary = str(exc).splitlines()[0]
        raise ConfigImportError(
            f"not a Kallithea .ini file ({summary}); give production.ini or my.ini",
            path=str(path),
            line=line,
        ) from None
    if not parser.has_section("app:main") and not parser.defaults():
        raise ConfigImportError(
            "has no [app:main] or [DEFAULT] section; give Kallithea's production.ini or my.ini",
            path=str(path),
        )
    found = dict(parser.defaults())
    if parser.has_section("app:main"):
        found.update(parser.items("app:main", raw=True))
    for key in [k for k in found if k.startswith("set ")]:
        found[key[4:].strip()] = found.pop(key)
    return found


def import_kallithea(path: Path) -> ImportPlan:
    """Map Kallithea's mail settings onto postroom's."""
    settings = _settings(path)
    plan = ImportPlan(KIND, path, hints=dict(HINTS))
    _server(plan, settings.get("smtp_server"))
    for key, ours in _DIRECT.items():
        value = settings.get(key)
        if value is None:
            continue
        if not value.strip():
            plan.ignore(key, "empty: left as it is")
        else:
            plan.map(key, ours, value.strip(), secret=key == "smtp_password")
    _security(plan, settings)
    if "smtp_auth" in settings:
        _auth(plan, settings["smtp_auth"])
    if "email_to" in settings:
        _admins(plan, settings["email_to"])
    if "debug" in settings:
        if parse_peer_bool(plan, "debug", settings["debug"]):
            plan.ignore(
                "debug",
                "true: Kallithea mails no error reports in debug mode; postroom's "
                "equivalent is web.debug=true, which turns error reports off: set it "
                "yourself if that is what you want",
            )
        else:
            plan.ignore("debug", "false: error reports stay on (web.debug=false, the default)")
    ignore_unrelated(plan, [key for key in settings if key not in _HANDLED], reason=NOT_MAIL[0])
    return plan


def _server(plan: ImportPlan, server: str | None) -> None:
    if server and server.strip():
        plan.map("smtp_server", "mail.host", server.strip())
        plan.map("smtp_server", "mail.enabled", "true", note="Kallithea sends once a server is set")
        return
    missing = "not in the file" if server is None else "empty"
    plan.map(
        "smtp_server",
        "mail.enabled",
        "false",
        note=f"{missing}: without an SMTP server Kallithea only logs its mail, so mail "
        "stays off (postroom logs every message)",
    )


def _security(plan: ImportPlan, settings: dict[str, str]) -> None:
    flags = {
        key: parse_peer_bool(plan, key, settings[key])
        for key in ("smtp_use_ssl", "smtp_use_tls")
        if key in settings
    }
    if not flags:
        return
    ssl, tls = flags.get("smtp_use_ssl", False), flags.get("smtp_use_tls", False)
    if ssl and tls:
        raise plan.error(
            "smtp_use_ssl and smtp_use_tls are both true → mail.security: they conflict; "
            "keep smtp_use_ssl (port 465) or smtp_use_tls (STARTTLS, port 587), not both"
        )
    if ssl or tls:
        chosen = "smtp_use_ssl" if ssl else "smtp_use_tls"
    else:
        chosen = "smtp_use_tls" if "smtp_use_tls" in flags else "smtp_use_ssl"
    security = "ssl" if ssl else "starttls" if tls else "none"
    plan.map(chosen, "mail.security", security)
    for key in flags:
        if key != chosen:
            plan.ignore(key, f"false: mail.security={security} comes from {chosen}")


def _auth(plan: ImportPlan, value: str) -> None:
    mechanism = value.strip().lower()
    if not mechanism:
        plan.ignore("smtp_auth", "empty: postroom picks the best mechanism the server offers")
    elif mechanism in _MECHANISMS:
        plan.map("smtp_auth", "mail.auth", mechanism)
    elif len(mechanism.split()) > 1:
        plan.ignore(
            "smtp_auth",
            f"{value.strip()}: several mechanisms; mail.auth=auto already picks the best of "
            "those the server offers",
        )
    else:
        plan.ignore(
            "smtp_auth",
            f"{value.strip()} is not a mechanism postroom offers (plain, login, cram-md5); "
            "mail.auth=auto picks the best the server offers",
        )


def _admins(plan: ImportPlan, value: str) -> None:
    """Comma- or space-separated addresses; ``Name <addr>`` entries keep their spaces."""
    addresses: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if "<" in part:
            addresses.append(part)
        else:
            addresses.extend(re.split(r"\s+", part) if part else [])
    if not addresses:
        plan.ignore("email_to", "empty: left as it is")
        return
    plan.map("email_to", "mail.admins", json.dumps(addresses, ensure_ascii=False))
