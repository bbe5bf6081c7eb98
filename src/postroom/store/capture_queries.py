"""The mail record's read paths: listings with filters, and one message in full.

Queries run on connections marked :func:`~postroom.store.engine.reading`, so reading
the record never takes SQLite's write lock from the capture server's writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine, Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from postroom.store.engine import reading
from postroom.store.queries import is_full_address, like_escape
from postroom.store.schema import captured
from postroom.store.views import Attachment, body_text, iso_time

_summary_columns = (
    captured.c.id,
    captured.c.received_at,
    captured.c.source,
    captured.c.mail_from,
    captured.c.rcpt_tos,
    captured.c.subject,
    captured.c.from_header,
    captured.c.to_header,
    captured.c.size,
    captured.c.peer,
    captured.c.helo,
    captured.c.tls,
    captured.c.auth_user,
)


@dataclass(frozen=True, slots=True)
class CapturedSummary:
    """One captured message as listings show it."""

    id: int
    received_at: float
    source: str  # smtp (postroom catch) or transport (recording mode)
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    from_header: str
    to_header: str
    size: int
    peer: str | None
    helo: str | None
    tls: bool
    auth_user: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": iso_time(self.received_at),
            "source": self.source,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": self.subject,
            "from": self.from_header,
            "to": self.to_header,
            "size": self.size,
            "peer": self.peer,
            "helo": self.helo,
            "tls": self.tls,
            "auth_user": self.auth_user,
        }


@dataclass(frozen=True, slots=True)
class CapturedDetail:
    """One captured message in full: the bytes as received, and what they contain."""

    summary: CapturedSummary
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    raw: bytes

    def parsed(self) -> EmailMessage:
        message = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
        return message

    def to_json(self) -> dict[str, Any]:
        return {
            **self.summary.to_json(),
            "headers": [{"name": name, "value": value} for name, value in self.headers],
            "text": self.text,
            "html": self.html,
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                for a in self.attachments
            ],
            "raw": self.raw.decode("utf-8", "replace"),
        }


def _recipient_filter(to: str, exact: bool) -> ColumnElement[bool]:
    lowered = to.strip().lower()
    if exact:
        # rcpt_tos is a JSON array: a recipient is exactly this one when its JSON
        # string, quotes included, is in the text.
        pattern = "%" + like_escape(json.dumps(lowered, ensure_ascii=False)) + "%"
    else:
        pattern = "%" + like_escape(lowered) + "%"
    return func.lower(captured.c.rcpt_tos).like(pattern, escape="\\")


def _matching(
    query: Select[Any],
    *,
    to: str | None,
    exact: bool | None,
    subject: str | None,
    since: float | None,
    after_id: int | None,
) -> Select[Any]:
    if to:
        query = query.where(_recipient_filter(to, is_full_address(to) if exact is None else exact))
    if subject:
        query = query.where(
            func.lower(captured.c.subject).like(
                "%" + like_escape(subject.lower()) + "%", escape="\\"
            )
        )
    if since is not None:
        query = query.where(captured.c.received_at >= since)
    if after_id is not None:
        query = query.where(captured.c.id > after_id)
    return query


def list_captured(
    engine: Engine,
    *,
    to: str | None = None,
    exact: bool | None = None,
    subject: str | None = None,
    since: float | None = None,
    after_id: int | None = None,
    limit: int | None = 50,
    oldest_first: bool = False,
) -> list[CapturedSummary]:
    """Captured messages, newest first (or oldest first), filtered.

    ``to``: an envelope recipient, any case; exactly when it is a whole address (or
    ``exact=True``), else as a part of one. ``subject``: a part of the subject, any
    case. ``since``: received at or after this epoch time. ``after_id``: only ids
    greater than this.
    """
    query = _matching(
        select(*_summary_columns),
        to=to,
        exact=exact,
        subject=subject,
        since=since,
        after_id=after_id,
    )
    query = query.order_by(captured.c.id if oldest_first else captured.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with reading(engine.connect()) as connection, connection.begin():
        rows = connection.execute(query).all()
    return [_summary(row) for row in rows]


def count_matching(
    engine: Engine,
    *,
    to: str | None = None,
    subject: str | None = None,
    since: float | None = None,
) -> int:
    """How many captured messages :func:`list_captured` with these filters would find."""
    query = _matching(
        select(func.count()).select_from(captured),
        to=to,
        exact=None,
        subject=subject,
        since=since,
        after_id=None,
    )
    with reading(engine.connect()) as connection, connection.begin():
        return int(connection.execute(query).scalar_one())


def count_captured(engine: Engine) -> int:
    with reading(engine.connect()) as connection, connection.begin():
        return int(connection.execute(select(func.count()).select_from(captured)).scalar_one())


def get_captured(engine: Engine, pk: int) -> CapturedDetail | None:
    """One captured message in full, or None if there is no message ``pk``."""
    with reading(engine.connect()) as connection, connection.begin():
        row = connection.execute(
            select(*_summary_columns, captured.c.raw).where(captured.c.id == pk)
        ).one_or_none()
    if row is None:
        return None
    raw = bytes(row.raw)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return CapturedDetail(
        summary=_summary(row),
        headers=tuple((name, _header_value(value)) for name, value in parsed.items()),
        text=body_text(parsed, "plain"),
        html=body_text(parsed, "html"),
        attachments=tuple(
            Attachment(
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                size=len(part.get_payload(decode=True) or b""),
            )
            for part in _attachments(parsed)
        ),
        raw=raw,
    )


def _header_value(value: object) -> str:
    try:
        return str(value)
    except (LookupError, ValueError, UnicodeError):  # a header the parser cannot decode
        return repr(value)


def _attachments(parsed: EmailMessage) -> list[EmailMessage]:
    try:
        return [part for part in parsed.iter_attachments() if isinstance(part, EmailMessage)]
    except (LookupError, ValueError, AttributeError, TypeError):  # malformed MIME
        return []


def _summary(row: Any) -> CapturedSummary:
    try:
        recipients = tuple(str(r) for r in json.loads(row.rcpt_tos))
    except ValueError:
        recipients = ()
    return CapturedSummary(
        id=row.id,
        received_at=row.received_at,
        source=row.source,
        mail_from=row.mail_from,
        rcpt_tos=recipients,
        subject=row.subject,
        from_header=row.from_header,
        to_header=row.to_header,
        size=row.size,
        peer=row.peer,
        helo=row.helo,
        tls=bool(row.tls),
        auth_user=row.auth_user,
    )
