"""Turning one rendered notification into the message the outbox stores: From with
the actor's name, the type header, the thread, and List-Unsubscribe (RFC 8058)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from postroom.message import ComposePolicy, OutgoingMessage, compose
from postroom.notify.templates import Rendered
from postroom.notify.unsubscribe import make_token
from postroom.settings import Configuration
from postroom.settings.senders import EVENTS_BY_NAME
from postroom.store.records import NewMessage


@dataclass(frozen=True, slots=True)
class Links:
    """Where unsubscribe links point, and the key that signs them."""

    base_url: str
    key: bytes
    lifetime: float
    mailto: str = ""

    @classmethod
    def from_config(cls, config: Configuration, key: bytes) -> Links:
        web = config.settings.web
        base = (web.public_url or f"http://{web.bind}").rstrip("/")
        senders = config.settings.senders
        return cls(
            base_url=base,
            key=key,
            lifetime=float(senders.unsubscribe_lifetime),
            mailto=str(senders.unsubscribe_mailto),
        )

    def unsubscribe(self, user_id: int, event: str, now: float) -> tuple[str, dict[str, str]]:
        """The link a person clicks, and the headers a mail client's button uses."""
        token = make_token(self.key, user_id, event, now + self.lifetime)
        url = f"{self.base_url}/unsubscribe/{token}"
        targets = f"<{url}>"
        if self.mailto:
            targets += f", <mailto:{self.mailto}?subject={quote('unsubscribe ' + token)}>"
        headers = {
            "List-Unsubscribe": targets,
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        return url, headers


def notification(
    event: str,
    rendered: Rendered,
    *,
    to: tuple[str, ...],
    policy: ComposePolicy,
    actor_name: str | None,
    thread: str | None,
    headers: dict[str, str] | None = None,
) -> NewMessage:
    """Compose one notification; it is automatic mail (Auto-Submitted: auto-generated)."""
    header = EVENTS_BY_NAME[event].header
    outgoing = OutgoingMessage(
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        type=header,
        headers=headers or {},
        actor_name=actor_name,
        thread_id=thread,
        automatic=True,
    )
    return NewMessage.from_composed(compose(outgoing, policy), type=header)
