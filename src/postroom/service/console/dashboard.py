"""The dashboard: the queue by state, the oldest queued message, an hour of
throughput as a chart, and the delivery workers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from postroom.runtime import describe_route
from postroom.service.console.deps import AdminPage
from postroom.service.console.render import page
from postroom.service.deps import state_of
from postroom.store.queries import queue_summary, throughput
from postroom.store.workers import WorkerRegistry

router = APIRouter(include_in_schema=False)

MINUTES = 60
WIDTH, HEIGHT, LEFT = 640, 160, 40


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    count: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    top: int
    start: str
    width: int = WIDTH
    height: int = HEIGHT


def hour_chart(per_minute: list[tuple[float, int]], now: float) -> Chart:
    """An SVG bar per minute of the last hour (drawn by the template; no script)."""
    first = now - now % 60 - (MINUTES - 1) * 60
    counts = dict(per_minute)
    series = [(first + i * 60, counts.get(first + i * 60, 0)) for i in range(MINUTES)]
    top = max((n for _, n in series), default=0) or 1
    step = (WIDTH - LEFT) / MINUTES
    bars = []
    for index, (start, count) in enumerate(series):
        height = HEIGHT * count / top
        label = datetime.fromtimestamp(start, UTC).strftime("%H:%M")
        bars.append(Bar(LEFT + index * step + 1, HEIGHT - height, step - 2, height, count, label))
    start_label = datetime.fromtimestamp(first, UTC).strftime("%H:%M")
    return Chart(tuple(bars), top, start_label)


@router.get("/console/")
def dashboard(request: Request, admin: AdminPage) -> HTMLResponse:
    runtime = state_of(request).runtime
    engine = runtime.postroom.engine
    now = time.time()
    counts, oldest = queue_summary(engine, now)
    per_minute = throughput(engine, since=now - now % 60 - (MINUTES - 1) * 60)
    return page(
        request,
        "dashboard.html",
        admin,
        runtime,
        counts=counts,
        oldest=oldest,
        chart=hour_chart(per_minute, now),
        delivered_hour=sum(n for _, n in per_minute),
        workers=WorkerRegistry(engine).all(now=now),
        now=now,
        route=describe_route(runtime.config),
    )
