"""``Postroom``: the library's front door (DESIGN §11).

``Postroom()`` loads the home folder's settings once; ``send`` composes a message and
commits it to the outbox before returning its id, so mail accepted here is never lost,
whatever happens to the caller afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from postroom.errors import MessageError
from postroom.message import Attachment, ComposePolicy, OutgoingMessage, compose
from postroom.settings import Configuration, Home, load
from postroom.store.engine import database_url
from postroom.store.outbox import Outbox
from postroom.store.records import Enqueued, NewMessage

if TYPE_CHECKING:
    # Features are imported when first used: a process that only sends (the CLI's
    # `send`, a web app queueing mail) should not pay ~0.4 s for broadcast and notify.
    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import Session

    from postroom.broadcast import BroadcastReport, Broadcasts
    from postroom.notify import Notifier
    from postroom.reports.reporter import Reporter
    from postroom.users import Users

Addresses = str | Sequence[str]


def _addresses(value: Addresses | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


class Postroom:
    """Postroom embedded in a host application."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        config: Configuration | None = None,
        settings: Mapping[str, Any] | None = None,
        on_due: Callable[[], None] | None = None,
    ) -> None:
        """Load ``home`` (default ``$POSTROOM_HOME`` or ./postroom-home); ``settings``
        override individual keys like command-line flags do. ``on_due`` is called
        after each commit that makes mail due (a worker in this process wakes on it)."""
        self.config = config or load(Home.resolve(home), flags=settings)
        self._on_due = on_due
        self._policy = ComposePolicy.from_settings(self.config.settings.mail)
        self._engine: Engine | None = None
        self._outbox: Outbox | None = None
        self._users: Users | None = None
        self._broadcasts: Broadcasts | None = None
        self._notifier: Notifier | None = None
        self._reporter: Reporter | None = None

    def reconfigure(self, config: Configuration) -> None:
        """Compose with ``config`` from now on (mail.from, prefixes...); the database
        stays the one opened first."""
        self.config = config
        self._policy = ComposePolicy.from_settings(config.settings.mail)
        if self._broadcasts is not None:
            self._broadcasts.policy = self._policy
        if self._notifier is not None:
            self._notifier.reconfigure(config, self._policy)
        if self._reporter is not None:
            self._reporter.reconfigure(config, self._policy)

    # -- storage ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if not self.config.settings.database.url:
                self.config.home.ensure()
            # Imported here: alembic costs ~0.15 s to import, and only start-up needs it.
            from postroom.store.migrate import open_database

            self._engine = open_database(database_url(self.config))
        return self._engine

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self.engine, on_due=self._on_due)
        return self._outbox

    @property
    def users(self) -> Users:
        """The directory: ``users.upsert(...)``, ``users.sync(...)``, groups."""
        if self._users is None:
            from postroom.users import Users

            self._users = Users(self.engine)
        return self._users

    @property
    def broadcasts(self) -> Broadcasts:
        """Broadcast jobs: submit, resume, cancel, look at."""
        if self._broadcasts is None:
            from postroom.broadcast import Broadcasts

            self._broadcasts = Broadcasts(self.engine, self._policy, self.users)
        return self._broadcasts

    @property
    def notifications(self) -> Notifier:
        """Event notifications: emit, digests, heartbeats, preferences, templates."""
        if self._notifier is None:
            from postroom.notify import Notifier

            self._notifier = Notifier(self.engine, self.config, self._policy, outbox=self.outbox)
        return self._notifier

    @property
    def error_reports(self) -> Reporter:
        """Error reports: what the web middlewares and the logging handler use."""
        if self._reporter is None:
            from postroom.reports.reporter import Reporter

            self._reporter = Reporter(self.engine, self.outbox, self.config, self._policy)
        return self._reporter

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._outbox = None
            self._users = None
            self._broadcasts = None
            self._notifier = None
            self._reporter = None

    def __enter__(self) -> Postroom:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------

    def send(
        self,
        *,
        to: Addresses | None = None,
        subject: str,
        text: str,
        html: str | None = None,
        cc: Addresses | None = None,
        bcc: Addresses | None = None,
        type: str = "message",
        idempotency_key: str | None = None,
        attachments: Iterable[Attachment] = (),
        headers: Mapping[str, str] | None = None,
        actor_name: str | None = None,
        reply_to: Addresses | None = None,
        thread_id: str | None = None,
        from_: str | None = None,
        held: bool = False,
        automatic: bool = False,
    ) -> int:
        """Compose one message and commit it to the outbox; return its id."""
        return self.send_many(
            [
                {
                    "to": to,
                    "subject": subject,
                    "text": text,
                    "html": html,
                    "cc": cc,
                    "bcc": bcc,
                    "type": type,
                    "idempotency_key": idempotency_key,
                    "attachments": tuple(attachments),
                    "headers": headers or {},
                    "actor_name": actor_name,
                    "reply_to": reply_to,
                    "thread_id": thread_id,
                    "from_": from_,
                    "held": held,
                    "automatic": automatic,
                }
            ]
        )[0]

    def emit(
        self,
        type: str,
        *,
        actor: str | int | None = None,
        data: Mapping[str, Any] | None = None,
        connection: Connection | Session | None = None,
    ) -> list[int]:
        """Turn an event into notification mail (DESIGN §6) and return the ids queued.

        Pass the host app's own ``connection`` (or ORM ``session``) on postroom's
        database to write the mail inside its transaction: a rollback sends nothing.
        A bad payload raises EventError naming the field; nothing is queued. A
        password.reset returns no ids either way, so it reveals no account.
        """
        result = self.notifications.emit(type, actor=actor, data=data, connection=connection)
        return list(result.to_json()["ids"])

    def broadcast(self, subject: str, text: str, **options: Any) -> BroadcastReport:
        """Admin email: one message per selected user, all committed on return. Options
        are the fields of :class:`~postroom.broadcast.BroadcastRequest` (``everyone``,
        ``group_names``, ``user_names``, ``html``, ``cc``, ``bcc``, ``rate``...)."""
        from postroom.broadcast import BroadcastRequest

        request = BroadcastRequest(subject=subject, body=text, **options)
        return self.broadcasts.submit(request)

    def send_many(self, items: Iterable[Mapping[str, Any]]) -> list[int]:
        """Compose every item (the keyword arguments of :meth:`send`) and commit them
        all in one transaction; nothing is stored if any item is refused."""
        return [result.id for result in self.enqueue(items)]

    def enqueue(self, items: Iterable[Mapping[str, Any]]) -> list[Enqueued]:
        """Like :meth:`send_many`, returning ids, Message-IDs and whether each is new."""
        prepared = [self.prepare(item, index=index) for index, item in enumerate(items)]
        return self.outbox.enqueue(prepared)

    def prepare(self, item: Mapping[str, Any], *, index: int = 0) -> NewMessage:
        """Compose one item (the keyword arguments of :meth:`send`) into the message
        the outbox stores, or raise the MessageError that says what is wrong with it;
        nothing is stored (``outbox.enqueue`` does that)."""
        known = {
            "to", "subject", "text", "html", "cc", "bcc", "type", "idempotency_key",
            "attachments", "headers", "actor_name", "reply_to", "thread_id", "from_", "held",
            "automatic",
        }  # fmt: skip
        unknown = set(item) - known
        if unknown:
            raise MessageError(
                f"message {index}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(known))}"
            )
        outgoing = OutgoingMessage(
            to=_addresses(item.get("to")),
            cc=_addresses(item.get("cc")),
            bcc=_addresses(item.get("bcc")),
            subject=item.get("subject", ""),
            text=item.get("text", ""),
            html=item.get("html"),
            attachments=tuple(item.get("attachments", ())),
            type=item.get("type") or "message",
            headers=item.get("headers") or {},
            actor_name=item.get("actor_name"),
            reply_to=_addresses(item.get("reply_to")),
            thread_id=item.get("thread_id"),
            from_=item.get("from_"),
            automatic=bool(item.get("automatic", False)),
        )
        return NewMessage.from_composed(
            compose(outgoing, self._policy),
            type=outgoing.type,
            idempotency_key=item.get("idempotency_key"),
            held=bool(item.get("held", False)),
        )
