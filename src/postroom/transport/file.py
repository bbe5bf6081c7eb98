"""The file transport: one .eml file per message in a folder (mail.file_dir)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from postroom.message.envelope import Envelope
from postroom.transport.base import SendResult, Transport, accept_all


class FileTransport(Transport):
    outcome = "logged"

    @property
    def folder(self) -> Path:
        return (
            Path(self.settings.mail.file_dir) if self.settings.mail.file_dir else self.home.mail_dir
        )

    def open(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def send(self, envelope: Envelope, data: bytes) -> SendResult:
        self.open()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        envelope_lines = f"X-Postroom-Envelope-From: <{envelope.sender}>\r\n" + "".join(
            f"X-Postroom-Envelope-To: <{r}>\r\n" for r in envelope.recipients
        )
        # Written beside the final name, then renamed: a reader never sees half a file.
        partial = path.with_suffix(".part")
        with os.fdopen(
            os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "wb"
        ) as handle:
            handle.write(envelope_lines.encode() + data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return accept_all(envelope, f"written to {path}")
