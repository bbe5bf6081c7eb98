"""JavaMail properties, shared by the OMERO and LabKey importers.

Both peers hand their settings to JavaMail, so the same rules decide what their
connection really did: an SSL socket factory or ``smtps`` means TLS from the first
byte, the socket factory's port beats the plain port, timeouts are milliseconds and
0 means none, ``auth`` only matters together with a user name. Keeping those rules
here means the two importers cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postroom.settings.importers.base import ImportPlan, format_seconds

SSL_FACTORY = "javax.net.ssl.SSLSocketFactory"

#: (peer key, raw value)
Entry = tuple[str, str]

ROLES = (
    "port",
    "protocol",
    "starttls",
    "starttls_required",
    "factory_class",
    "factory_port",
    "factory_fallback",
    "auth",
    "debug",
    "timeout",
)


def javamail_true(value: str) -> bool:
    """JavaMail's own reading: only ``true`` (any case) is true, everything else false."""
    return value.strip().lower() == "true"


@dataclass
class JavaMailKeys:
    """The JavaMail-level properties a peer set, each with the peer's key name."""

    port: Entry | None = None
    protocol: Entry | None = None
    starttls: Entry | None = None
    starttls_required: Entry | None = None
    factory_class: Entry | None = None
    factory_port: Entry | None = None
    factory_fallback: Entry | None = None
    auth: Entry | None = None
    debug: Entry | None = None
    timeouts: list[Entry] = field(default_factory=list)
    #: The peer's user name key, when it holds a non-empty value.
    username_key: str | None = None

    def set(self, role: str, key: str, value: str) -> None:
        if role == "timeout":
            self.timeouts.append((key, value))
        else:
            setattr(self, role, (key, value))


def map_javamail(plan: ImportPlan, keys: JavaMailKeys) -> None:
    """Add to ``plan`` what the JavaMail properties mean in postroom's settings."""
    _security(plan, keys)
    _port(plan, keys)
    _auth(plan, keys)
    _timeouts(plan, keys)
    if keys.factory_fallback:
        key, value = keys.factory_fallback
        plan.ignore(
            key,
            ("true: JavaMail could fall back to a plain socket; " if javamail_true(value) else "")
            + "postroom never falls back to plaintext",
        )
    if keys.debug:
        plan.ignore(
            keys.debug[0],
            "use `postroom test-email --to ADDR` to watch the SMTP conversation step by step",
        )


def _mentioned(plan: ImportPlan, key: str) -> bool:
    return any(m.source_key == key for m in plan.mapped) or any(
        i.source_key == key for i in plan.ignored
    )


def _security(plan: ImportPlan, keys: JavaMailKeys) -> None:
    ssl_from: list[str] = []
    if keys.protocol:
        key, value = keys.protocol
        protocol = value.strip().lower()
        if protocol == "smtps":
            ssl_from.append(key)
        elif protocol not in {"smtp", ""}:
            raise plan.error(
                f"{key} = {value.strip()!r} → mail.security: postroom sends over smtp or "
                "smtps only; write smtp (or smtps for SSL)"
            )
    if keys.factory_class:
        key, value = keys.factory_class
        name = value.strip()
        if name == SSL_FACTORY or name.endswith(".SSLSocketFactory"):
            ssl_from.append(key)
        elif name:
            plan.ignore(
                key,
                f"{name} is a Java class postroom cannot load; mail.security=ssl stands for "
                f"{SSL_FACTORY}, and mail.tls_ca_file trusts an internal CA",
            )
    tls_from = [
        entry[0]
        for entry in (keys.starttls, keys.starttls_required)
        if entry and javamail_true(entry[1])
    ]
    # A custom factory class is reported above and decides nothing: it may well be TLS.
    present = [
        entry
        for entry in (keys.starttls, keys.starttls_required, keys.protocol, keys.factory_class)
        if entry and not _mentioned(plan, entry[0])
    ]
    if ssl_from:
        decided, security = ssl_from[0], "ssl"
        plan.map(decided, "mail.security", "ssl")
        for key in tls_from:
            plan.ignore(
                key,
                f"the connection is SSL from the first byte ({decided}): STARTTLS does not apply",
            )
    elif tls_from:
        decided, security = tls_from[0], "starttls"
        lenient = keys.starttls is not None and not (
            keys.starttls_required and javamail_true(keys.starttls_required[1])
        )
        plan.map(
            decided,
            "mail.security",
            "starttls",
            note="JavaMail went on without TLS if the server offered no STARTTLS; "
            "postroom refuses to send instead"
            if lenient
            else "",
        )
    elif present:
        decided, security = present[0][0], "none"
        plan.map(decided, "mail.security", "none", note="no TLS: neither STARTTLS nor SSL is on")
    else:
        return
    for key, value in present:
        if not _mentioned(plan, key):
            plan.ignore(key, f"{value.strip()}: mail.security={security} comes from {decided}")


def _same_port(first: str, second: str) -> bool:
    try:
        return int(first) == int(second)
    except ValueError:
        return first.strip() == second.strip()


def _port(plan: ImportPlan, keys: JavaMailKeys) -> None:
    factory_set = bool(keys.factory_class and keys.factory_class[1].strip())
    port, factory_port = keys.port, keys.factory_port
    if factory_port and not factory_set:
        plan.ignore(
            factory_port[0], "no socket factory class is set, so JavaMail does not use this port"
        )
        factory_port = None
    if factory_port and port and not _same_port(port[1], factory_port[1]):
        rule = "JavaMail connects to the socket factory's port when a factory is set"
        plan.map(
            factory_port[0],
            "mail.port",
            factory_port[1].strip(),
            note=f"wins over {port[0]}={port[1].strip()}: {rule}",
        )
        plan.ignore(port[0], f"{factory_port[0]}={factory_port[1].strip()} wins: {rule}")
    elif port:
        plan.map(port[0], "mail.port", port[1].strip())
        if factory_port:
            plan.ignore(factory_port[0], f"same port as {port[0]}")
    elif factory_port:
        plan.map(factory_port[0], "mail.port", factory_port[1].strip())


def _auth(plan: ImportPlan, keys: JavaMailKeys) -> None:
    if not keys.auth:
        return
    key, value = keys.auth
    user = keys.username_key
    if javamail_true(value) and user:
        reason = "true: postroom logs in whenever mail.username is set; nothing more to import"
    elif javamail_true(value):
        reason = "true, but no user name is set: postroom logs in only when mail.username is set"
    elif user:
        reason = (
            f"false, but postroom logs in whenever mail.username is set ({user} is imported); "
            "run `postroom config unset mail.username` if the server takes mail without login"
        )
    else:
        reason = "false: postroom sends without login while mail.username is empty, as here"
    plan.ignore(key, reason)


def _timeouts(plan: ImportPlan, keys: JavaMailKeys) -> None:
    limits: list[tuple[int, str]] = []
    for key, value in keys.timeouts:
        try:
            millis = int(value.strip())
        except ValueError:
            raise plan.error(
                f"{key} = {value.strip()!r} → mail.timeout: not a whole number of milliseconds; "
                "write e.g. 30000 for 30 seconds"
            ) from None
        if millis <= 0:
            plan.ignore(
                key,
                f"{millis}: no time limit in JavaMail; postroom always has one (mail.timeout)",
            )
        else:
            limits.append((millis, key))
    if not limits:
        return
    millis, key = max(limits)
    seconds = format_seconds(millis)
    largest = ", the largest of the JavaMail timeouts" if len(limits) > 1 else ""
    plan.map(key, "mail.timeout", seconds, note=f"{millis} ms → {seconds} s{largest}")
    for other_millis, other in limits:
        if other != key:
            plan.ignore(
                other,
                f"{other_millis} ms: postroom has one time limit for every step, "
                f"the largest ({key})",
            )
