"""Scripted faults at run time: which rule fires for an attempt, counted per rule.

The rules come from capture.faults or from ``CaptureServer.faults = [...]``; each
keeps its own count of attempts left (``times``), so a script such as "451 twice,
then accept" plays out the same way on every run. No randomness anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from postroom.settings.faults import FaultRule, parse_faults


class FaultScript:
    """The rules in force and the attempts each has left; safe to use from threads."""

    def __init__(self, rules: Iterable[FaultRule | Mapping[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: tuple[FaultRule, ...] = ()
        self._left: list[int | None] = []
        self.fired: list[tuple[FaultRule, str]] = []
        self.replace(rules)

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        return self._rules

    def replace(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Put ``rules`` in force, each with its full count again."""
        parsed = parse_faults(list(rules))
        with self._lock:
            self._rules = parsed
            self._left = [rule.times for rule in parsed]
            self.fired = []

    def at_rcpt(self, address: str) -> FaultRule | None:
        """The reply rule that fires for RCPT TO ``address``, if any."""
        return self._fire([address], lambda r: r.code is not None and r.at == "rcpt")

    def before_dot(self, recipients: Sequence[str]) -> FaultRule | None:
        """A drop-before-dot rule that fires when DATA starts for ``recipients``."""
        return self._fire(recipients, lambda r: r.action == "drop-before-dot")

    def after_dot(self, recipients: Sequence[str]) -> FaultRule | None:
        """A reply at DATA or a drop-after-dot rule that fires once the message is in."""
        return self._fire(
            recipients,
            lambda r: r.action == "drop-after-dot" or (r.code is not None and r.at == "data"),
        )

    def _fire(
        self, recipients: Sequence[str], kind: Callable[[FaultRule], bool]
    ) -> FaultRule | None:
        if not self._rules:
            return None
        lowered = [r.lower() for r in recipients]
        with self._lock:
            for index, rule in enumerate(self._rules):
                left = self._left[index]
                if left == 0 or not kind(rule):
                    continue
                pattern = rule.match.lower()
                hit = next((r for r in lowered if fnmatchcase(r, pattern)), None)
                if hit is None:
                    continue
                if left is not None:
                    self._left[index] = left - 1
                self.fired.append((rule, hit))
                return rule
        return None
