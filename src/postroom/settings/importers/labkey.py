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

LabKey's Microsoft Graph provider (2026, GraphTransportProvider) reads ``tenantId``,
``clientId``, ``clientSecret`` and ``fromAddress`` from the ``mail_graph`` startup-property
scope (``<LABKEY_HOME>/startup/*.properties``: ``mail_graph.tenantId;startup=...``) and,
only when that scope is empty, from servlet-context parameters ``mail.graph.tenantId`` etc.
It sends through Graph only when all four are set; then postroom sends through Graph too.
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


def _unusable(value: str) -> str | None:
    """Why a value is not imported (unfilled template placeholder, empty), or None."""
    if _PLACEHOLDER.fullmatch(value.strip()):
        return "a template placeholder that was never filled in"
    if not value.strip():
        return "empty: left as it is"
    return None


def _pick(plan: ImportPlan, props: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Normalised key -> (the spelling that wins, its value); the losers are reported."""
    chosen: dict[str, tuple[str, str]] = {}
    for key in sorted(props, key=lambda k: k.count(".")):
        name = normalise(key)
        if name not in _DIRECT and name not in _JAVAMAIL:
            continue
        if name in chosen:
            plan.ignore(key, f"another spelling of {chosen[name][0]}, which wins")
        elif (why := _unusable(props[key])) is not None:
            plan.ignore(key, why)
        else:
            chosen[name] = (key, props[key])
    return chosen


# -- Microsoft Graph -------------------------------------------------------------------

#: LabKey's Graph setting names (case matters: it looks them up exactly) -> our keys.
_GRAPH = {
    "tenantId": "mail.oauth.tenant_id",
    "clientId": "mail.oauth.client_id",
    "clientSecret": "mail.oauth.client_secret",
    "fromAddress": "mail.from",
}
_GRAPH_ALL = "tenantId, clientId, clientSecret and fromAddress"
#: Confirmed in LabKey's source: ``mail_graph.<name>[;startup|;bootstrap]`` (a startup
#: property; LabKey matches the scope without case) and ``mail.graph.<name>`` (the
#: servlet-context fallback, matched with case). ``context.mail_graph.<name>`` is NOT
#: confirmed: accepted in case LabKey's application.properties carries the scope there.
_GRAPH_KEY = re.compile(r"(?:(?i:(context\.)?(mail_graph))|(mail\.graph))\.([^;]*)(?:;(.*))?")
_MODIFIERS = (None, "startup", "bootstrap")


def _graph_key(key: str) -> tuple[int, str, str | None] | None:
    """(rank: lower wins, LabKey's setting name, modifier), or None if not a Graph key.

    ``;startup`` is read at every start; with no modifier (``bootstrap``) LabKey reads it
    only on a new install, so the ``;startup`` spelling wins where both are present.
    """
    match = _GRAPH_KEY.fullmatch(key.strip())
    if match is None:
        return None
    context, scope, _fallback, name, modifier = match.groups()
    if scope is None:
        rank = 3
    elif context:
        rank = 2
    else:
        rank = 0 if modifier == "startup" else 1
    return rank, name, modifier


def _graph_misnamed(name: str, modifier: str | None) -> str | None:
    """Why LabKey would not read a key in its Graph scope, or None if it would."""
    if modifier not in _MODIFIERS:
        return f"LabKey knows only the ;startup and ;bootstrap modifiers, not ;{modifier}"
    if name in _GRAPH:
        return None
    exact = [known for known in _GRAPH if known.lower() == name.lower()]
    if exact:
        return f"LabKey reads {exact[0]} exactly (case matters) and ignores this spelling"
    return f"not a Graph setting LabKey reads ({_GRAPH_ALL})"


def _pick_graph(plan: ImportPlan, props: dict[str, str]) -> dict[str, tuple[str, str]]:
    """LabKey's Graph name -> (the key that wins, its value), only when all four are set
    as LabKey needs them; otherwise every Graph key is reported and nothing is returned."""
    found = sorted((parts[0], key, parts[1:]) for key in props if (parts := _graph_key(key)))
    startup_scope = any(rank < 3 for rank, _, _ in found)
    chosen: dict[str, tuple[str, str]] = {}
    for rank, key, (name, modifier) in found:
        if (why := _graph_misnamed(name, modifier)) is not None:
            plan.ignore(key, why)
        elif rank == 3 and startup_scope:
            plan.ignore(key, "LabKey reads mail.graph.* only when no mail_graph.* key is set")
        elif name in chosen:
            plan.ignore(key, f"another spelling of {chosen[name][0]}, which wins")
        elif (why := _unusable(props[key])) is not None:
            plan.ignore(key, why)
        else:
            chosen[name] = (key, props[key].strip())
    missing = [name for name in _GRAPH if name not in chosen]
    if missing:
        for key, _ in chosen.values():
            plan.ignore(
                key,
                f"LabKey sends through Microsoft Graph only when {_GRAPH_ALL} are all set; "
                f"missing: {', '.join(missing)}",
            )
        return {}
    return {name: chosen[name] for name in _GRAPH}


def _use_graph(
    plan: ImportPlan, chosen: dict[str, tuple[str, str]], graph: dict[str, tuple[str, str]]
) -> None:
    """Map the four Graph settings; LabKey then has no use for SMTP keys without a host."""
    tenant_key = graph["tenantId"][0]
    if "mail.smtphost" in chosen:
        raise plan.error(
            f"{chosen['mail.smtphost'][0]} and {tenant_key} are both set: LabKey reports a "
            "configuration conflict when SMTP and Microsoft Graph are both configured; "
            "remove one of them from the file and import again"
        )
    for key, _ in chosen.values():
        plan.ignore(key, "SMTP setting, unused: LabKey sends through Microsoft Graph")
    for name, (key, value) in graph.items():
        note = "the mailbox LabKey sends as through Graph" if name == "fromAddress" else ""
        plan.map(key, _GRAPH[name], value, secret=name == "clientSecret", note=note)
    plan.map(tenant_key, "mail.transport", "graph", note="LabKey sends through Microsoft Graph")
    plan.map(tenant_key, "mail.oauth.provider", "microsoft", note="app-only client credentials")
    plan.map(tenant_key, "mail.enabled", "true", note="LabKey sends once Graph is configured")


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
    """Map LabKey's SMTP or Microsoft Graph properties onto postroom's settings."""
    props = read_labkey(path)
    plan = ImportPlan(KIND, path, hints=dict(HINTS))
    chosen = _pick(plan, props)
    graph = _pick_graph(plan, props)
    if graph:
        _use_graph(plan, chosen, graph)
    else:
        _use_smtp(plan, props, chosen)
    rest = [
        k
        for k in props
        if normalise(k) not in _DIRECT and normalise(k) not in _JAVAMAIL and _graph_key(k) is None
    ]
    ignore_unrelated(plan, rest, reason="no postroom equivalent")
    return plan


def _use_smtp(plan: ImportPlan, props: dict[str, str], chosen: dict[str, tuple[str, str]]) -> None:
    """Map the SMTP keys LabKey would use."""
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
