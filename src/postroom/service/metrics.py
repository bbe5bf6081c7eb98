"""Prometheus metrics: counters fed by this process's worker, gauges read at scrape."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from postroom.delivery.events import WorkerEvents
from postroom.runtime import Runtime
from postroom.store.capture_queries import count_captured
from postroom.store.queries import queue_summary
from postroom.store.records import MessageOutcome
from postroom.store.workers import WorkerRegistry

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Metrics(WorkerEvents):
    """Counters fed by this process's worker, and gauges read from the database at
    each scrape (so they count every worker's work, wherever it runs)."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "postroom_messages",
            "Delivery attempts recorded by this process's worker, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "postroom_delivery_latency_seconds",
            "From accepted (or due again) to delivered, for this process's worker.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_DatabaseGauges(runtime))
        runtime.add_events(self)

    def text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def recorded(self, outcomes: list[MessageOutcome]) -> None:
        for outcome in outcomes:
            if not outcome.counted:
                continue
            self.messages.labels(outcome.status).inc()
            if outcome.status == "sent" and outcome.queued_at:
                self.latency.observe(max(0.0, outcome.finished_at - outcome.queued_at))


class _DatabaseGauges:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        engine = self._runtime.postroom.engine
        now = time.time()
        counts, oldest = queue_summary(engine, now)
        depth = GaugeMetricFamily("postroom_queue_messages", "Messages by state.", labels=["state"])
        for state, count in counts.items():
            depth.add_metric([state], count)
        yield depth
        yield GaugeMetricFamily(
            "postroom_queue_oldest_seconds",
            "Age of the oldest message not yet delivered (0 when none).",
            value=oldest or 0.0,
        )
        yield GaugeMetricFamily(
            "postroom_captured_messages",
            "Messages in the mail record.",
            value=count_captured(engine),
        )
        workers = WorkerRegistry(engine).all(now=now)
        yield GaugeMetricFamily(
            "postroom_workers", "Delivery workers heard from lately.", value=len(workers)
        )
        yield GaugeMetricFamily(
            "postroom_delivery_paused",
            "1 while a configuration fault pauses delivery.",
            value=1.0 if any(w.paused(now) for w in workers) else 0.0,
        )
