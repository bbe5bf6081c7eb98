"""``/api/v1/messages``: enqueue, look at the outbox, retry, hold and release."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query

from postroom.message import Attachment
from postroom.runtime import Runtime
from postroom.service.deps import ServiceState, admin, runtime_of, sender, service_of
from postroom.service.errors import ApiError
from postroom.service.models import (
    Accepted,
    AttachmentIn,
    MessageDetail,
    MessageIn,
    MessagePage,
    StatusChange,
)
from postroom.service.tokens import Caller
from postroom.store import queries
from postroom.store.schema import HELD, MESSAGE_STATES, QUEUED, SENDING, SENT

router = APIRouter(tags=["messages"])

MessageId = Annotated[int, Path(ge=1, le=2**62, description="The message's id.")]


@router.post("/messages", status_code=202, response_model=Accepted)
async def send_message(
    body: MessageIn,
    caller: Annotated[Caller, Depends(sender)],
    service: Annotated[ServiceState, Depends(service_of)],
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="The same key and body return the first answer."),
    ] = None,
) -> Accepted:
    """Compose one message and commit it to the outbox; delivery starts at once."""
    prepared = service.runtime.postroom.prepare(
        {
            "to": body.to,
            "cc": body.cc,
            "bcc": body.bcc,
            "subject": body.subject,
            "text": body.text,
            "html": body.html,
            "type": body.type,
            "headers": body.headers,
            "reply_to": body.reply_to,
            "attachments": [_attachment(index, a) for index, a in enumerate(body.attachments)],
            "held": body.hold,
            "automatic": body.automatic,
            # Per token: two clients may pick the same key without meeting.
            "idempotency_key": None
            if idempotency_key is None
            else f"api:{caller.token_id}:{idempotency_key}",
        }
    )
    queued = await service.intake.submit(prepared)
    return Accepted(id=queued.id, message_id=queued.message_id)


def _attachment(index: int, given: AttachmentIn) -> Attachment:
    try:
        content = b64decode(given.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            422,
            "invalid",
            f"attachments.{index}.content_base64 is not base64",
            field=f"attachments.{index}.content_base64",
        ) from None
    return Attachment(given.filename, content, given.content_type)


@router.get("/messages", response_model=MessagePage)
def list_messages(
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
    status: Annotated[str | None, Query(description=f"One of {', '.join(MESSAGE_STATES)}.")] = None,
    to: Annotated[
        str | None,
        Query(max_length=320, description="A recipient: a whole address, or part of one."),
    ] = None,
    type: Annotated[str | None, Query(max_length=64, description="Notification type.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page."),
    ] = None,
) -> MessagePage:
    """Messages newest first, a page at a time, each with every recipient's state."""
    status = status or None
    if status is not None and status not in MESSAGE_STATES:
        raise ApiError(
            400,
            "bad_parameter",
            f"status {status!r} is not one of {', '.join(MESSAGE_STATES)}",
            field="status",
        )
    before = int(cursor) if cursor else None
    found = queries.list_messages(
        runtime.postroom.engine, status=status, to=to, type=type, before_id=before, limit=limit + 1
    )
    more = len(found) > limit
    items = found[:limit]
    return MessagePage.model_validate(
        {
            "items": [m.to_json() for m in items],
            "next_cursor": str(items[-1].id) if more else None,
        }
    )


@router.get("/messages/{message}", response_model=MessageDetail)
def get_message(
    message: MessageId,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> MessageDetail:
    """One message: headers, text, HTML, each recipient's state, every attempt, raw."""
    detail = queries.get_message(runtime.postroom.engine, message)
    if detail is None:
        raise _no_such(message)
    return MessageDetail.model_validate(detail.to_json())


@router.post("/messages/{message}/retry", response_model=StatusChange)
def retry_message(
    message: MessageId,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> StatusChange:
    """Try a deferred, failed or queued message now; recipients already sent are not."""
    if runtime.postroom.outbox.retry([message]) == 0:
        _refuse(runtime, message, "only deferred, failed or queued messages can be retried")
    return StatusChange(id=message, status=QUEUED)


@router.post("/messages/{message}/hold", response_model=StatusChange)
def hold_message(
    message: MessageId,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> StatusChange:
    """Hold a queued, deferred or failed message: no worker sends it until released."""
    if not runtime.postroom.outbox.hold(message):
        _refuse(runtime, message, "only queued, deferred or failed messages can be held")
    return StatusChange(id=message, status=HELD)


@router.post("/messages/{message}/release", response_model=StatusChange)
def release_message(
    message: MessageId,
    _caller: Annotated[Caller, Depends(admin)],
    runtime: Annotated[Runtime, Depends(runtime_of)],
) -> StatusChange:
    """Release a held message: it is queued for delivery now."""
    if not runtime.postroom.outbox.release_held(message):
        _refuse(runtime, message, "only held messages can be released")
    return StatusChange(id=message, status=QUEUED)


def _no_such(pk: int) -> ApiError:
    return ApiError(404, "not_found", f"no message {pk} in the outbox")


def _refuse(runtime: Runtime, pk: int, rule: str) -> None:
    current = queries.message_status(runtime.postroom.engine, pk)
    if current is None:
        raise _no_such(pk)
    why = {SENT: "it was sent", SENDING: "a worker is delivering it right now"}.get(
        current, f"it is {current}"
    )
    raise ApiError(409, "wrong_state", f"message {pk}: {why}; {rule}")
