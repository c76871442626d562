"""The producers' metrics for Prometheus (``asyncproducer[prometheus]``).

::

    from prometheus_client import REGISTRY
    from asyncproducer.integrations.prometheus import ProducerCollector

    collector = ProducerCollector(producer, registry=REGISTRY)   # more: collector.add(p)

Nothing is registered at import, and nothing unless ``registry`` is given (or
``collector.register(registry)`` called). Each scrape reads the producers' metrics then
(:meth:`Producer.all_metrics`): no task, no background work.

Names follow Prometheus' conventions: ``kafka_producer_`` and the Java name in
snake_case (``kafka_producer_topic_`` for the per-topic ones), base units (times in
seconds, sizes in bytes, named in the suffix), and counters ending in ``_total``. Labels
are of low cardinality only: ``client_id``, and ``topic`` for the per-topic metrics;
never a key or a partition. Java's windowed rates and averages come as gauges; for
dashboards prefer ``rate()`` over the counters, which Prometheus computes itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from asyncproducer import Metric as ProducerMetric
    from asyncproducer import Producer

__all__ = ["ProducerCollector", "prometheus_name"]

_PREFIX: Final = {
    "producer-metrics": "kafka_producer_",
    "producer-topic-metrics": "kafka_producer_topic_",
}
_MILLISECONDS: Final = frozenset(
    {
        "record-queue-time-avg",
        "record-queue-time-max",
        "request-latency-avg",
        "request-latency-max",
        "produce-throttle-time-avg",
        "produce-throttle-time-max",
    }
)
_BYTES: Final = frozenset(
    {
        "batch-size-avg",
        "batch-size-max",
        "record-size-avg",
        "record-size-max",
        "request-size-avg",
        "request-size-max",
    }
)
# Java's deprecated alias of bufferpool-wait-time-ns-total: exported once.
_SKIPPED: Final = frozenset({"bufferpool-wait-time-total"})
_LABELS: Final = {"client-id": "client_id", "topic": "topic"}


def prometheus_name(group: str, name: str) -> tuple[str, float] | None:
    """The Prometheus name of a Java metric (without a counter's ``_total``, which the
    client library adds) and the factor to its base unit; None if it is not exported."""
    if name in _SKIPPED or group not in _PREFIX:
        return None
    scale = 1.0
    base = name.replace("byte-", "bytes-").removesuffix("-total")
    if name in _MILLISECONDS:
        base, scale = base + "-seconds", 1e-3
    elif name == "bufferpool-wait-time-ns-total":
        base, scale = "bufferpool-wait-time-seconds", 1e-9
    elif name == "metadata-age":
        base = "metadata-age-seconds"
    elif name in _BYTES:
        base += "-bytes"
    return _PREFIX[group] + base.replace("-", "_"), scale


class ProducerCollector(Collector):
    """Collects the metrics of one or more producers (labelled by ``client_id``)."""

    def __init__(self, *producers: Producer, registry: CollectorRegistry | None = None) -> None:
        self._producers: list[Producer] = list(producers)
        self._registries: list[CollectorRegistry] = []
        if registry is not None:
            self.register(registry)

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self)
        self._registries.append(registry)

    def unregister(self) -> None:
        """Leave every registry this collector was registered with."""
        for registry in self._registries:
            registry.unregister(self)
        self._registries.clear()

    def add(self, producer: Producer) -> None:
        if producer not in self._producers:
            self._producers.append(producer)

    def remove(self, producer: Producer) -> None:
        self._producers.remove(producer)

    def describe(self) -> Iterable[Metric]:
        # Nothing to check at registration: the names depend on the topics used, and
        # collecting then would read producers that may not have started.
        return []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for producer in self._producers:
            for metric in producer.all_metrics():
                self._add(families, metric)
        yield from families.values()

    @staticmethod
    def _add(families: dict[str, Metric], metric: ProducerMetric) -> None:
        named = prometheus_name(metric.group, metric.name)
        if named is None:
            return
        name, scale = named
        value = metric.value()
        labels = {_LABELS[k]: v for k, v in metric.tags.items() if k in _LABELS}
        family = families.get(name)
        if family is None:
            family_type = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
            family = families[name] = family_type(name, metric.description, labels=sorted(labels))
        if math.isnan(value) and metric.kind == "counter":
            return  # a counter has a value from the start; NaN cannot be one
        family.add_metric([labels[k] for k in sorted(labels)], value * scale)  # type: ignore[attr-defined]
