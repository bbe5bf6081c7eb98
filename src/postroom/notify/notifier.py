"""``Notifier``: one event in, the right mail to the right people out (DESIGN §6).

``emit`` parses the payload, finds the recipients by the type's rule, and either
composes one message per recipient into the outbox or, for a digest or a throttled
login.failed, keeps a pending item that :mod:`postroom.notify.gather` turns into mail
when its window closes. All of it happens in one transaction: the caller's, when the
host app passes its own connection, so a rolled-back action sends nothing.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from postroom.message import ComposePolicy
from postroom.notify import preferences
from postroom.notify import recipients as rules
from postroom.notify.context import build_context, person, shown_time
from postroom.notify.gather import pending_item
from postroom.notify.mails import Links, notification
from postroom.notify.payloads import (
    CommentEvent,
    PasswordReset,
    Payload,
    ReviewEvent,
    ServerEvent,
    parse_payload,
)
from postroom.notify.personal import RECIPIENT_MARKS, URL_MARK, Shared
from postroom.notify.results import EmitResult
from postroom.notify.templates import Rendered, Templates
from postroom.notify.unsubscribe import KEY_NAME
from postroom.settings import Configuration
from postroom.settings.senders import EVENTS_BY_NAME
from postroom.store import notify as store
from postroom.store.directory_queries import User
from postroom.store.outbox import Outbox
from postroom.store.records import NewMessage

logger = logging.getLogger("postroom.notify")

HostConnection = Connection | Session


class Notifier:
    def __init__(
        self,
        engine: Engine,
        config: Configuration,
        policy: ComposePolicy,
        *,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.clock = clock
        self.templates = Templates(config.home.path / "templates")
        self.reconfigure(config, policy)
        self._links: Links | None = None

    def reconfigure(self, config: Configuration, policy: ComposePolicy) -> None:
        self.config = config
        self.policy = policy
        self._links = None

    @property
    def links(self) -> Links:
        if self._links is None:
            with self.engine.begin() as connection:
                return self.links_in(connection)
        return self._links

    def links_in(self, connection: Connection) -> Links:
        """The links, reading (or making) the signing key in ``connection``'s
        transaction: on SQLite another connection would wait for this one's lock."""
        if self._links is None:
            key = store.signing_key(connection, KEY_NAME)
            self._links = Links.from_config(self.config, key)
        return self._links

    @contextmanager
    def _transaction(self, host: HostConnection | None) -> Iterator[Connection]:
        if host is None:
            with self.engine.begin() as connection:
                yield connection
        elif isinstance(host, Session):
            yield host.connection()
        else:
            yield host

    # -- emit ------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        *,
        actor: str | int | None = None,
        data: Mapping[str, Any] | Payload | None = None,
        connection: HostConnection | None = None,
        now: float | None = None,
    ) -> EmitResult:
        """Emit ``event``; see the module's docstring. A bad payload raises EventError
        naming the field, and nothing is stored."""
        payload = data if isinstance(data, Payload) else parse_payload(event, dict(data or {}))
        if isinstance(payload, ServerEvent) and not payload.name:
            payload = payload.model_copy(update={"name": socket.gethostname()})
        result = EmitResult(type=event)
        senders = self.config.settings.senders
        if not senders.enabled(event):
            result.disabled = True
            return result
        now = self.clock() if now is None else now
        with self._transaction(connection) as db:
            self.links_in(db)
            # The actor and every user the payload names, in one query.
            named = [str(actor)] if actor not in (None, "") else []
            known = store.users_named(db, [*named, *rules.named_users(event, payload)])
            actor_user, actor_name = self._actor(db, actor, known)
            candidates = rules.audience(event, payload, self._lookup(db, known))
            kind = EVENTS_BY_NAME[event]
            # Fallback mail is what reaches the admins when nothing else could: an
            # opt-out of the type does not stop it.
            opted: set[int] = set()
            if kind.opt_out and candidates.people and not candidates.fallback:
                opted = store.opted_out(db, [u.id for u in candidates.people], event)
            # Who asks for a password reset is never spared its mail.
            spared = (None, None) if event == "password.reset" else (actor_user, actor_name)
            chosen = rules.select(
                candidates, actor=spared[0], actor_name=spared[1], opted_out=opted
            )
            result.inactive, result.no_address = chosen.inactive, chosen.no_address
            result.opted_out, result.unknown = chosen.opted_out, candidates.unknown
            result.fallback = candidates.fallback
            self._remember_commenter(db, event, payload, actor_user, now)
            if candidates.fallback:
                logger.warning("%s: no recipient could be determined; sent to the admins", event)
            items = self._plan(event, payload, chosen, candidates, actor_user, actor_name, now)
            messages = [item for item in items if isinstance(item, NewMessage)]
            pending = [item for item in items if not isinstance(item, NewMessage)]
            store.add_pending(db, pending, now)
            if isinstance(payload, PasswordReset) and not chosen.recipients:
                # No account has this address: compose all the same and keep nothing,
                # so the reply and the time taken say nothing about who has an account.
                self.compose_for(
                    event,
                    payload,
                    rules.Recipient(payload.email, None),
                    actor_context=None,
                    shown_actor=None,
                    thread=None,
                    now=now,
                )
            # Message rows keep the wall clock (due now); ``now`` is the event's time.
            result.ids = self.outbox.insert(db, messages, now=time.time())
            result.pending = len(pending)
            result.recipients = len(chosen.recipients)
        if result.ids and connection is None:
            self.outbox.made_due()
        return result

    @staticmethod
    def _actor(
        db: Connection, actor: str | int | None, known: dict[str, User]
    ) -> tuple[User | None, str | None]:
        if actor is None or actor == "":
            return None, None
        if str(actor) in known:
            return known[str(actor)], str(actor)
        if isinstance(actor, int) or str(actor).isdigit():
            by_id = store.user_by_id(db, int(actor))
            if by_id is not None:
                return by_id, by_id.username
        return None, str(actor)

    def _lookup(self, db: Connection, known: dict[str, User]) -> rules.Lookup:
        login = self.config.settings.senders

        def users(names: Iterable[str]) -> dict[str, User]:
            wanted = [n for n in names if n]
            missing = [n for n in wanted if n not in known]
            if missing:
                known.update(store.users_named(db, missing))
            return {n: known[n] for n in wanted if n in known}

        return rules.Lookup(
            users=users,
            admins=lambda: store.admin_users(db),
            participants=lambda thread: store.participants(db, thread),
            user_with_email=lambda address: store.user_with_email(db, address),
            mail_admins=self.config.settings.mail.admins,
            login_users=tuple(login.option("login.failed", "users")),
            login_notify_admins=bool(login.option("login.failed", "notify_admins")),
            login_notify_user=bool(login.option("login.failed", "notify_user")),
        )

    @staticmethod
    def _remember_commenter(
        db: Connection, event: str, payload: Payload, actor: User | None, now: float
    ) -> None:
        # Later comments reach earlier commenters (changesets and pull requests).
        if actor is not None and event in {"changeset.comment", "pull_request.comment"}:
            assert isinstance(payload, ReviewEvent)
            store.add_participant(db, payload.object.thread, actor.id, now)

    def _plan(
        self,
        event: str,
        payload: Payload,
        chosen: rules.Selection,
        candidates: rules.Audience,
        actor: User | None,
        actor_name: str | None,
        now: float,
    ) -> list[NewMessage | tuple[str, str, float, dict[str, Any]]]:
        """A message per recipient now, or a pending item per recipient for later."""
        actor_context = person(actor, actor_name)
        shown_actor = actor_context["name"] if actor_context else None
        if event in {"server.up", "server.down", "login.failed", "password.reset"}:
            shown_actor = None  # system mail: From is mail.from itself
        thread = payload.object.thread if isinstance(payload, CommentEvent | ReviewEvent) else None
        if candidates.fallback and chosen.recipients:
            addresses = tuple(r.address for r in chosen.recipients)
            rendered = self.templates.render(
                event,
                build_context(event, payload, actor=actor_context, site_url=self.links.base_url),
            )
            return [
                notification(
                    event,
                    rendered,
                    to=addresses,
                    policy=self.policy,
                    actor_name=shown_actor,
                    thread=thread,
                )
            ]
        window = self._window(event)
        mentioned = set(rules.mentions(getattr(payload, "text", "") or ""))
        made: list[NewMessage | tuple[str, str, float, dict[str, Any]]] = []
        # One rendering per variant for all recipients, where the templates allow it.
        shared: dict[tuple[bool, bool, bool], Shared] | None = (
            {} if self.templates.renders_once(event) else None
        )
        for recipient in chosen.recipients:
            if window is not None:
                made.append(
                    pending_item(
                        event,
                        payload,
                        recipient,
                        actor_context=actor_context,
                        shown_actor=shown_actor,
                        thread=thread,
                        window=window,
                        now=now,
                    )
                )
                continue
            made.append(
                self.compose_for(
                    event,
                    payload,
                    recipient,
                    actor_context=actor_context,
                    shown_actor=shown_actor,
                    thread=thread,
                    mentioned=recipient.user is not None and recipient.user.username in mentioned,
                    now=now,
                    attempts=[{"at": shown_time(now), "ip": getattr(payload, "ip", "")}],
                    shared=shared,
                )
            )
        return made

    def _window(self, event: str) -> str | float | None:
        senders = self.config.settings.senders
        if event == "login.failed":
            throttle = float(senders.option("login.failed", "throttle"))
            return throttle or None
        digest = senders.digest(event)
        return None if digest == "off" else digest

    def compose_for(
        self,
        event: str,
        payload: Payload | dict[str, Any],
        recipient: rules.Recipient,
        *,
        actor_context: dict[str, Any] | None,
        shown_actor: str | None,
        thread: str | None,
        now: float,
        mentioned: bool = False,
        attempts: list[dict[str, Any]] | None = None,
        items: list[dict[str, Any]] | None = None,
        base: str | None = None,
        shared: dict[tuple[bool, bool, bool], Shared] | None = None,
    ) -> NewMessage:
        """One recipient's message: rendered, with an unsubscribe link where allowed.
        With ``shared`` (one dict per event), templates that allow it are rendered once
        per variant and personalised per recipient (see notify.personal)."""
        headers: dict[str, str] = {}
        url = ""
        if EVENTS_BY_NAME[event].opt_out and recipient.user is not None:
            url, headers = self.links.unsubscribe(recipient.user.id, event, now)
        base = base or event
        who = person(recipient.user) if recipient.user else None

        def render(recipient_values: dict[str, Any] | None, link: str) -> Rendered:
            context = build_context(
                event,
                payload,
                actor=actor_context,
                recipient=recipient_values,
                mentioned=mentioned,
                site_url=self.links.base_url,
                unsubscribe_url=link,
                attempts=attempts or [],
                items=items or [],
            )
            return self.templates.render(base, context)

        if shared is not None:
            variant = (mentioned, who is not None, bool(url))
            if variant not in shared:
                shared[variant] = Shared(
                    render(RECIPIENT_MARKS if who else None, URL_MARK if url else "")
                )
            rendered = shared[variant].personalise(who, url)
        else:
            rendered = render(who, url)
        return notification(
            event,
            rendered,
            to=(recipient.address,),
            policy=self.policy,
            actor_name=shown_actor,
            thread=thread,
            headers=headers,
        )

    # -- windows, heartbeats, preferences --------------------------------------------

    def flush_due(self, now: float | None = None) -> list[int]:
        """Queue the digests and throttled mail whose window has closed; their ids."""
        from postroom.notify.gather import flush_due

        return flush_due(self, self.clock() if now is None else now)

    def beat(self, name: str, every: float, now: float | None = None) -> bool:
        """Record a host app's heartbeat; True if it ended a reported silence."""
        from postroom.notify.gather import record_beat

        return record_beat(self, name, every, self.clock() if now is None else now)

    def stop_beating(self, name: str) -> bool:
        """A host app stopping on purpose: forget its heartbeat, so its silence sends no
        server.down. False if no app of that name beats."""
        return store.forget_heartbeat(self.engine, name)

    def watch(self, now: float | None = None) -> list[str]:
        """server.down for host apps whose heartbeats stopped; their names."""
        from postroom.notify.gather import watch_heartbeats

        return watch_heartbeats(self, self.clock() if now is None else now)

    def tick(self, now: float | None = None) -> None:
        """What a worker does now and then: closed windows, then silent host apps."""
        now = self.clock() if now is None else now
        self.flush_due(now)
        self.watch(now)

    def opted_out(self, user_id: int) -> list[str]:
        """The types ``user_id`` has switched off."""
        return store.optouts_of(self.engine, user_id)

    def set_prefs(
        self, user_id: int, *, off: Sequence[str] = (), on: Sequence[str] = ()
    ) -> list[str]:
        """Switch types off or on for one user; the types now off."""
        return preferences.set_prefs(self, user_id, off=off, on=on)

    def unsubscribe(self, token: str, now: float | None = None) -> tuple[int, str]:
        """Carry out a one-click unsubscribe; (user id, type), or TokenError."""
        return preferences.unsubscribe(self, token, self.clock() if now is None else now)

    def preview(
        self, event: str, data: Mapping[str, Any] | None = None, *, actor: str | None = None
    ) -> Rendered:
        """The mail ``event`` would make (sample data when none is given), to read."""
        return preferences.preview(self, event, data, actor=actor)
