"""Changing postroom.toml, for every front end: ``config set`` and the console."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from postroom.errors import ConfigError, TransportLoadError
from postroom.settings import Configuration, Home, update_file
from postroom.transport import transport_class


def change_settings(
    home: Home,
    *,
    set_values: Mapping[str, str] | None = None,
    unset: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Configuration:
    """Write the changes all or nothing: every value checked by its kind, the result
    checked as a whole, and a mail.transport checked to load here (a class that does
    not load is refused now, not found out when mail fails)."""
    return update_file(home, set_values=set_values, unset=unset, environ=environ, check=_loadable)


def _loadable(config: Configuration) -> None:
    name = config.settings.mail.transport
    if config.sources["mail.transport"] != "file":
        return
    try:
        transport_class(name)
    except TransportLoadError as exc:
        raise ConfigError(str(exc), key="mail.transport") from None
