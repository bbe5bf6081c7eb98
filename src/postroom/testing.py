"""Test helpers: a capture server in a background thread, and a pytest fixture.

::

    from postroom.testing import CaptureServer

    with CaptureServer() as server:          # 127.0.0.1, a free port, a temporary home
        app.configure(smtp_host=server.host, smtp_port=server.port)
        app.request_password_reset("bob@example.org")
        mail = server.wait_for(to="bob@example.org", subject="reset", timeout=5)
        reset_url = mail.links()[0]

With pytest, the ``capture_server`` fixture gives each test its own server (postroom
registers this module as a pytest plugin; ``-p no:postroom`` turns it off). Filtering
by recipient gives each test its own mailbox even on a shared server. Scripted faults
(``server.faults = [{"match": "*@slow.example", "reply": 451, "times": 2}]``) make it a
misbehaving peer for tests of mail delivery.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from postroom.app import Postroom
from postroom.capture.faults import FaultScript
from postroom.capture.server import CaptureOptions, CaptureService, listen
from postroom.settings import Home, load
from postroom.settings.faults import FaultRule
from postroom.store.capture import CaptureStore, NewCapture
from postroom.store.capture_queries import CapturedDetail, get_captured, list_captured

__all__ = ["CaptureServer", "CapturedMessage", "capture_server", "extract_links"]

LOOPBACK = "127.0.0.1"
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


@dataclass(frozen=True)
class CapturedMessage:
    """A message the capture server kept: its envelope and the parsed message."""

    id: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    received_at: float
    raw: bytes
    source: str
    text: str | None = field(repr=False)
    html: str | None = field(repr=False)

    @classmethod
    def from_detail(cls, detail: CapturedDetail) -> CapturedMessage:
        summary = detail.summary
        return cls(
            id=summary.id,
            mail_from=summary.mail_from,
            rcpt_tos=summary.rcpt_tos,
            received_at=summary.received_at,
            raw=detail.raw,
            source=summary.source,
            text=detail.text,
            html=detail.html,
        )

    @cached_property
    def message(self) -> EmailMessage:
        """The message parsed with the stdlib ``email`` package (policy.default)."""
        from email import message_from_bytes, policy

        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def links(self) -> list[str]:
        """The http(s) URLs in the text and HTML bodies, in order, each once."""
        return extract_links(self.text, self.html)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value and _URL.match(value.strip()):
                self.found.append(value.strip())

    def handle_data(self, data: str) -> None:
        self.found.extend(_URL.findall(data))


def extract_links(text: str | None, html: str | None = None) -> list[str]:
    """http(s) URLs from a text body and from an HTML body's links and text."""
    found: list[str] = []
    if text:
        found.extend(_URL.findall(text))
    if html:
        parser = _LinkParser()
        parser.feed(html)
        parser.close()
        found.extend(parser.found)
    cleaned = (url.rstrip(_TRAILING) for url in found)
    return list(dict.fromkeys(url for url in cleaned if len(url) > len("https://")))


class CaptureServer:
    """``postroom catch`` in a background thread, on 127.0.0.1 and a free port.

    ``home``: the postroom home whose database keeps the mail (default: a temporary
    folder, removed on stop). ``settings``: capture.* (or database.url) overrides.
    The environment's POSTROOM_* variables are ignored, so tests run the same anywhere.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        faults: Iterable[FaultRule | Mapping[str, Any]] = (),
        settings: Mapping[str, Any] | None = None,
        host: str = LOOPBACK,
        port: int = 0,
    ) -> None:
        self._own_home = home is None
        self.home = Path(tempfile.mkdtemp(prefix="postroom-capture-") if home is None else home)
        self.config = load(Home.resolve(self.home), flags=dict(settings or {}), environ={})
        self._script = FaultScript(faults or self.config.settings.capture.faults)
        self._bind = (host, port)
        self.host = host
        self.port = port
        self._postroom: Postroom | None = None
        self._service: CaptureService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._commits = 0
        self._returned: set[int] = set()

    # -- life ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._postroom = Postroom(config=self.config)
        store = CaptureStore(
            self._postroom.engine, max_bytes=self.config.settings.capture.max_bytes
        )
        options = CaptureOptions.from_settings(self.config.settings.capture)
        self._service = CaptureService(
            store, options, faults=self._script, on_commit=self._committed
        )
        sock = listen(*self._bind)
        self.port = int(sock.getsockname()[1])
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                assert self._service is not None
                loop.run_until_complete(self._service.start(sock))
            except BaseException as exc:
                failed.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="postroom-capture", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failed:
            self.stop()
            raise failed[0]
        return self

    def stop(self) -> None:
        """Stop the server; every message it acknowledged is committed by then."""
        loop, thread, service = self._loop, self._thread, self._service
        if loop is not None and thread is not None and service is not None:
            if thread.is_alive():
                asyncio.run_coroutine_threadsafe(service.stop(), loop).result(30)
                loop.call_soon_threadsafe(loop.stop)
                thread.join(30)
            loop.close()
        self._loop = self._thread = self._service = None
        if self._postroom is not None:
            self._postroom.close()
            self._postroom = None
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- pointing a client at it -----------------------------------------------------

    @property
    def settings(self) -> dict[str, str]:
        """The mail.* settings that send postroom's mail here (``Postroom(settings=...)``,
        or ``--set`` flags)."""
        tls = self.config.settings.capture.tls_cert
        return {
            "mail.enabled": "true",
            "mail.transport": "smtp",
            "mail.host": self.host,
            "mail.port": str(self.port),
            "mail.security": "starttls" if tls else "none",
        }

    @property
    def faults(self) -> tuple[FaultRule, ...]:
        return self._script.rules

    @faults.setter
    def faults(self, rules: Iterable[FaultRule | Mapping[str, Any]]) -> None:
        """Put these rules in force from now on, each with its full count."""
        self._script.replace(rules)

    @property
    def faults_fired(self) -> list[tuple[FaultRule, str]]:
        """Each fault that fired, with the recipient it fired for, in order."""
        return list(self._script.fired)

    # -- reading what arrived --------------------------------------------------------

    def messages(
        self, *, to: str | None = None, subject: str | None = None
    ) -> list[CapturedMessage]:
        """Messages kept so far, oldest first; ``to``: an envelope recipient (exact, any
        case); ``subject``: a part of the subject (any case)."""
        engine = self._engine()
        found = list_captured(
            engine, to=to, exact=True, subject=subject, limit=None, oldest_first=True
        )
        details = (get_captured(engine, summary.id) for summary in found)
        return [CapturedMessage.from_detail(d) for d in details if d is not None]

    def wait_for(
        self, *, to: str | None = None, subject: str | None = None, timeout: float = 10.0
    ) -> CapturedMessage:
        """The oldest matching message not returned by an earlier ``wait_for``, waiting
        up to ``timeout`` seconds for it to arrive. Raises TimeoutError naming what
        did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                commits = self._commits
            for message in self.messages(to=to, subject=subject):
                if message.id not in self._returned:
                    self._returned.add(message.id)
                    return message
            with self._changed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._nothing_found(to, subject, timeout))
                if self._commits == commits:
                    # Woken by our own writer; polled for writers in other processes.
                    self._changed.wait(min(remaining, 0.25))

    def clear(self) -> int:
        """Delete every kept message; returns how many there were."""
        self._returned.clear()
        return CaptureStore(self._engine()).clear()

    # -- internals -------------------------------------------------------------------

    def _engine(self) -> Any:
        if self._postroom is None:
            raise RuntimeError("the capture server is not running: call start() or use `with`")
        return self._postroom.engine

    def _committed(self, ids: list[int], items: list[NewCapture]) -> None:
        with self._changed:
            self._commits += 1
            self._changed.notify_all()

    def _nothing_found(self, to: str | None, subject: str | None, timeout: float) -> str:
        wanted = " and ".join(
            part
            for part in (
                f"to {to}" if to else "",
                f"subject containing {subject!r}" if subject else "",
            )
            if part
        )
        kept = list_captured(self._engine(), limit=5)
        seen = "; ".join(f"to {', '.join(m.rcpt_tos)}: {m.subject!r}" for m in kept) or "none"
        return f"no new message {wanted or 'at all'} within {timeout:g}s (newest kept: {seen})"


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pass
else:

    @pytest.fixture
    def capture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaptureServer]:
        """A capture server on 127.0.0.1 and a free port, with its own home, for one test.

        Point the code under test at ``capture_server.host``/``.port`` (or pass
        ``capture_server.settings`` to ``Postroom``), then ``wait_for(to=...)``.
        """
        with CaptureServer(tmp_path_factory.mktemp("capture")) as server:
            yield server
