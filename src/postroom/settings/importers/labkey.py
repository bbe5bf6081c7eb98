"""LabKey: the ``mail.smtp*`` lines of ``application.properties``, or the mail
``Resource`` of an older ``labkey.xml``.

LabKey spells its keys loosely over the years (``mail.smtpHost``, the template's
``mail.smtpstartTlsEnable``, older ``mail.smtp.host``), so keys are matched without
case and without the dots after ``mail.``; where two spellings of one key are both
present, LabKey's own camel-case one wins. Its ``mail.smtpFrom`` is the envelope
sender (JavaMail's ``mail.smtp.from``) and, as LabKey's documentation says, the
address its automatic mail appears from: it sets mail.envelope_from and mail.from.
LabKey logs in only over SSL or STARTTLS, and its template's ``mail.smtpUser=Anonymous``
means no login: a user name is imported only when LabKey would have used it.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree.ElementTree import ParseError

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from postroom.errors import ConfigImportError
from postroom.settings.importers.base import (
    ImportPlan,
    ignore_unrelated,
    parse_properties,
    read_text,
)
from postroom.settings.importers.javamail import JavaMailKeys, map_javamail

KIND = "labkey"

_DIRECT = {
    "mail.smtphost": "mail.host",
    "mail.smtpuser": "mail.username",
    "mail.smtppassword": "mail.password",
    "mail.smtpfrom": "mail.envelope_from",
}
_JAVAMAIL = {
    "mail.smtpport": "port",
    "mail.transportprotocol": "protocol",
    "mail.smtpstarttlsenable": "starttls",
    "mail.smtpstarttlsrequired": "starttls_required",
    "mail.smtpsocketfactoryclass": "factory_class",
    "mail.smtpsocketfactoryport": "factory_port",
    "mail.smtpsocketfactoryfallback": "factory_fallback",
    "mail.smtpauth": "auth",
    "mail.debug": "debug",
    "mail.smtpconnectiontimeout": "timeout",
    "mail.smtptimeout": "timeout",
    "mail.smtpwritetimeout": "timeout",
}
_PLACEHOLDER = re.compile(r"@@\w*@@")
_NAME_ADDR = re.compile(r"<([^<>]+)>\s*$")

HINTS = {
    "mail.security": "set mail.smtpStartTlsEnable=true (or mail.smtpSocketFactoryClass="
    "javax.net.ssl.SSLSocketFactory on port 465) in the file and import again",
}


def normalise(key: str) -> str:
    """``mail.smtpStartTlsEnable``, ``mail.smtpstartTlsEnable`` and
    ``mail.smtp.starttls.enable`` all become ``mail.smtpstarttlsenable``."""
    lowered = key.strip().lower()
    if lowered.startswith("mail."):
        return "mail." + lowered[5:].replace(".", "")
    return lowered


def _pick(plan: ImportPlan, props: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Normalised key -> (the spelling that wins, its value); the losers are reported."""
    chosen: dict[str, tuple[str, str]] = {}
    for key in sorted(props, key=lambda k: k.count(".")):
        name = normalise(key)
        if name not in _DIRECT and name not in _JAVAMAIL:
            continue
        if name in chosen:
            plan.ignore(key, f"another spelling of {chosen[name][0]}, which wins")
        elif _PLACEHOLDER.fullmatch(props[key].strip()):
            plan.ignore(key, "a template placeholder that was never filled in")
        elif not props[key].strip():
            plan.ignore(key, "empty: left as it is")
        else:
            chosen[name] = (key, props[key])
    return chosen


def read_labkey(path: Path) -> dict[str, str]:
    """``application.properties``, or the ``mail.*`` attributes of the
    ``javax.mail.Session`` Resource in a ``labkey.xml`` (Tomcat context) file."""
    text = read_text(path)
    if not text.lstrip().startswith("<"):
        return parse_properties(text, path=str(path))
    try:
        root = ElementTree.fromstring(text)
    except (ParseError, DefusedXmlException) as exc:
        raise ConfigImportError(
            f"looks like XML but does not parse ({exc}); give labkey.xml as it is, "
            "or application.properties",
            path=str(path),
        ) from None
    for element in root.iter():
        if element.tag.rpartition("}")[2] != "Resource":
            continue
        attributes = element.attrib
        if attributes.get("type") == "javax.mail.Session" or attributes.get("name", "").endswith(
            "mail/Session"
        ):
            return {k: v for k, v in attributes.items() if k.lower().startswith("mail.")}
    raise ConfigImportError(
        'holds no <Resource type="javax.mail.Session" ...> element with LabKey\'s mail '
        "settings; give labkey.xml or application.properties",
        path=str(path),
    )


def import_labkey(path: Path) -> ImportPlan:
    """Map LabKey's SMTP properties onto postroom's settings."""
    props = read_labkey(path)
    plan = ImportPlan(KIND, path, hints=dict(HINTS))
    chosen = _pick(plan, props)
    javamail = JavaMailKeys()
    logs_in = _logs_in(chosen)
    for name, (key, value) in chosen.items():
        if name in _JAVAMAIL:
            javamail.set(_JAVAMAIL[name], key, value)
        elif name == "mail.smtpfrom":
            _map_from(plan, key, value.strip())
        elif name in ("mail.smtpuser", "mail.smtppassword") and logs_in is not None:
            plan.ignore(key, logs_in)
        else:
            secret = name == "mail.smtppassword"
            plan.map(key, _DIRECT[name], value.strip(), secret=secret)
    empty_host = [k for k in props if normalise(k) == "mail.smtphost" and not props[k].strip()]
    if "mail.smtphost" in chosen:
        host_key = chosen["mail.smtphost"][0]
        plan.map(host_key, "mail.enabled", "true", note="LabKey sends once an SMTP host is set")
    elif empty_host:
        plan.map(empty_host[0], "mail.enabled", "false", note="no SMTP host: LabKey sends no mail")
    if "mail.smtpuser" in chosen and logs_in is None:
        javamail.username_key = chosen["mail.smtpuser"][0]
    map_javamail(plan, javamail)
    rest = [k for k in props if normalise(k) not in _DIRECT and normalise(k) not in _JAVAMAIL]
    ignore_unrelated(plan, rest, reason="no postroom equivalent")
    return plan


def _logs_in(chosen: dict[str, tuple[str, str]]) -> str | None:
    """None when LabKey would log in with the user and password given; else why not
    (then neither is imported: postroom logs in whenever mail.username is set)."""

    def value(name: str) -> str:
        return chosen.get(name, ("", ""))[1].strip().lower()

    if not value("mail.smtpuser"):
        return None
    if value("mail.smtpuser") == "anonymous" and not value("mail.smtppassword"):
        return "Anonymous with no password: LabKey's template default, which means no login"
    tls = (
        value("mail.smtpstarttlsenable") == "true"
        or value("mail.smtpsocketfactoryclass").endswith("sslsocketfactory")
        or value("mail.transportprotocol") == "smtps"
    )
    if not tls:
        return "LabKey logs in only over SSL or STARTTLS, and neither is on: it sent without login"
    return None


def _map_from(plan: ImportPlan, key: str, value: str) -> None:
    """smtpFrom: the address LabKey's automatic mail appears from, and the envelope sender."""
    match = _NAME_ADDR.search(value)
    plan.map(key, "mail.from", value, note="the address LabKey's automatic mail is from")
    plan.map(
        key,
        "mail.envelope_from",
        match.group(1).strip() if match else value,
        note="and the envelope sender (JavaMail's mail.smtp.from)",
    )
