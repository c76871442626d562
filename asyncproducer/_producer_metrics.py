"""The producer's metrics, by the Java producer's names and with its semantics.

Every metric is one row of a table below: its name, what it reads (a statistic of a
sensor, or a gauge's function), and its description. The sender, the connections and the
buffer pool record events into the sensors (per batch and per request, never per record:
``send()`` and the C fast path record nothing); a metric's value is computed when read.

As in Java (``SenderMetricsRegistry``, ``Selector``), batch statistics are recorded each
time a batch is drained into a request, retries included: ``record-send-total`` counts
records sent, not records acknowledged. ``record-size-*`` takes each batch's largest
record (Java's ``maxRecordSize``). Units are Java's: ms, bytes, per second;
``metadata-age`` in seconds; ``bufferpool-wait-time-total`` in nanoseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from asyncproducer._metrics import Kind, Metric, MetricConfig, MetricRegistry, Sensor

PRODUCER_GROUP: Final = "producer-metrics"
TOPIC_GROUP: Final = "producer-topic-metrics"


def monotonic_ms() -> float:
    return time.monotonic() * 1000


# (metric name, sensor, statistic, description). Statistics: total (a counter), rate
# (the values' sum per second), count_rate (events per second), avg, max.
# The record counts, kept for the producer and for each topic alike.
_RECORD_COUNTS: Final = (
    ("record-send-rate", "records", "rate", "The average number of records sent per second."),
    ("record-send-total", "records", "total", "The total number of records sent."),
    (
        "record-retry-rate",
        "retries",
        "rate",
        "The average per-second number of retried record sends.",
    ),
    ("record-retry-total", "retries", "total", "The total number of retried record sends."),
    (
        "record-error-rate",
        "errors",
        "rate",
        "The average per-second number of record sends that resulted in errors.",
    ),
    (
        "record-error-total",
        "errors",
        "total",
        "The total number of record sends that resulted in errors.",
    ),
)

_SENSOR_METRICS: Final = (
    *_RECORD_COUNTS,
    (
        "records-per-request-avg",
        "records",
        "avg",
        "The average number of records per request.",
    ),
    ("record-size-avg", "record_size", "avg", "The average record size (bytes)."),
    ("record-size-max", "record_size", "max", "The maximum record size (bytes)."),
    (
        "batch-size-avg",
        "batch_size",
        "avg",
        "The average number of bytes sent per partition per request.",
    ),
    (
        "batch-size-max",
        "batch_size",
        "max",
        "The max number of bytes sent per partition per request.",
    ),
    (
        "batch-split-rate",
        "splits",
        "count_rate",
        "The average number of batch splits per second.",
    ),
    ("batch-split-total", "splits", "total", "The total number of batch splits."),
    (
        "compression-rate-avg",
        "compression",
        "avg",
        "The average compression rate of record batches: compressed bytes over uncompressed bytes.",
    ),
    (
        "record-queue-time-avg",
        "queue_time",
        "avg",
        "The average time in ms record batches spent in the send buffer.",
    ),
    (
        "record-queue-time-max",
        "queue_time",
        "max",
        "The maximum time in ms record batches spent in the send buffer.",
    ),
    (
        "request-latency-avg",
        "latency",
        "avg",
        "The average request latency in ms (Produce requests, written to answered).",
    ),
    ("request-latency-max", "latency", "max", "The maximum request latency in ms."),
    (
        "produce-throttle-time-avg",
        "throttle",
        "avg",
        "The average time in ms a request was throttled by a broker.",
    ),
    (
        "produce-throttle-time-max",
        "throttle",
        "max",
        "The maximum time in ms a request was throttled by a broker.",
    ),
    (
        "request-rate",
        "requests",
        "count_rate",
        "The number of requests sent per second (every API).",
    ),
    ("request-total", "requests", "total_count", "The total number of requests sent."),
    ("request-size-avg", "requests", "avg", "The average size of requests sent (bytes)."),
    ("request-size-max", "requests", "max", "The maximum size of any request sent (bytes)."),
    (
        "outgoing-byte-rate",
        "requests",
        "rate",
        "The number of outgoing bytes sent to all brokers per second.",
    ),
    (
        "outgoing-byte-total",
        "requests",
        "total",
        "The total number of outgoing bytes sent to all brokers.",
    ),
    (
        "response-rate",
        "responses",
        "count_rate",
        "The number of responses received per second.",
    ),
    ("response-total", "responses", "total_count", "The total number of responses received."),
    (
        "incoming-byte-rate",
        "incoming",
        "rate",
        "The number of bytes read off all sockets per second.",
    ),
    (
        "incoming-byte-total",
        "incoming",
        "total",
        "The total number of bytes read off all sockets.",
    ),
)

_TOPIC_METRICS: Final = (
    *_RECORD_COUNTS,
    ("byte-rate", "bytes", "rate", "The average number of bytes sent per second."),
    ("byte-total", "bytes", "total", "The total number of bytes sent."),
    (
        "compression-rate",
        "compression",
        "avg",
        "The average compression rate of record batches.",
    ),
)

_COUNTERS: Final = frozenset({"total", "total_count"})


def _reader(sensor: Sensor, statistic: str, clock: Callable[[], float]) -> Callable[[], float]:
    if statistic == "total":
        return lambda: sensor.total
    if statistic == "total_count":
        return lambda: float(sensor.count)
    method: Callable[[float], float] = getattr(sensor, statistic)
    return lambda: method(clock())


class _TopicSensors:
    __slots__ = ("bytes", "compression", "errors", "records", "retries")

    def __init__(self, config: MetricConfig, now_ms: float) -> None:
        self.records = Sensor(config, now_ms)
        self.bytes = Sensor(config, now_ms)
        self.compression = Sensor(config, now_ms)
        self.retries = Sensor(config, now_ms)
        self.errors = Sensor(config, now_ms)


class ProducerMetrics:
    """One producer's sensors and metrics (see the module docstring). ``gauges`` are
    registered by the parts that own the values (the buffer pool, the connections)."""

    def __init__(
        self,
        client_id: str,
        config: MetricConfig | None = None,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        self.config = config = MetricConfig() if config is None else config
        self.clock = clock
        self.registry = MetricRegistry()
        self._client_id = client_id
        now = clock()
        for name in (
            "records",
            "retries",
            "errors",
            "record_size",
            "batch_size",
            "splits",
            "compression",
            "queue_time",
            "latency",
            "throttle",
            "requests",
            "responses",
            "incoming",
        ):
            setattr(self, name, Sensor(config, now))
        for name, sensor, statistic, description in _SENSOR_METRICS:
            self._add(
                PRODUCER_GROUP,
                name,
                description,
                "counter" if statistic in _COUNTERS else "gauge",
                _reader(getattr(self, sensor), statistic, clock),
            )
        self.topics: dict[str, _TopicSensors] = {}

    # Declared for the type checker; set in __init__ from the table's sensor names.
    records: Sensor
    retries: Sensor
    errors: Sensor
    record_size: Sensor
    batch_size: Sensor
    splits: Sensor
    compression: Sensor
    queue_time: Sensor
    latency: Sensor
    throttle: Sensor
    requests: Sensor
    responses: Sensor
    incoming: Sensor

    def _add(
        self,
        group: str,
        name: str,
        description: str,
        kind: Kind,
        measure: Callable[[], float],
        **tags: str,
    ) -> None:
        self.registry.add(
            Metric(name, group, description, kind, {"client-id": self._client_id, **tags}, measure)
        )

    def add_gauge(
        self, name: str, description: str, measure: Callable[[], float], kind: Kind = "gauge"
    ) -> None:
        """A producer-level metric read from its owner (``buffer-available-bytes``...)."""
        self._add(PRODUCER_GROUP, name, description, kind, measure)

    def topic(self, topic: str) -> _TopicSensors:
        """The topic's sensors, registering its metrics the first time."""
        sensors = self.topics.get(topic)
        if sensors is None:
            sensors = self.topics[topic] = _TopicSensors(self.config, self.clock())
            for name, sensor, statistic, description in _TOPIC_METRICS:
                self._add(
                    TOPIC_GROUP,
                    name,
                    description,
                    "counter" if statistic in _COUNTERS else "gauge",
                    _reader(getattr(sensors, sensor), statistic, self.clock),
                    topic=topic,
                )
        return sensors

    # ------------------------------------------------------------------ events

    def batch_sent(
        self,
        topic: str,
        size: int,
        uncompressed: int,
        records: int,
        max_record_size: int,
        queue_ms: float,
        now: float,
    ) -> None:
        """A batch of ``records`` went into a request: ``size`` bytes encoded (compressed),
        ``uncompressed`` bytes before compression, ``queue_ms`` after it was created."""
        ratio = size / uncompressed
        self.batch_size.record(size, now)
        self.queue_time.record(queue_ms, now)
        self.compression.record(ratio, now)
        self.record_size.record(max_record_size, now)
        sensors = self.topics.get(topic) or self.topic(topic)
        sensors.records.record(records, now)
        sensors.bytes.record(size, now)
        sensors.compression.record(ratio, now)

    def request_sent(self, records: int, now: float) -> None:
        """A Produce request with ``records`` records in all went out."""
        self.records.record(records, now)

    def produce_answered(self, latency_ms: float, throttle_ms: float, now: float) -> None:
        self.latency.record(latency_ms, now)
        self.throttle.record(throttle_ms, now)

    def records_retried(self, topic: str, count: int, now: float) -> None:
        self.retries.record(count, now)
        (self.topics.get(topic) or self.topic(topic)).retries.record(count, now)

    def records_failed(self, topic: str, count: int, now: float) -> None:
        self.errors.record(count, now)
        (self.topics.get(topic) or self.topic(topic)).errors.record(count, now)

    def batch_split(self, now: float) -> None:
        self.splits.record(1, now)

    # The connections' events (any request, any broker): their own clock reading.

    def request_written(self, size: int) -> None:
        self.requests.record(size, self.clock())

    def response_read(self) -> None:
        self.responses.record(1, self.clock())

    def bytes_read(self, size: int) -> None:
        self.incoming.record(size, self.clock())

    # ------------------------------------------------------------------ reading

    def values(self, group: str = PRODUCER_GROUP) -> dict[str, float]:
        return {m.name: m.value() for m in self.registry if m.group == group}

    def topic_values(self) -> dict[str, dict[str, float]]:
        by_topic: dict[str, dict[str, float]] = {}
        for metric in self.registry:
            if metric.group == TOPIC_GROUP:
                by_topic.setdefault(metric.tags["topic"], {})[metric.name] = metric.value()
        return by_topic
