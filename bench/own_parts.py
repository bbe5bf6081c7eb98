"""What postroom's own SMTP client and MIME writer buy, against the libraries they replace.

    .venv/bin/python bench/own_parts.py                  # 3 rounds of 5,000 messages

- **MIME**: ``postroom.message.compose`` (addresses validated, headers checked, bytes
  ready for SMTP) against the stdlib's ``email.message.EmailMessage`` building the same
  message (text + HTML alternative, same headers) and ``as_bytes()``; messages/s.
- **SMTP**: the same composed bytes sent over one connection to Postfix's ``smtp-sink``
  by postroom's ``SMTPClient.send_many`` (pipelined), by the stdlib's ``smtplib``
  (``sendmail``, one command at a time) and by ``aiosmtplib`` (``sendmail``; it runs in
  the benchmarks' throwaway virtualenv, ``bench/_aiosmtplib_send.py``); messages/s.

Rounds interleave the contenders; the figure is the median of the rounds. Writes
bench/out/own_parts.json.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from _common import ROOT, Pinning, Processes, ensure_postfix_tools, machine, start_sink, tools_venv
from _common import write_json as save_json
from rich.console import Console
from rich.table import Table

from postroom.message import ComposePolicy, OutgoingMessage, compose
from postroom.message.envelope import Envelope
from postroom.transport.smtp_client import SMTPClient

SENDER = "Postroom <noreply@example.org>"
TEXT = ("Your build finished. " * 3 + "\n") * 12  # with the HTML part, ~2 kB in all
HTML = f"<p>{TEXT}</p>"


def _outgoing(index: int) -> OutgoingMessage:
    return OutgoingMessage(
        to=(f"Ada Lovelace <ada{index}@example.org>",),
        subject=f"Build {index} finished",
        text=TEXT,
        html=HTML,
    )


def _stdlib(index: int, message_id: str) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = SENDER
    message["To"] = f"Ada Lovelace <ada{index}@example.org>"
    message["Subject"] = f"Build {index} finished"
    message["Date"] = "Mon, 07 Dec 2026 10:00:00 +0000"
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    return message.as_bytes()


def _rate(count: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    count = args.messages
    policy = ComposePolicy(from_=SENDER)
    composed = [compose(_outgoing(i), policy) for i in range(count)]
    items = [(c.envelope, c.raw) for c in composed]
    ensure_postfix_tools(console.print)
    tools = tools_venv(console.print)
    rates: dict[str, list[float]] = {}

    def mime_rounds() -> None:
        rates.setdefault("MIME: postroom compose", []).append(
            _rate(count, lambda: [compose(_outgoing(i), policy) for i in range(count)])
        )
        rates.setdefault("MIME: stdlib EmailMessage", []).append(
            _rate(count, lambda: [_stdlib(i, c.message_id) for i, c in enumerate(composed)])
        )

    with Processes() as processes, tempfile.TemporaryDirectory() as work:
        raw_file = Path(work) / "messages.jsonl"
        with raw_file.open("w") as out:
            for envelope, raw in items:
                out.write(json.dumps([envelope.sender, envelope.recipients, raw.decode()]) + "\n")
        with (Path(work) / "sink.log").open("wb") as sink_log:
            port, _ = start_sink(processes, sink_log, Pinning())
        for round_ in range(args.rounds):
            console.print(f"round {round_ + 1} of {args.rounds}")
            mime_rounds()
            rates.setdefault("SMTP: postroom SMTPClient (pipelined)", []).append(
                _rate(count, lambda: _own_client(port, items))
            )
            rates.setdefault("SMTP: stdlib smtplib", []).append(
                _rate(count, lambda: _smtplib(port, items))
            )
            done = subprocess.run(
                [str(tools), str(ROOT / "bench" / "_aiosmtplib_send.py"), str(port), str(raw_file)],
                capture_output=True,
                text=True,
                check=True,
            )
            rates.setdefault("SMTP: aiosmtplib", []).append(float(done.stdout.strip()))

    table = Table(
        title=f"{count:,} messages of ~{len(items[0][1]):,} bytes, median of {args.rounds}"
    )
    for column in ("what", "msg/s (median)", "rounds", "vs postroom"):
        table.add_column(column, justify="left" if column == "what" else "right")
    results = {}
    for label, samples in rates.items():
        kind = label.split(":")[0]
        own = next(v for k, v in rates.items() if k.startswith(f"{kind}: postroom"))
        ratio = statistics.median(own) / statistics.median(samples)
        results[label] = {"median": statistics.median(samples), "samples": samples}
        table.add_row(
            label,
            f"{statistics.median(samples):,.0f}",
            ", ".join(f"{s:,.0f}" for s in samples),
            "" if "postroom" in label else f"postroom {ratio:.1f}×",
        )
    console.print(table)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "own_parts.json", {"machine": machine(), "messages": count, "results": results})
    console.print(f"wrote {out / 'own_parts.json'}")


def _own_client(port: int, items: list[tuple[Envelope, bytes]]) -> None:
    client = SMTPClient("127.0.0.1", port, timeout=30.0)
    client.open()
    try:
        for result in client.send_many(items):
            assert result.all_accepted
    finally:
        client.quit()


def _smtplib(port: int, items: list[tuple[Envelope, bytes]]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30.0) as client:
        for envelope, raw in items:
            client.sendmail(envelope.sender, list(envelope.recipients), raw)


if __name__ == "__main__":
    main()
