"""LabKey: the ``mail.smtp*`` lines of ``application.properties``.

LabKey spells its keys loosely over the years (``mail.smtpHost``, the template's
``mail.smtpstartTlsEnable``, older ``mail.smtp.host``), so keys are matched without
case and without the dots after ``mail.``; where two spellings of one key are both
present, LabKey's own camel-case one wins. Its ``mail.smtpFrom`` is the envelope
sender (JavaMail's ``mail.smtp.from``), hence mail.envelope_from, not mail.from.
"""

from __future__ import annotations

import re
from pathlib import Path

from postroom.settings.importers.base import ImportPlan, ignore_unrelated, read_properties
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


def import_labkey(path: Path) -> ImportPlan:
    """Map LabKey's SMTP properties onto postroom's settings."""
    props = read_properties(path)
    plan = ImportPlan(KIND, path, hints=dict(HINTS))
    chosen = _pick(plan, props)
    javamail = JavaMailKeys()
    for name, (key, value) in chosen.items():
        if name in _JAVAMAIL:
            javamail.set(_JAVAMAIL[name], key, value)
        elif name == "mail.smtpfrom" and (match := _NAME_ADDR.search(value)):
            plan.map(
                key,
                "mail.envelope_from",
                match.group(1).strip(),
                note="the envelope sender is a bare address: the name is dropped",
            )
        else:
            note = "LabKey's smtpFrom is the envelope sender" if name == "mail.smtpfrom" else ""
            secret = name == "mail.smtppassword"
            plan.map(key, _DIRECT[name], value.strip(), secret=secret, note=note)
    empty_host = [k for k in props if normalise(k) == "mail.smtphost" and not props[k].strip()]
    if "mail.smtphost" in chosen:
        host_key = chosen["mail.smtphost"][0]
        plan.map(host_key, "mail.enabled", "true", note="LabKey sends once an SMTP host is set")
    elif empty_host:
        plan.map(empty_host[0], "mail.enabled", "false", note="no SMTP host: LabKey sends no mail")
    if "mail.smtpuser" in chosen:
        javamail.username_key = chosen["mail.smtpuser"][0]
    map_javamail(plan, javamail)
    rest = [k for k in props if normalise(k) not in _DIRECT and normalise(k) not in _JAVAMAIL]
    ignore_unrelated(plan, rest, reason="no postroom equivalent")
    return plan
