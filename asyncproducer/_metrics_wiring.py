"""The producer's gauges (values its parts own) and its metric reporters' lifecycle."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asyncproducer._metrics import Metric, MetricRegistry

if TYPE_CHECKING:
    from asyncproducer.producer import Producer

logger = logging.getLogger("asyncproducer.metrics")


def register_gauges(producer: Producer) -> list[Any]:
    """Add the producer-level gauges; return its ``metric_reporters`` (classes made
    instances, as Java instantiates reporter classes)."""
    metrics, memory, pool = producer._metrics, producer._memory, producer._pool
    refreshed = [time.monotonic()]

    def metadata_refreshed(_: object) -> None:
        refreshed[0] = time.monotonic()

    producer._metadata.add_listener(metadata_refreshed)
    idempotence = producer._sender._idempotence
    gauges = (
        (
            "buffer-total-bytes",
            "The maximum amount of buffer memory the client can use.",
            lambda: memory.total,
        ),
        (
            "buffer-available-bytes",
            "The total amount of buffer memory that is not being used.",
            lambda: memory.available,
        ),
        (
            "bufferpool-wait-time-total",
            "The total time in nanoseconds send() calls waited for buffer memory.",
            lambda: memory.wait_time_ns,
        ),
        (
            "bufferpool-wait-time-ns-total",
            "The total time in nanoseconds send() calls waited for buffer memory.",
            lambda: memory.wait_time_ns,
        ),
        (
            "waiting-threads",
            "The number of send() calls waiting for buffer memory.",
            lambda: memory.waiting,
        ),
        (
            "requests-in-flight",
            "The current number of requests awaiting a response.",
            lambda: sum(c.pending_count for c in pool.open_connections),
        ),
        (
            "connection-count",
            "The current number of open connections.",
            lambda: len(pool.open_connections),
        ),
        (
            "metadata-age",
            "The age in seconds of the cluster metadata in use.",
            lambda: time.monotonic() - refreshed[0],
        ),
        (
            "epoch-bump-total",
            "asyncproducer's own: the producer epochs bumped to recover sequences (KIP-360).",
            lambda: 0 if idempotence is None else idempotence.epoch_bumps,
        ),
    )
    for name, description, measure in gauges:
        kind = "counter" if name.endswith("-total") else "gauge"
        metrics.add_gauge(name, description, measure, kind)  # type: ignore[arg-type]
    return [r() if isinstance(r, type) else r for r in producer.config.metric_reporters]


def start_reporters(
    reporters: list[Any], registry: MetricRegistry, configs: Mapping[str, object]
) -> None:
    """Configure each reporter (if it can be), give it every metric, and keep it told."""
    for reporter in reporters:
        configure = getattr(reporter, "configure", None)
        if configure is not None:
            configure(dict(configs))
        init = getattr(reporter, "init", None)
        if init is not None:
            init(list(registry))
    registry.reporters = [_Tolerant(r) for r in reporters]


class _Tolerant:
    """A reporter whose errors are logged, never raised into the sender (Java's
    ``Metrics`` logs a reporter's exception too)."""

    def __init__(self, reporter: Any) -> None:
        self.reporter = reporter

    def metric_change(self, metric: Metric) -> None:
        self._call("metric_change", metric)

    def metric_removal(self, metric: Metric) -> None:
        self._call("metric_removal", metric)

    def _call(self, method: str, metric: object) -> None:
        hook = getattr(self.reporter, method, None)
        if hook is None:
            return
        try:
            hook(metric)
        except Exception:
            logger.exception("metric reporter %r failed in %s", self.reporter, method)


def close_reporters(reporters: list[Any]) -> None:
    for reporter in reporters:
        close = getattr(reporter, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception:
            logger.exception("metric reporter %r failed to close", reporter)
