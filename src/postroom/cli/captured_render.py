"""How ``postroom captured`` draws the mail record for a person (Rich).

Everything a message carries is escaped before Rich sees it: a subject such as
``[bold]`` is text, not markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postroom.cli.outbox_render import human_age, render_content, truncate
from postroom.store.capture_queries import CapturedDetail, CapturedSummary
from postroom.store.views import iso_time

SUBJECT_WIDTH = 48
RECORDED_NOTE = (
    "messages marked 'recorded' are outgoing mail that mail.transport=capture kept here "
    "instead of delivering: they were NOT delivered"
)


def source_label(message: CapturedSummary) -> str:
    return "recorded (not delivered)" if message.source == "transport" else "smtp"


def recipients_cell(message: CapturedSummary, shown: int = 2) -> str:
    more = len(message.rcpt_tos) - shown
    return ", ".join(message.rcpt_tos[:shown]) + (f" +{more}" if more > 0 else "")


def captured_table(messages: Sequence[CapturedSummary], *, now: float) -> Table:
    table = Table("id", "age", "from", "to", "subject", "size", "source")
    table.columns[0].justify = "right"
    table.columns[5].justify = "right"
    for message in messages:
        source = source_label(message)
        table.add_row(
            str(message.id),
            human_age(now - message.received_at),
            escape(message.mail_from or "<>"),
            escape(recipients_cell(message)),
            escape(truncate(message.subject, SUBJECT_WIDTH)),
            str(message.size),
            f"[yellow]{source}[/yellow]" if message.source == "transport" else source,
        )
    return table


def print_detail(console: Console, detail: CapturedDetail, *, now: float) -> None:
    message = detail.summary
    console.print(f"[bold]Captured message {message.id}[/bold]")
    session = ", ".join(
        part
        for part in (
            f"from {message.peer}" if message.peer else "",
            f"EHLO {message.helo}" if message.helo else "",
            "TLS" if message.tls else "no TLS" if message.source == "smtp" else "",
            f"login {message.auth_user}" if message.auth_user else "",
        )
        if part
    )
    facts = [
        (
            "received",
            f"{iso_time(message.received_at)} ({human_age(now - message.received_at)} ago)",
        ),
        ("source", source_label(message)),
        ("envelope from", f"<{message.mail_from}>"),
        ("envelope to", ", ".join(f"<{r}>" for r in message.rcpt_tos)),
        ("size", f"{message.size} bytes"),
    ]
    if session:
        facts.append(("session", session))
    for name, value in facts:
        console.print(f"  [dim]{name}:[/dim] {escape(value)}")
    if message.source == "transport":
        console.print(f"  [yellow]{escape(RECORDED_NOTE)}[/yellow]")

    render_content(console, detail, html_note=f": postroom captured show {message.id} --html")
    console.print(f"\n[dim]raw message: postroom captured show {message.id} --raw[/dim]")
