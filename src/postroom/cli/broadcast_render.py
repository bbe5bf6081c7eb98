"""How ``postroom broadcast`` draws jobs for a person (Rich); text is escaped."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from postroom.cli.outbox_render import human_age, truncate
from postroom.store.broadcast_queries import COUNTED, BroadcastDetail, BroadcastSummary
from postroom.store.directory_schema import FANNING_OUT

SUBJECT_WIDTH = 40
STYLES = {"done": "green", "cancelled": "magenta", FANNING_OUT: "yellow"}


def running(job: BroadcastSummary) -> bool:
    return job.status == FANNING_OUT or (job.status != "cancelled" and job.pending > 0)


def _status(job: BroadcastSummary) -> str:
    style = STYLES.get(job.status)
    return f"[{style}]{job.status}[/{style}]" if style else job.status


def _progress(job: BroadcastSummary) -> str:
    messages = job.messages
    if not messages:
        return "-"
    return f"{job.finished}/{messages} ({100 * job.finished // messages}%)"


def jobs_table(jobs: Sequence[BroadcastSummary], *, now: float) -> Table:
    table = Table("id", "status", "age", "queued", "of", "sent", "failed", "progress", "subject")
    for column in (0, 3, 4, 5, 6):
        table.columns[column].justify = "right"
    for job in jobs:
        table.add_row(
            str(job.id),
            _status(job),
            human_age(now - job.created_at),
            str(job.queued),
            str(job.total),
            str(job.counts.get("sent", 0)),
            str(job.counts.get("failed", 0)),
            _progress(job),
            escape(truncate(job.subject, SUBJECT_WIDTH)),
        )
    return table


def detail(found: BroadcastDetail, *, now: float) -> RenderableType:
    job = found.summary
    audience = found.audience
    who = ["everyone"] if audience.get("everyone") else []
    if audience.get("group_ids"):
        who.append("groups " + ", ".join(map(str, audience["group_ids"])))
    if audience.get("user_ids"):
        who.append("users " + ", ".join(map(str, audience["user_ids"])))
    if audience.get("inactive"):
        who.append("inactive included")
    lines: list[RenderableType] = [
        Text.from_markup(f"[bold]Broadcast {job.id}[/bold]  {escape(job.subject)}"),
        Text.from_markup(f"  [dim]status:[/dim] {_status(job)}"),
        Text(f"  created: {human_age(now - job.created_at)} ago by {job.created_by or '?'}"),
        Text(f"  for: {'; '.join(who) or '-'}"),
        Text(
            f"  users: {job.total} selected, {job.queued} queued, {job.skipped} skipped"
            + (f"; {job.copies} cc/bcc copy message(s)" if job.copies else "")
        ),
    ]
    if job.rate:
        lines.append(Text(f"  pace: {job.rate}"))
    if found.cc:
        lines.append(Text(f"  cc: {', '.join(found.cc)}"))
    if found.bcc:
        lines.append(Text(f"  bcc: {', '.join(found.bcc)}"))
    counts = Table("queued", "sending", "sent", "deferred", "failed", "held", title="Messages")
    counts.add_row(*(str(job.counts.get(state, 0)) for state in COUNTED))
    lines.append(counts)
    total = max(job.messages, 1)
    lines.append(
        Group(
            ProgressBar(total=total, completed=job.finished, width=50),
            Text(f"{_progress(job)} finished (sent or failed)"),
        )
    )
    for reason, title in (
        ("no-address", "Users without an address"),
        ("invalid", "Invalid addresses"),
        ("inactive", "Inactive users named"),
    ):
        skipped = found.by_reason(reason)
        if skipped:
            names = ", ".join(
                f"{s.username} <{s.address}>" if reason == "invalid" else s.username
                for s in skipped
            )
            lines.append(Text(f"{title} ({len(skipped)}): {names}"))
    return Group(*lines)
