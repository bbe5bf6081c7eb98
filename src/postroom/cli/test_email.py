"""``postroom test-email --to ADDR``: check the SMTP settings step by step."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from postroom.cli.common import out, print_json, state, warn
from postroom.diagnostics import Report, run_test_email
from postroom.errors import EXIT_FAILED


def command(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Address the test message is sent to.")],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Try the SMTP server in mail.* step by step and send it a test message.

    Shows each step (resolve, connect, TLS and certificate, EHLO, login, MAIL, RCPT,
    DATA) with its time; on failure, what went wrong and the likely fix. Exit status 1
    when a step fails.
    """
    config = state(ctx).config()
    report = run_test_email(config.settings, to, home=config.home)
    warnings = [problem.message for problem in config.warnings()] + list(report.warnings)
    if json_:
        print_json({**report.to_json(), "warnings": warnings})
    else:
        for message in warnings:
            warn(message)
        _print(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _print(report: Report) -> None:
    out.print(
        f"Testing mail to {escape(report.to)} through {escape(report.server)} "
        f"(mail.security={report.security})"
    )
    width = max(len(step.title) for step in report.steps)
    for step in report.steps:
        mark = "[green]✓[/green]" if step.ok else "[red]✗[/red]"
        out.print(
            f" {mark} {escape(step.title.ljust(width))}  {step.seconds * 1000:7.1f} ms  "
            f"{escape(step.detail)}"
        )
        if step.fix:
            out.print(f"   [bold]fix:[/bold] {escape(step.fix)}")
    failed = report.failed
    if failed is None:
        out.print("[green]Test message sent.[/green] Check the inbox of " + escape(report.to))
    else:
        out.print(f"[red]Failed at {escape(failed.title)}.[/red]")
