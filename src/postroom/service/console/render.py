"""Pages: Jinja2 templates (autoescaped) with what every page shows."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from postroom import __version__
from postroom.capture import recording_warning
from postroom.runtime import Runtime
from postroom.service.console.sessions import Admin
from postroom.service.health import delivery_state
from postroom.store.workers import WorkerRegistry

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _iso_age(iso: str | None) -> str:
    if not iso:
        return "—"
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return _age(max(0.0, time.time() - moment)) + " ago"


templates.env.filters["when"] = _when
templates.env.filters["age"] = _age
templates.env.filters["iso_age"] = _iso_age


def banners(runtime: Runtime) -> list[tuple[str, str, str | None]]:
    """(kind, text, fix) of what an admin must know on every page."""
    found: list[tuple[str, str, str | None]] = []
    config = runtime.config
    if note := recording_warning(config):
        found.append(("recording", note, None))
    elif not config.settings.mail.enabled:
        found.append(
            (
                "off",
                "Mail is switched off (mail.enabled=false): messages are written to the log, "
                "not delivered.",
                "Set mail.enabled to true under Settings once mail.* is right.",
            )
        )
    now = time.time()
    delivery = delivery_state(WorkerRegistry(runtime.postroom.engine).all(now=now), now)
    if delivery.paused:
        found.append(("paused", f"Delivery is paused: {delivery.reason}", delivery.fix))
    elif delivery.note:
        found.append(("warning", delivery.note, None))
    return found


def page(
    request: Request,
    template: str,
    admin: Admin | None,
    runtime: Runtime,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {
            "admin": admin,
            "csrf": admin.csrf if admin else "",
            "banners": banners(runtime) if admin else [],
            "version": __version__,
            **context,
        },
        status_code=status_code,
    )
