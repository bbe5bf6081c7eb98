"""The API's bodies, in and out (pydantic): what /api/openapi.json describes.

Requests refuse unknown fields. Responses are the same JSON the CLI prints with
``--json`` (each store record's ``to_json()``); these models describe it, and the
tests check every answer against them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Addresses = Annotated[list[str], Field(default_factory=list, max_length=1000)]
#: A user or group, by name or by id.
Name = Annotated[str, Field(min_length=1, max_length=64)]
Id = Annotated[int, Field(ge=0, le=2**62)]


class Strict(BaseModel):
    """A request body: unknown fields are refused, and values are not coerced (``0`` is
    not ``false``, ``"1"`` is not ``1``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- messages ----------------------------------------------------------------------------


class AttachmentIn(Strict):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255)
    content_base64: str


class MessageIn(Strict):
    """One message to enqueue; ``to`` may be one address or a list."""

    to: Addresses
    cc: Addresses
    bcc: Addresses
    subject: str = Field(max_length=998)
    text: str
    html: str | None = None
    type: str = Field(default="message", max_length=64)
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    reply_to: Addresses
    hold: bool = False
    automatic: bool = Field(
        default=False,
        description="Mail a program sent by itself (a notification, a password reset): "
        "it gets Auto-Submitted: auto-generated, so auto-replies leave it alone.",
    )

    @field_validator("to", "cc", "bcc", "reply_to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Accepted(BaseModel):
    id: int
    message_id: str


class Recipient(BaseModel):
    address: str
    kind: str
    status: str
    code: int | None
    reply: str | None
    attempts: int
    updated_at: str | None


class MessageSummary(BaseModel):
    id: int
    status: str
    outcome: str | None
    type: str
    subject: str
    from_: str = Field(alias="from")
    recipients: list[Recipient]
    failed_recipients: int = Field(description="Recipients that refused it for good.")
    attempts: int
    message_id: str
    size: int
    created_at: str | None
    updated_at: str | None
    next_attempt_at: str | None
    last_error: str | None


class Header(BaseModel):
    name: str
    value: str


class AttachmentOut(BaseModel):
    filename: str | None
    content_type: str
    size: int


class Attempt(BaseModel):
    number: int
    worker: str
    started_at: str | None
    finished_at: str | None
    outcome: str
    detail: str


class MessageDetail(MessageSummary):
    headers: list[Header]
    text: str | None
    html: str | None
    attachments: list[AttachmentOut]
    attempt_log: list[Attempt]
    raw: str


class MessagePage(BaseModel):
    items: list[MessageSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page."
    )


class StatusChange(BaseModel):
    id: int
    status: str


# -- directory ---------------------------------------------------------------------------


class UserIn(Strict):
    """A user to create, or to update when the username exists (the host app's push)."""

    username: str = Field(min_length=1, max_length=64)
    full_name: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    admin: bool | None = None
    active: bool | None = None
    groups: list[Name] = Field(default_factory=list, max_length=100)


class UserOut(BaseModel):
    id: int
    username: str
    full_name: str
    email: str | None
    admin: bool
    active: bool
    groups: list[str]
    created_at: str | None


class GroupIn(Strict):
    name: str = Field(min_length=1, max_length=64)


class GroupOut(BaseModel):
    id: int
    name: str
    members: int
    created_at: str | None


# -- broadcasts --------------------------------------------------------------------------


class BroadcastIn(Strict):
    """``postroom admin email`` over HTTP: who gets it (at least one of everyone,
    groups, users) and what."""

    subject: str = Field(max_length=998)
    text: str
    html: bool = Field(default=False, description="The text is HTML (a text part is made).")
    everyone: bool = False
    groups: list[Name | Id] = Field(default_factory=list, max_length=1000)
    users: list[Name | Id] = Field(default_factory=list, max_length=100_000)
    inactive: bool = False
    cc: Addresses
    bcc: Addresses
    rate: str | None = Field(default=None, max_length=32, examples=["50/min"])


class BroadcastCounts(BaseModel):
    queued: int
    sending: int
    sent: int
    deferred: int
    failed: int
    held: int


class BroadcastOut(BaseModel):
    id: int
    subject: str
    status: str
    html: bool
    rate: str | None
    idempotency_key: str | None
    created_at: str | None
    created_by: str
    updated_at: str | None
    fanned_out_at: str | None
    total: int
    queued: int
    skipped: int
    copies: int
    counts: BroadcastCounts


# -- test email, mail record ---------------------------------------------------------------


class DiagnosisIn(Strict):
    to: str = Field(min_length=3, max_length=320)


class Step(BaseModel):
    name: str
    title: str
    ok: bool
    seconds: float
    detail: str
    fix: str | None
    data: dict[str, Any] | None = None


class TranscriptLine(BaseModel):
    direction: str
    line: str


class DiagnosisOut(BaseModel):
    ok: bool
    server: str
    security: str
    to: str
    warnings: list[str]
    steps: list[Step]
    transcript: list[TranscriptLine]


class CapturedSummary(BaseModel):
    id: int
    received_at: str | None
    source: str
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    from_: str = Field(alias="from")
    to: str
    size: int
    peer: str | None
    helo: str | None
    tls: bool
    auth_user: str | None


class CapturedDetail(CapturedSummary):
    headers: list[Header]
    text: str | None
    html: str | None
    attachments: list[AttachmentOut]
    raw: str


class Cleared(BaseModel):
    deleted: int
