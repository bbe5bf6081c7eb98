"""A directory and a Postroom for notification tests, delivering to a real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.support.pg import throwaway_engine
from tests.support.smtpd import SMTPServer

from postroom import Postroom
from postroom.delivery.worker import Worker

FROM = "Lab Mail <lab@example.org>"
BOUNCES = "bounces@example.org"
OPS = "ops@example.org"


def settings_for(server: SMTPServer, **extra: str) -> dict[str, str]:
    return {
        "mail.enabled": "true",
        **server.settings_flags(),
        "mail.from": FROM,
        "mail.envelope_from": BOUNCES,
        "mail.admins": OPS,
        "web.public_url": "https://mail.example.org",
        **extra,
    }


@contextmanager
def notifying_postroom(
    backend: str, home: Path, server: SMTPServer, **extra: str
) -> Iterator[Postroom]:
    """A Postroom on SQLite or a throwaway PostgreSQL database, with the users:
    alice (admin), bob, carol, dave (inactive), erin (no address), root (no address)."""
    settings = settings_for(server, **extra)
    if backend == "sqlite":
        with Postroom(home, settings=settings) as instance:
            add_people(instance)
            yield instance
        return
    with throwaway_engine() as engine:
        settings["database.url"] = engine.url.render_as_string(hide_password=False)
        with Postroom(home, settings=settings) as instance:
            add_people(instance)
            yield instance


def add_people(postroom: Postroom) -> None:
    users = postroom.users
    users.add("alice", full_name="Alice Liddell", email="alice@example.org", admin=True)
    users.add("bob", full_name="Bob Ray", email="bob@example.org")
    users.add("carol", full_name="Carol Ann", email="carol@example.org")
    users.add("dave", full_name="Dave Null", email="dave@example.org")
    users.deactivate("dave")
    users.add("erin", full_name="Erin No-Mail")


def deliver(postroom: Postroom) -> None:
    Worker(postroom.config, postroom.outbox, concurrency=2).run(once=True)


def parsed(content: bytes) -> EmailMessage:
    message = message_from_bytes(content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def mails(server: SMTPServer) -> list[tuple[list[str], EmailMessage]]:
    """(envelope recipients, parsed message) of everything the server received."""
    return [(sorted(m.rcpt_tos), parsed(m.content)) for m in server.messages]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())
