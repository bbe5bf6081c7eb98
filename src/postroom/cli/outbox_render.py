"""How ``postroom outbox`` draws messages and statistics for a person (Rich).

Everything a message carries (subject, addresses, replies) is escaped before Rich sees
it: a subject such as ``[bold]`` is text, not markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postroom.store.views import (
    AGE_BUCKETS,
    Attachment,
    MessageDetail,
    MessageSummary,
    OutboxStats,
    iso_time,
)

SUBJECT_WIDTH = 48
REPLY_WIDTH = 60

NOT_DELIVERED = {
    "logged": "logged only, not delivered",
    "recorded": "recorded only, not delivered",
}
LOGGED_NOTE_OFF = (
    "mail is switched off (mail.enabled=false): these messages were written to the log, "
    "not delivered"
)
LOGGED_NOTE_ON = (
    "messages marked 'logged only' were written to the log or to files (mail.enabled was "
    "false, or mail.transport is log or file), not delivered"
)
RECORDED_NOTE = (
    "messages marked 'recorded only' were captured in the mail record "
    "(mail.transport=capture), not delivered"
)


def human_age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h20m``, ``5d4h``: short enough for a table cell."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def truncate(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def status_label(message: MessageSummary) -> str:
    """The state, and for mail that was "sent" without leaving, what happened instead."""
    if message.status == "sent" and message.outcome in NOT_DELIVERED:
        return f"sent ({NOT_DELIVERED[message.outcome]})"
    if message.status == "sent" and message.refused:
        return f"sent ({message.refused} of {len(message.recipients)} refused)"
    return message.status


def recipients_cell(message: MessageSummary, shown: int = 2) -> str:
    addresses = [r.address for r in message.recipients]
    more = len(addresses) - shown
    return ", ".join(addresses[:shown]) + (f" +{more}" if more > 0 else "")


def undelivered_notes(messages: Sequence[MessageSummary], *, mail_enabled: bool) -> list[str]:
    """Warnings for listings that show mail which was marked sent but never left."""
    outcomes = {m.outcome for m in messages if m.status == "sent"}
    notes = []
    if "logged" in outcomes:
        notes.append(LOGGED_NOTE_ON if mail_enabled else LOGGED_NOTE_OFF)
    if "recorded" in outcomes:
        notes.append(RECORDED_NOTE)
    return notes


def messages_table(messages: Sequence[MessageSummary], *, now: float) -> Table:
    table = Table("id", "status", "age", "attempts", "recipients", "subject", "last reply")
    table.columns[0].justify = "right"
    table.columns[3].justify = "right"
    for message in messages:
        table.add_row(
            str(message.id),
            _styled_status(message),
            human_age(now - message.created_at),
            str(message.attempts),
            escape(recipients_cell(message)),
            escape(truncate(message.subject, SUBJECT_WIDTH)),
            escape(truncate(message.last_reply, REPLY_WIDTH)),
        )
    return table


def _styled_status(message: MessageSummary) -> str:
    label = status_label(message)
    style = {
        "sent": "green" if message.delivered and not message.refused else "yellow",
        "failed": "red",
        "deferred": "yellow",
        "held": "magenta",
    }.get(message.status)
    return f"[{style}]{label}[/{style}]" if style else label


def _when(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "-"
    ago = now - epoch
    relative = f"{human_age(ago)} ago" if ago >= 0 else f"in {human_age(-ago)}"
    return f"{iso_time(epoch)} ({relative})"


def print_detail(console: Console, detail: MessageDetail, *, now: float) -> None:
    message = detail.summary
    console.print(f"[bold]Message {message.id}[/bold]  {escape(message.message_id)}")
    facts = [
        ("status", _styled_status(message)),
        ("type", escape(message.type)),
        ("attempts", str(message.attempts)),
        ("size", f"{message.size} bytes"),
        ("created", _when(message.created_at, now)),
        ("updated", _when(message.updated_at, now)),
    ]
    if message.next_attempt_at is not None:
        facts.append(("next attempt", _when(message.next_attempt_at, now)))
    if message.last_error:
        facts.append(("last error", f"[red]{escape(message.last_error)}[/red]"))
    for name, value in facts:
        console.print(f"  [dim]{name}:[/dim] {value}")

    render_content(console, detail, html_note="")

    console.print("\n[bold]Recipients[/bold]")
    recipients = Table("address", "kind", "status", "code", "reply", "attempts")
    for r in message.recipients:
        recipients.add_row(
            escape(r.address),
            r.kind,
            r.status,
            "" if r.code is None else str(r.code),
            escape(r.reply or ""),
            str(r.attempts),
        )
    console.print(recipients)

    console.print("\n[bold]Attempts[/bold]")
    if not detail.attempt_log:
        console.print("  [dim](none yet)[/dim]")
        return
    log = Table("#", "time", "worker", "outcome", "detail")
    for attempt in detail.attempt_log:
        log.add_row(
            str(attempt.number),
            iso_time(attempt.started_at) or "",
            escape(attempt.worker),
            attempt.outcome,
            escape(attempt_detail(attempt.detail)),
        )
    console.print(log)
    console.print(f"\n[dim]raw message: postroom outbox show {message.id} --raw[/dim]")


def attempt_detail(detail: str) -> str:
    """The worker's JSON detail as lines of ``address: code reply``, else as stored."""
    try:
        data = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(data, dict):
        return detail
    lines = []
    for item in data.get("recipients") or []:
        if isinstance(item, dict):
            code = item.get("code") or ""
            lines.append(f"{item.get('address')}: {code} {item.get('reply') or ''}".strip())
    if data.get("error"):
        lines.append(f"error: {data['error']}")
    return "\n".join(lines) or detail


def bucket_labels(width: int) -> tuple[str, ...]:
    """The age buckets' names; in a narrow terminal only their upper bounds, as qshape."""
    needed = 14 + len(" total ") + sum(len(label) + 2 for label in AGE_BUCKETS)
    if width >= needed:
        return AGE_BUCKETS
    return tuple(label.partition("-")[2] or label for label in AGE_BUCKETS)


def print_stats(console: Console, stats: OutboxStats) -> None:
    counts = Table("state", "messages", title="Messages by state", title_justify="left")
    counts.columns[1].justify = "right"
    for state, count in stats.counts.items():
        counts.add_row(state, str(count), style=None if count else "dim")
    console.print(counts)
    if stats.oldest_pending_seconds is None:
        console.print("oldest pending message: [dim]none, nothing is waiting[/dim]")
    else:
        console.print(f"oldest pending message: {human_age(stats.oldest_pending_seconds)}")

    shape = Table(
        title="Pending recipients by domain and age (like qshape)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    shape.add_column("domain", overflow="fold", min_width=12)
    for label in ("total", *bucket_labels(console.width)):
        shape.add_column(label, justify="right", no_wrap=True, min_width=len(label))
    for row in (stats.total, *stats.domains):
        shape.add_row(
            escape(row.domain),
            str(row.total),
            *(str(n) if n else "[dim]0[/dim]" for n in row.buckets),
            style="bold" if row is stats.total else None,
        )
    console.print(shape)


class _Content(Protocol):
    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def text(self) -> str | None: ...
    @property
    def html(self) -> str | None: ...
    @property
    def attachments(self) -> tuple[Attachment, ...]: ...


def render_content(console: Console, detail: _Content, *, html_note: str) -> None:
    """Headers, text body and attachments of a message (outbox or mail record)."""
    console.print("\n[bold]Headers[/bold]")
    for name, value in detail.headers:
        console.print(f"  [cyan]{escape(name)}:[/cyan] {escape(value)}")

    console.print("\n[bold]Text[/bold]")
    if detail.text is None:
        console.print("  [dim](no text part)[/dim]")
    else:
        for line in detail.text.rstrip("\n").splitlines() or [""]:
            console.print(f"  {escape(line)}")
    if detail.html is not None:
        console.print(
            f"  [dim](and an HTML part, {len(detail.html)} characters{escape(html_note)})[/dim]"
        )
    for attachment in detail.attachments:
        name = escape(attachment.filename or "(unnamed)")
        console.print(
            f"  [dim]attachment:[/dim] {name} ({attachment.content_type}, {attachment.size} bytes)"
        )
