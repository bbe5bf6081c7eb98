"""Import a peer's mail settings (OMERO, Kallithea, LabKey) as postroom settings.

Importers are pure: they read the peer's file and return an :class:`ImportPlan` of
raw values, each tied to the peer key it came from. Applying the plan is the
caller's one ``update_file`` call, so the normal parsers and cross-key checks run
and nothing is half-written. The functions here turn a failure of those checks into
an error that names the peer key, so the admin knows which line of *their* file to
change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from postroom.errors import ConfigError, ConfigImportError
from postroom.settings.importers.base import Ignored, ImportPlan, Mapped, parse_properties
from postroom.settings.importers.kallithea import import_kallithea
from postroom.settings.importers.labkey import import_labkey
from postroom.settings.importers.omero import import_omero
from postroom.settings.loader import spec_for

IMPORTERS: dict[str, Callable[[Path], ImportPlan]] = {
    "omero": import_omero,
    "kallithea": import_kallithea,
    "labkey": import_labkey,
}


def import_peer_config(kind: str, path: Path) -> ImportPlan:
    """Read ``path`` as ``kind``'s configuration and say what maps onto our settings."""
    importer = IMPORTERS.get(kind.strip().lower())
    if importer is None:
        raise ConfigError(
            f"cannot import from {kind!r}",
            fix="use --from omero, --from kallithea or --from labkey",
        )
    return importer(Path(path))


def _failure(
    plan: ImportPlan, item: Mapped, message: str, *, about: str | None = None
) -> ConfigImportError:
    """One line: file, peer key → our key, what is wrong, the fix in the peer's terms."""
    about = about or item.key
    hint = plan.hints.get(about)
    fix = f"or {hint}" if hint else f"correct {item.source_key} in the file and import again"
    error = ConfigImportError(
        f"{item.source_key} → {item.key}: {message}; {fix}; nothing was written",
        path=str(plan.path),
    )
    error.key = about
    return error


def check_plan(plan: ImportPlan) -> None:
    """Parse every mapped value now, so a bad one is reported with its peer key."""
    for item in plan.mapped:
        spec = spec_for(item.key)
        try:
            spec.kind.parse(item.raw_value)
        except ValueError as exc:
            raise _failure(plan, item, str(exc)) from None


def explain_error(plan: ImportPlan, error: ConfigError) -> ConfigError:
    """``error`` from applying ``plan``, reworded to name the peer key behind it.

    A conflict such as a password sent without TLS is reported on mail.security even
    when the peer file never mentions TLS; then the password's key is the one named.
    Errors that the plan did not cause (a broken postroom.toml) are returned as they are.
    """
    if error.key is None or isinstance(error, ConfigImportError):
        return error
    related = [error.key, "mail.password"] if error.key == "mail.security" else [error.key]
    for key in related:
        for item in plan.mapped:
            if item.key == key:
                return _failure(plan, item, str(error), about=error.key)
    return error


__all__ = [
    "IMPORTERS",
    "Ignored",
    "ImportPlan",
    "Mapped",
    "check_plan",
    "explain_error",
    "import_peer_config",
    "parse_properties",
]
