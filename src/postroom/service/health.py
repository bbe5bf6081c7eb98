"""``/healthz`` (liveness and the queue at a glance, no login) and ``/metrics``
(Prometheus text, open unless web.metrics_auth)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from postroom import __version__
from postroom.capture import recording_warning
from postroom.runtime import Runtime
from postroom.service.deps import ServiceState, runtime_of, state_of
from postroom.service.errors import ApiError, ErrorBody
from postroom.store.queries import queue_summary
from postroom.store.views import iso_time
from postroom.store.workers import WorkerRegistry, WorkerState

router = APIRouter(tags=["health"])


class Delivery(BaseModel):
    workers: int
    paused: bool
    reason: str | None
    fix: str | None
    paused_until: str | None
    note: str | None


class Queue(BaseModel):
    counts: dict[str, int]
    oldest_queued_seconds: float | None


class Health(BaseModel):
    status: str  # ok, paused (delivery paused), no-worker
    version: str
    queue: Queue
    delivery: Delivery
    recording: str | None


def delivery_state(workers: list[WorkerState], now: float) -> Delivery:
    """Whether any worker runs, and whether delivery is paused and why."""
    paused = [w for w in workers if w.paused(now)]
    if paused:
        first = paused[0]
        return Delivery(
            workers=len(workers),
            paused=True,
            reason=first.pause_reason,
            fix=first.pause_fix,
            paused_until=iso_time(first.paused_until),
            note=f"{len(paused)} of {len(workers)} worker(s) paused",
        )
    note = None if workers else "no delivery worker is running: start `postroom worker`"
    return Delivery(
        workers=len(workers), paused=False, reason=None, fix=None, paused_until=None, note=note
    )


def health_of(runtime: Runtime, now: float | None = None) -> Health:
    now = time.time() if now is None else now
    engine = runtime.postroom.engine
    counts, oldest = queue_summary(engine, now)
    delivery = delivery_state(WorkerRegistry(engine).all(now=now), now)
    status = "paused" if delivery.paused else ("ok" if delivery.workers else "no-worker")
    return Health(
        status=status,
        version=__version__,
        queue=Queue(counts=counts, oldest_queued_seconds=oldest),
        delivery=delivery,
        recording=recording_warning(runtime.config),
    )


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": ErrorBody, "description": "The database cannot be reached."}},
)
def healthz(runtime: Annotated[Runtime, Depends(runtime_of)]) -> Health:
    """Alive, with the queue by state, the oldest queued message's age, and whether
    delivery is paused (with the reason and the fix). 503 when the database is down."""
    try:
        return health_of(runtime)
    except DBAPIError:
        raise ApiError(
            503,
            "database_unavailable",
            "the database cannot be reached",
            headers={"Retry-After": "5"},
        ) from None


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(request: Request) -> Response:
    """Queue depth by state, oldest queued age, delivered/deferred/failed counters,
    delivery latency, captured count (Prometheus text format)."""
    service = state_of(request)
    if service.runtime.config.settings.web.metrics_auth:
        _require_admin(request, service)
    return Response(service.metrics.text(), media_type=CONTENT_TYPE_LATEST)


def _require_admin(request: Request, service: ServiceState) -> None:
    kind, _, token = request.headers.get("authorization", "").partition(" ")
    caller = service.tokens.check(token.strip()) if kind.lower() == "bearer" else None
    if caller is None or not caller.admin:
        raise ApiError(
            401,
            "unauthenticated",
            "web.metrics_auth is on: send an admin token as Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
