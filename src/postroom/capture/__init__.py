"""The capture server and the mail record (DESIGN §8).

``postroom catch`` runs :mod:`postroom.capture.server`, an SMTP server that keeps
every message it accepts in the mail record and never relays; ``mail.transport =
capture`` (recording mode) keeps outgoing mail there instead of delivering it.
Because a forgotten recording mode silently swallows real mail, every place that
says where mail goes asks :func:`recording_warning` first.
"""

from __future__ import annotations

from postroom.settings import Configuration, Settings

RECORDING_WARNING = (
    "RECORDING MODE (mail.transport=capture): outgoing mail is kept in the mail record "
    "(`postroom captured list`), NOT delivered; set mail.transport=smtp to deliver it"
)


def is_recording(settings: Settings) -> bool:
    """Whether outgoing mail goes into the mail record instead of being delivered."""
    return settings.mail.enabled and settings.mail.transport == "capture"


def recording_warning(config: Configuration | Settings) -> str | None:
    """The warning to show wherever mail's route is shown, or None when mail is not
    being recorded. ``/healthz``, listings, test-email and the worker all use it."""
    settings = config.settings if isinstance(config, Configuration) else config
    return RECORDING_WARNING if is_recording(settings) else None


__all__ = ["RECORDING_WARNING", "is_recording", "recording_warning"]
