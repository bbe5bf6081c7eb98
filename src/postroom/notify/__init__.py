"""Event notifications: ``emit(type, actor=, data=)`` turns a host app's event into the
right mail to the right people (DESIGN §6)."""

from postroom.notify.gather import window_end
from postroom.notify.notifier import Notifier
from postroom.notify.payloads import PAYLOADS, parse_payload
from postroom.notify.results import EmitResult
from postroom.notify.templates import TemplateProblem, Templates

__all__ = [
    "PAYLOADS",
    "EmitResult",
    "Notifier",
    "TemplateProblem",
    "Templates",
    "parse_payload",
    "window_end",
]
