"""Loading settings in layers, flag > environment > postroom.toml > default, and editing the file.

Settings are loaded once at the edge (CLI, service, ``Postroom()``) and passed in as a
frozen :class:`Configuration`; nothing reads them at import time.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from postroom.errors import ConfigError
from postroom.settings.configfile import read_config_file, write_config_file
from postroom.settings.glossary import GLOSSARY, Settings, SettingSpec
from postroom.settings.home import Home

Source = Literal["flag", "env", "file", "default"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding about the settings as a whole: an error blocks mail, a warning does not."""

    key: str
    message: str
    severity: Literal["error", "warning"]

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Configuration:
    """The effective settings of a home folder, with where each value came from."""

    home: Home
    settings: Settings
    sources: Mapping[str, Source]
    #: POSTROOM_* variables of the environment that name no setting (a typo).
    unknown_env: tuple[str, ...] = ()

    def value(self, key: str) -> Any:
        spec = spec_for(key)
        return getattr(getattr(self.settings, spec.section), spec.attribute)

    def shown(self, key: str) -> str:
        """The value as a person should see it: secrets masked."""
        spec = spec_for(key)
        return str(spec.kind.show(self.value(key)))

    def problems(self) -> list[Problem]:
        return consistency_problems(self.settings)

    def warnings(self) -> list[Problem]:
        return [p for p in self.problems() if p.severity == "warning"]

    def check(self) -> None:
        """Raise ConfigError for the first setting combination that cannot work."""
        for problem in self.problems():
            if problem.severity == "error":
                raise ConfigError(problem.message, key=problem.key)


def spec_for(key: str) -> SettingSpec:
    """The glossary entry of ``key``, or a ConfigError with a did-you-mean."""
    spec = GLOSSARY.get(key.strip().lower())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(key.lower(), list(GLOSSARY), n=1, cutoff=0.6)
    if not close:
        close = [k for k in GLOSSARY if k.endswith("." + key.lower().rpartition(".")[2])][:1]
    fix = f"did you mean {close[0]}?" if close else "run `postroom config describe` to list them"
    raise ConfigError(f"unknown setting {key!r}", key=key, fix=fix)


def parse_value(key: str, raw: Any, *, origin: str = "") -> Any:
    """Parse ``raw`` for ``key``; a bad value is a one-line ConfigError naming key and fix."""
    spec = spec_for(key)
    try:
        return spec.kind.parse(raw)
    except ValueError as exc:
        where = f" (from {origin})" if origin else ""
        raise ConfigError(f"{spec.key}{where}: {exc}", key=spec.key) from None


def _build(values: Mapping[str, Any]) -> Settings:
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        spec = GLOSSARY[key]
        sections.setdefault(spec.section, {})[spec.attribute] = value
    settings = Settings()
    for section, changes in sections.items():
        settings = replace(settings, **{section: replace(getattr(settings, section), **changes)})
    return settings


def load(
    home: Home,
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    file_values: Mapping[str, Any] | None = None,
) -> Configuration:
    """Load the effective settings of ``home``."""
    environ = os.environ if environ is None else environ
    if file_values is None:
        file_values = read_config_file(home.config_file)
    values: dict[str, Any] = {}
    sources: dict[str, Source] = dict.fromkeys(GLOSSARY, "default")
    for key, raw in file_values.items():
        spec = spec_for_file(key, home)
        values[spec.key] = parse_value(spec.key, raw, origin=str(home.config_file))
        sources[spec.key] = "file"
    for spec in GLOSSARY.values():
        if spec.env in environ:
            values[spec.key] = parse_value(spec.key, environ[spec.env], origin=spec.env)
            sources[spec.key] = "env"
    for key, raw in (flags or {}).items():
        spec = spec_for(key)
        values[spec.key] = parse_value(spec.key, raw, origin="command line")
        sources[spec.key] = "flag"
    return Configuration(
        home=home, settings=_build(values), sources=sources, unknown_env=_unknown_env(environ)
    )


#: POSTROOM_* variables that are not settings: the home, and the tools' own switches.
OTHER_VARIABLES = frozenset(
    {
        "POSTROOM_HOME",
        "POSTROOM_DEBUG",
        "POSTROOM_PYTHON",
        "POSTROOM_REQUIRE_PG",
        "POSTROOM_REQUIRE_POSTFIX",
        "POSTROOM_FAKETIME",
        "POSTROOM_CHROMIUM",
        "POSTROOM_SCREENSHOTS",
    }
)
_ENV_NAMES = {spec.env: spec.key for spec in GLOSSARY.values()}


def _unknown_env(environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(
        sorted(
            name
            for name in environ
            if name.startswith("POSTROOM_")
            and name not in _ENV_NAMES
            and name not in OTHER_VARIABLES
        )
    )


def unknown_env_warning(name: str) -> str:
    """``warning: POSTROOM_MAIL_HOTS names no setting; did you mean POSTROOM_MAIL_HOST?``"""
    close = difflib.get_close_matches(name, list(_ENV_NAMES), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see `postroom config describe`"
    return f"warning: the environment variable {name} names no setting and is ignored; {hint}"


def spec_for_file(key: str, home: Home) -> SettingSpec:
    try:
        return spec_for(key)
    except ConfigError as exc:
        raise ConfigError(f"{home.config_file}: {exc}", key=key) from None


def _is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def consistency_problems(settings: Settings) -> list[Problem]:
    """Combinations of values that cannot work (errors) or probably will not (warnings)."""
    mail = settings.mail
    problems: list[Problem] = []
    if (
        mail.password
        and mail.security == "none"
        and not _is_loopback(mail.host)
        and not mail.allow_plaintext_auth
    ):
        problems.append(
            Problem(
                "mail.security",
                f"mail.password would be sent in plaintext to {mail.host} (mail.security=none); "
                "set mail.security=starttls or ssl, or mail.allow_plaintext_auth=true "
                "if the network is trusted",
                "error",
            )
        )
    if mail.port == 465 and mail.security != "ssl":
        problems.append(
            Problem(
                "mail.security",
                f"warning: port 465 expects implicit TLS but mail.security={mail.security}; "
                "the likely fix is mail.security=ssl",
                "warning",
            )
        )
    if mail.port == 587 and mail.security == "ssl":
        problems.append(
            Problem(
                "mail.security",
                "warning: port 587 expects STARTTLS but mail.security=ssl; "
                "the likely fix is mail.security=starttls",
                "warning",
            )
        )
    if mail.auth == "xoauth2" and mail.security == "none" and mail.transport != "graph":
        problems.append(
            Problem(
                "mail.security",
                "warning: mail.auth=xoauth2 sends its token over TLS only, so no mail goes "
                "while mail.security=none; set mail.security=starttls (587) or ssl (465)",
                "warning",
            )
        )
    if mail.username and not mail.password and mail.auth != "xoauth2":
        problems.append(
            Problem(
                "mail.password",
                "warning: mail.username is set but mail.password is empty; "
                "set mail.password or clear mail.username",
                "warning",
            )
        )
    if mail.tls_ca_file and not os.path.isfile(mail.tls_ca_file):
        problems.append(
            Problem(
                "mail.tls_ca_file",
                f"mail.tls_ca_file {mail.tls_ca_file} does not exist; "
                "give the path of a PEM CA bundle, or unset it",
                "error",
            )
        )
    if settings.capture.max_bytes < settings.capture.max_size:
        problems.append(
            Problem(
                "capture.max_bytes",
                "capture.max_bytes is smaller than capture.max_size: the record could not "
                "keep even one message of the largest size; raise capture.max_bytes",
                "error",
            )
        )
    if settings.delivery.backoff_min > settings.delivery.backoff_max:
        problems.append(
            Problem(
                "delivery.backoff_min",
                "delivery.backoff_min is longer than delivery.backoff_max; "
                "make backoff_min the smaller of the two",
                "error",
            )
        )
    return problems


def update_file(
    home: Home,
    *,
    set_values: Mapping[str, Any] | None = None,
    unset: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    check: Callable[[Configuration], None] | None = None,
) -> Configuration:
    """Change postroom.toml: parse every new value, check the result (and run
    ``check`` on it, which raises ConfigError to refuse), then write once.

    Nothing is written if any value is bad or the result cannot work.
    """
    stored = dict(read_config_file(home.config_file))
    for key in unset:
        stored.pop(spec_for(key).key, None)
    for key, raw in (set_values or {}).items():
        spec = spec_for(key)
        stored[spec.key] = spec.kind.to_toml(parse_value(spec.key, raw))
    config = load(home, environ=environ, file_values=stored)
    config.check()
    if check is not None:
        check(config)
    write_config_file(home.config_file, stored)
    return config
