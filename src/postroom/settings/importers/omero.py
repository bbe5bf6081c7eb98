"""OMERO: ``omero config get`` output, or the same ``key=value`` lines in a file.

OMERO.server sends through JavaMail (``omero.mail.*``), OMERO.web through Django
(``omero.web.email_*``). Postroom has one SMTP setup, so the server's settings win and
the web's copy only fills keys the server's settings leave empty.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from postroom.settings.importers.base import (
    NOT_MAIL,
    ImportPlan,
    ignore_unrelated,
    mailbox,
    parse_peer_bool,
    read_properties,
)
from postroom.settings.importers.javamail import JavaMailKeys, map_javamail
from postroom.settings.values import MASK

KIND = "omero"

_DIRECT = {
    "omero.mail.config": "mail.enabled",
    "omero.mail.host": "mail.host",
    "omero.mail.username": "mail.username",
    "omero.mail.password": "mail.password",
    "omero.mail.from": "mail.from",
    "omero.web.server_email": "mail.error_from",
    "omero.web.email_subject_prefix": "mail.subject_prefix",
}
_SECRETS = {"omero.mail.password", "omero.web.email_host_password"}

_JAVAMAIL = {
    "omero.mail.port": "port",
    "omero.mail.transport.protocol": "protocol",
    "omero.mail.smtp.starttls.enable": "starttls",
    "omero.mail.smtp.starttls.required": "starttls_required",
    "omero.mail.smtp.socketFactory.class": "factory_class",
    "omero.mail.smtp.socketFactory.port": "factory_port",
    "omero.mail.smtp.socketFactory.fallback": "factory_fallback",
    "omero.mail.smtp.auth": "auth",
    "omero.mail.smtp.debug": "debug",
    "omero.mail.smtp.connectiontimeout": "timeout",
    "omero.mail.smtp.timeout": "timeout",
    "omero.mail.smtp.writetimeout": "timeout",
}

#: OMERO.web's Django mail settings -> ours, used only where omero.mail.* says nothing.
_WEB = {
    "omero.web.email_host": "mail.host",
    "omero.web.email_port": "mail.port",
    "omero.web.email_host_user": "mail.username",
    "omero.web.email_host_password": "mail.password",
}
_WEB_SECURITY = ("omero.web.email_use_tls", "omero.web.email_use_ssl")
_KNOWN = {
    *_DIRECT,
    *_JAVAMAIL,
    *_WEB,
    *_WEB_SECURITY,
    "omero.mail.bean",
    "omero.web.admins",
}
_PYTHON_CLASS = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")

HINTS = {
    "mail.security": "set omero.mail.smtp.starttls.enable=true "
    "(or the SSL socketFactory on port 465) in the file and import again",
}


def import_omero(path: Path) -> ImportPlan:
    """Map OMERO's mail properties onto postroom's settings."""
    plan = ImportPlan(KIND, path, hints=dict(HINTS))
    props: dict[str, str] = {}
    for key, value in read_properties(path).items():
        if key in _KNOWN and not value.strip():
            plan.ignore(key, "empty: left as it is")
        elif key in _SECRETS and value.strip() == MASK:
            plan.ignore(
                key,
                "masked by `omero config get`; run `omero config get --show-password` "
                "or `postroom config set mail.password` yourself",
            )
        else:
            props[key] = value
    javamail = JavaMailKeys()
    for key, value in props.items():
        if key == "omero.mail.host" and "omero.mail.config" not in props:
            note = "omero.mail.config is not in the file: mail.enabled is left as it is"
            plan.map(key, "mail.host", value.strip(), note=note)
        elif key in _DIRECT:
            plan.map(key, _DIRECT[key], value.strip(), secret=key in _SECRETS)
        elif key in _JAVAMAIL:
            javamail.set(_JAVAMAIL[key], key, value)
        elif key == "omero.mail.bean":
            _bean(plan, key, value.strip())
        elif key == "omero.web.admins":
            plan.map(key, "mail.admins", _admins(plan, key, value))
    if "omero.mail.username" in props:
        javamail.username_key = "omero.mail.username"
    map_javamail(plan, javamail)
    _web_fallbacks(plan, props)
    rest = [key for key in props if key not in _KNOWN]
    mail_like = ("omero.mail.", "omero.web.email")
    ignore_unrelated(
        plan, [k for k in rest if k.startswith(mail_like)], reason="no postroom equivalent"
    )
    ignore_unrelated(plan, [k for k in rest if not k.startswith(mail_like)], reason=NOT_MAIL[0])
    return plan


def _bean(plan: ImportPlan, key: str, value: str) -> None:
    if _PYTHON_CLASS.fullmatch(value):
        plan.map(key, "mail.transport", value, note="a Python transport class")
    elif value in {"", "defaultMailSender"}:
        plan.ignore(key, "OMERO's built-in JavaMail sender: postroom's smtp transport does that")
    else:
        plan.ignore(
            key,
            f"{value} is a Java (Spring) bean and cannot run in postroom; write a Python "
            "class with the transport interface and set mail.transport=package.module:Class",
        )


def _admins(plan: ImportPlan, key: str, value: str) -> str:
    """``[["Name", "addr"], ...]`` (JSON or Python literal) -> a JSON list of mailboxes."""
    text = value.strip() or "[]"
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            data = None
    wrong = plan.error(
        f"{key} → mail.admins: not a list of [name, address] pairs; "
        'write e.g. [["Full Name", "admin@example.org"]]'
    )
    if not isinstance(data, list | tuple):
        raise wrong
    mailboxes: list[str] = []
    for item in data:
        if isinstance(item, str):
            mailboxes.append(item.strip())
        elif (
            isinstance(item, list | tuple)
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
        ):
            mailboxes.append(mailbox(item[0], item[1]))
        else:
            raise wrong
    return json.dumps(mailboxes, ensure_ascii=False)


def _web_fallbacks(plan: ImportPlan, props: dict[str, str]) -> None:
    """OMERO.web's Django copy of the SMTP settings fills only what omero.mail.* left empty."""
    for key, ours in _WEB.items():
        value = props.get(key)
        if value is None:
            continue
        if plan.has(ours):
            plan.ignore(
                key,
                f"OMERO.web's own copy; {ours} comes from the OMERO.server setting, which wins",
            )
        else:
            plan.map(
                key,
                ours,
                value.strip(),
                secret=key in _SECRETS,
                note="OMERO.web's Django setting: the file has no omero.mail.* equivalent",
            )
    flags = {key: parse_peer_bool(plan, key, props[key]) for key in _WEB_SECURITY if key in props}
    if not flags:
        return
    use_tls, use_ssl = _WEB_SECURITY
    tls, ssl = flags.get(use_tls, False), flags.get(use_ssl, False)
    if plan.has("mail.security"):
        for key in flags:
            plan.ignore(key, "OMERO.web's own copy; mail.security comes from omero.mail.*")
        return
    if tls and ssl:
        raise plan.error(
            f"{use_tls} and {use_ssl} are both true → mail.security: "
            "Django refuses that too; keep one (ssl for port 465, tls for 587)"
        )
    chosen = use_ssl if ssl else use_tls if tls else next(iter(flags))
    security = "ssl" if ssl else "starttls" if tls else "none"
    plan.map(
        chosen,
        "mail.security",
        security,
        note="OMERO.web's Django setting: the file has no omero.mail.* equivalent",
    )
    for key in flags:
        if key != chosen:
            plan.ignore(key, f"false: mail.security={security} comes from {chosen}")
