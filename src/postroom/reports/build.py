"""An error report from an exception and its request: fingerprint, subject, text and
HTML (pure: values in, values out; every shown string goes through the scrubber)."""

from __future__ import annotations

import hashlib
import html
import os
import re
import reprlib
import socket
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from postroom.reports.request import RequestInfo
from postroom.reports.scrub import Scrubber

SUBJECT_MAX = 150
#: One part of a report: a heading, and rows (name, value) or a block of text.
Section = tuple[str, list[tuple[str, str]] | str]
_LIBRARY_DIRS = tuple(
    {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
)
_OWN_DIR = os.path.dirname(os.path.dirname(__file__))  # postroom itself
_IDS = re.compile(r"/(?:\d+|[0-9a-f]{8}-[0-9a-f-]{27,}|[0-9a-f]{16,})(?=/|$)", re.IGNORECASE)
_REPR = reprlib.Repr()
_REPR.maxstring = 200
_REPR.maxother = 200


@dataclass(frozen=True)
class Frame:
    filename: str
    function: str
    line: int
    app: bool  # not the standard library, not an installed package, not postroom
    local_values: list[tuple[str, str]] = field(default_factory=list)


def _is_app(filename: str) -> bool:
    return not filename.startswith(_LIBRARY_DIRS) and not filename.startswith(_OWN_DIR)


def frames_of(tb: TracebackType | None, *, with_locals: bool) -> list[Frame]:
    found: list[Frame] = []
    while tb is not None:
        code = tb.tb_frame.f_code
        app = _is_app(code.co_filename)
        values: list[tuple[str, str]] = []
        if with_locals and app:
            values = [(n, _REPR.repr(v)) for n, v in list(tb.tb_frame.f_locals.items())[:40]]
        found.append(Frame(code.co_filename, code.co_name, tb.tb_lineno, app, values))
        tb = tb.tb_next
    return found


@dataclass(frozen=True)
class Occurrence:
    """One error (or broken link) as it happened, before scrubbing."""

    kind: str  # error, broken_link
    exc_type: str
    message: str
    traceback: str
    frames: list[Frame]
    request: RequestInfo | None
    at: float
    referer: str = ""

    @classmethod
    def of_exception(
        cls,
        error: BaseException,
        request: RequestInfo | None,
        at: float,
        *,
        with_locals: bool = False,
    ) -> Occurrence:
        kind = type(error)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        return cls(
            kind="error",
            exc_type=name,
            message=str(error),
            traceback="".join(traceback.format_exception(error)),
            frames=frames_of(error.__traceback__, with_locals=with_locals),
            request=request,
            at=at,
        )

    @classmethod
    def broken_link(cls, request: RequestInfo, at: float) -> Occurrence:
        return cls("broken_link", "", "", "", [], request, at, referer=request.header("Referer"))

    @property
    def innermost_app_frame(self) -> Frame | None:
        return next((f for f in reversed(self.frames) if f.app), None)

    @property
    def route(self) -> str:
        if self.request is None:
            return ""
        return self.request.route or _IDS.sub("/{id}", self.request.path)

    def fingerprint(self) -> str:
        """Exception type, innermost app frame (file and function, not the line, which
        moves with every edit) and route: the same bug, however often it fires."""
        frame = self.innermost_app_frame
        where = f"{frame.filename}:{frame.function}" if frame else ""
        key = "\x00".join((self.kind, self.exc_type, where, self.route))
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]

    def title(self, scrub: Scrubber) -> str:
        path = scrub.text(self.request.path) if self.request else ""
        if self.kind == "broken_link":
            return f"Broken link to {path}"
        message = " ".join(scrub.text(self.message).split())
        where = f" at {path}" if path else ""
        return f"{self.exc_type}: {message}{where}" if message else f"{self.exc_type}{where}"


def subject(occurrence: Occurrence, scrub: Scrubber) -> str:
    """``ERROR (EXTERNAL IP): ValueError: boom at /path``, one line, cut to a sane length."""
    request = occurrence.request
    where = "INTERNAL" if request is not None and request.internal else "EXTERNAL"
    if occurrence.kind == "broken_link":
        referer = occurrence.referer
        same_site = request is not None and _same_site(referer, request)
        where = "INTERNAL" if same_site else "EXTERNAL"
        text = f"Broken {where.lower()} link ({where} IP): {occurrence.title(scrub)}"
    else:
        text = f"ERROR ({where} IP): {occurrence.title(scrub)}"
    text = " ".join(text.split())
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def _same_site(referer: str, request: RequestInfo) -> bool:
    from urllib.parse import urlsplit

    host = request.header("Host").lower()
    return bool(host) and urlsplit(referer).netloc.lower() == host


@dataclass(frozen=True)
class Server:
    host: str
    pid: int
    python: str
    postroom: str

    @classmethod
    def here(cls) -> Server:
        from postroom import __version__

        return cls(socket.gethostname(), os.getpid(), sys.version.split()[0], __version__)


def sections(
    occurrence: Occurrence, scrub: Scrubber, server: Server, *, earlier: tuple[int, float | None]
) -> list[Section]:
    """The report's parts, scrubbed: (heading, rows or a block of text)."""
    parts: list[Section] = []
    count, since = earlier
    if count:
        when = f" since {_time(since)}" if since else ""
        parts.append(("Before this one", f"{count} more of the same{when}, not mailed then."))
    request = occurrence.request
    if occurrence.kind == "broken_link" and request is not None:
        parts.append(
            (
                "Broken link",
                [("URL", scrub.text(request.url)), ("Referer", scrub.text(occurrence.referer))],
            )
        )
    if occurrence.traceback:
        parts.append(("Traceback", scrub.text(occurrence.traceback)))
    for frame in occurrence.frames:
        if frame.local_values:
            label = f"Locals of {frame.function} ({os.path.basename(frame.filename)}:{frame.line})"
            parts.append((label, scrub.pairs(frame.local_values)))
    if request is not None:
        parts.append(
            (
                "Request",
                [
                    ("Method", request.method),
                    ("URL", scrub.text(request.url)),
                    ("User", scrub.text(request.user) or "(anonymous)"),
                    ("Client", request.client),
                ],
            )
        )
        parts.append(("Headers", scrub.headers(request.headers)))
        if request.query:
            parts.append(("Query", scrub.pairs(request.query)))
        if request.form:
            parts.append(("Form", scrub.pairs(request.form)))
    parts.append(
        (
            "Server",
            [
                ("Host", server.host),
                ("Process", str(server.pid)),
                ("Python", server.python),
                ("postroom", server.postroom),
                ("Time", _time(occurrence.at)),
            ],
        )
    )
    return parts


def _time(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def as_text(title: str, parts: list[Section]) -> str:
    lines = [title, ""]
    for heading, content in parts:
        lines += [heading, "-" * len(heading)]
        if isinstance(content, str):
            lines.append(content.rstrip("\n"))
        else:
            width = max((len(k) for k, _ in content), default=0)
            lines += [f"{k.ljust(width)}  {v}" for k, v in content]
        lines.append("")
    return "\n".join(lines)


def as_html(title: str, parts: list[Section]) -> str:
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title></head>",
        "<body style=\"font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;"
        'color:#1f2328;margin:16px">',
        f'<h1 style="font-size:18px;color:#cf222e">{html.escape(title)}</h1>',
    ]
    for heading, content in parts:
        out.append(f'<h2 style="font-size:15px;margin:18px 0 6px">{html.escape(heading)}</h2>')
        if isinstance(content, str):
            out.append(
                '<pre style="background:#f6f8fa;padding:8px;white-space:pre-wrap;'
                f'font-size:12px">{html.escape(content)}</pre>'
            )
        else:
            rows = "".join(
                f'<tr><th style="text-align:left;padding:2px 12px 2px 0;vertical-align:top">'
                f'{html.escape(k)}</th><td style="font-family:monospace">{html.escape(v)}</td></tr>'
                for k, v in content
            )
            out.append(f'<table style="font-size:13px;border-collapse:collapse">{rows}</table>')
    out.append("</body></html>")
    return "\n".join(out)
