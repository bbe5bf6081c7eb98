"""What one emit did, as the CLI and the API answer it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class EmitResult:
    """What one emit did; ``to_json`` is what the CLI and the API answer."""

    type: str
    ids: list[int] = field(default_factory=list)
    recipients: int = 0
    pending: int = 0  # gathered for a digest or a throttle window
    inactive: int = 0
    no_address: int = 0
    opted_out: int = 0
    unknown: int = 0
    fallback: bool = False
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.type == "password.reset":
            # The same answer whether or not the address has an account.
            return {"type": self.type, "ids": []}
        return {
            "type": self.type,
            "ids": self.ids,
            "recipients": self.recipients,
            "pending": self.pending,
            "skipped": {
                "inactive": self.inactive,
                "no_address": self.no_address,
                "opted_out": self.opted_out,
                "unknown_users": self.unknown,
            },
            "fallback": self.fallback,
            "disabled": self.disabled,
        }
