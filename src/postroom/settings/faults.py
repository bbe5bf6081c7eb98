"""Scripted faults of the capture server (capture.faults): the rules as values.

A rule says what the capture server does to mail for recipients matching a glob:
answer a reply code at RCPT or after DATA, or drop the connection before or after the
final dot, for the first ``times`` matching attempts (``None``: always). The settings
and :class:`postroom.testing.CaptureServer` both take rules as JSON-like dicts::

    {"match": "*@later.example", "reply": 451, "at": "rcpt", "times": 2}
    {"match": "bob@*", "reply": "550 5.1.1 no such user", "at": "data"}
    {"match": "*", "action": "drop-after-dot", "times": 1}

Parsing is pure and strict: an unknown field or a code the server cannot script is a
ValueError that names the rule and the fix. Counting attempts is the server's job
(:mod:`postroom.capture.faults`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REPLY_CODES = (421, 451, 452, 550, 554)
STAGES = ("rcpt", "data")
ACTIONS = ("drop-before-dot", "drop-after-dot")

DEFAULT_TEXT = {
    421: "4.3.0 Scripted fault: service closing the connection",
    451: "4.3.0 Scripted fault: try again later",
    452: "4.3.1 Scripted fault: insufficient system storage",
    550: "5.1.1 Scripted fault: mailbox unavailable",
    554: "5.7.1 Scripted fault: transaction failed",
}

_FIELDS = {"match", "reply", "at", "action", "times"}


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One scripted fault: ``reply`` (code and text) at a stage, or a drop ``action``."""

    match: str
    code: int | None = None
    text: str = ""
    at: str = "rcpt"
    action: str | None = None
    times: int | None = None  # None: every matching attempt

    @property
    def reply(self) -> str:
        """The whole SMTP reply line, e.g. ``451 4.3.0 Scripted fault: try again later``."""
        return f"{self.code} {self.text}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"match": self.match}
        if self.action is not None:
            data["action"] = self.action
        else:
            data["reply"] = (
                self.reply if self.text != DEFAULT_TEXT.get(self.code or 0) else self.code
            )
            data["at"] = self.at
        if self.times is not None:
            data["times"] = self.times
        return data

    def __str__(self) -> str:
        return json.dumps(self.to_json(), separators=(", ", ": "))


def parse_rule(raw: Any, index: int = 0) -> FaultRule:
    where = f"fault rule {index + 1}"
    if isinstance(raw, FaultRule):
        return raw
    if not isinstance(raw, Mapping):
        raise ValueError(f'{where} is not an object like {{"match": "*@x.org", "reply": 451}}')
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ValueError(
            f"{where} has unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
            f"use {', '.join(sorted(_FIELDS))}"
        )
    match = raw.get("match")
    if not isinstance(match, str) or not match.strip():
        raise ValueError(f'{where} needs "match": a glob on the recipient, e.g. "*@x.org"')
    times = raw.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ValueError(f'{where}: "times" is {times!r}; use a count of 1 or more, or null')
    has_reply, has_action = "reply" in raw, "action" in raw
    if has_reply == has_action:
        raise ValueError(f'{where} needs exactly one of "reply" (a code) and "action" (a drop)')
    if has_action:
        action = raw["action"]
        if action not in ACTIONS:
            raise ValueError(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
        if "at" in raw:
            raise ValueError(f'{where}: "at" goes with "reply"; a drop happens during DATA')
        return FaultRule(match=match.strip(), action=action, times=times)
    code, text = _parse_reply(raw["reply"], where)
    at = raw.get("at", "rcpt")
    if at not in STAGES:
        raise ValueError(f'{where}: "at" is {at!r}; use rcpt or data')
    return FaultRule(match=match.strip(), code=code, text=text, at=at, times=times)


def _parse_reply(raw: Any, where: str) -> tuple[int, str]:
    codes = ", ".join(map(str, REPLY_CODES))
    if isinstance(raw, int) and not isinstance(raw, bool):
        code, text = raw, ""
    elif isinstance(raw, str) and raw.strip()[:3].isdigit():
        head, _, text = raw.strip().partition(" ")
        code = int(head) if head.isdigit() else -1
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"{where}: the reply text contains a line break or NUL")
    else:
        raise ValueError(f"{where}: reply {raw!r} is not a code ({codes}) with optional text")
    if code not in REPLY_CODES:
        raise ValueError(f"{where}: reply code {code} cannot be scripted; use {codes}")
    return code, text.strip() or DEFAULT_TEXT[code]


def parse_faults(raw: Any) -> tuple[FaultRule, ...]:
    """A JSON array (text) or a list of rule objects; empty text for none."""
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return ()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{text!r} is not valid JSON ({exc.msg})") from None
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{raw!r} is not a JSON array of fault rules")
    return tuple(parse_rule(item, index) for index, item in enumerate(raw))


def show_faults(rules: tuple[FaultRule, ...]) -> str:
    return json.dumps([rule.to_json() for rule in rules]) if rules else ""
