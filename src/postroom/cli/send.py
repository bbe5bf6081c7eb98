"""``postroom send``: put one message in the outbox and print its id."""

from __future__ import annotations

import mimetypes
import sys
from pathlib import Path
from typing import Annotated

import typer

from postroom.app import Postroom
from postroom.cli.common import out, print_json, state
from postroom.errors import MessageError
from postroom.message import Attachment


def _read(path: str, what: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MessageError(f"{what} {path}: {exc.strerror}; give a readable file") from None
    except UnicodeDecodeError:
        raise MessageError(f"{what} {path} is not UTF-8 text; convert it first") from None


def _attachment(path: str) -> Attachment:
    file = Path(path)
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise MessageError(f"attachment {path}: {exc.strerror}; give a readable file") from None
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return Attachment(file.name, content, content_type)


def _headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise MessageError(f"--header {item!r} is not 'Name: value'; write e.g. 'X-Ticket: 42'")
        headers[name.strip()] = value.strip()
    return headers


def command(
    ctx: typer.Context,
    to: Annotated[list[str], typer.Option("--to", help="Recipient (repeatable).")],
    subject: Annotated[str, typer.Option("--subject", help="Subject line.")],
    text: Annotated[
        str | None, typer.Option("--text", help="Body text ('-' reads standard input).")
    ] = None,
    text_file: Annotated[
        str | None, typer.Option("--text-file", help="File with the body text ('-': stdin).")
    ] = None,
    html_file: Annotated[
        str | None, typer.Option("--html-file", help="File with an HTML alternative.")
    ] = None,
    cc: Annotated[list[str] | None, typer.Option("--cc", help="Cc recipient (repeatable).")] = None,
    bcc: Annotated[
        list[str] | None, typer.Option("--bcc", help="Bcc recipient, in no header (repeatable).")
    ] = None,
    attach: Annotated[
        list[str] | None, typer.Option("--attach", help="File to attach (repeatable).")
    ] = None,
    type_: Annotated[
        str, typer.Option("--type", help="Notification type (goes in the type header).")
    ] = "message",
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Extra header 'Name: value' (allow-list).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Same key, same message: never a second one."),
    ] = None,
    hold: Annotated[bool, typer.Option("--hold", help="Queue it held until released.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Queue a message (committed to disk before this returns) and print its id."""
    if (text is None) == (text_file is None):
        raise MessageError("give the body with exactly one of --text or --text-file")
    body = _read(text_file, "--text-file") if text_file is not None else text or ""
    if text == "-":
        body = sys.stdin.read()
    with Postroom(config=state(ctx).config()) as postroom:
        queued = postroom.enqueue(
            [
                {
                    "to": to,
                    "cc": cc or (),
                    "bcc": bcc or (),
                    "subject": subject,
                    "text": body,
                    "html": _read(html_file, "--html-file") if html_file else None,
                    "attachments": [_attachment(path) for path in attach or ()],
                    "type": type_,
                    "headers": _headers(header or []),
                    "idempotency_key": idempotency_key,
                    "held": hold,
                }
            ]
        )[0]
    if json_:
        print_json({"id": queued.id, "message_id": queued.message_id, "created": queued.created})
    else:
        out.print(queued.id)
