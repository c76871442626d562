"""Metrics with the Java client's semantics: sensors over sampled time windows.

A :class:`Sensor` takes the values of one kind of event (a batch's size, a request's
latency) and keeps, besides its cumulative count and sum, ``samples`` windows of
``window_ms`` each (Java's ``metrics.num.samples`` and ``metrics.sample.window.ms``). Its
windowed statistics combine the windows still current, as Java's ``SampledStat`` does:

- the average and maximum of the values recorded in them (NaN when none was);
- a rate per second: their sum (or their count) over the time they cover, which counts
  as at least ``samples - 1`` whole windows, so that a rate does not spike in the first
  milliseconds of a new window (Java's ``Rate.windowSize``).

A :class:`Metric` is one named value read from a sensor (or any function): its name,
group and tags as Java names them, a description, and whether it only grows (a
``counter``: Prometheus' ``_total``) or goes up and down (a ``gauge``). Recording costs a
few attribute updates per event; reading does the arithmetic. Pure: the clock (ms) is
passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from asyncproducer._value import Value

Kind = Literal["counter", "gauge"]


class MetricConfig(Value):
    __slots__ = ("samples", "window_ms")
    _fields = ("samples", "window_ms")

    samples: int
    """Windows kept (``metrics_num_samples``)."""
    window_ms: int
    """Length of one window (``metrics_sample_window_ms``)."""

    def __init__(self, samples: int = 2, window_ms: int = 30_000) -> None:
        self.samples = samples
        self.window_ms = window_ms


class _Sample:
    __slots__ = ("count", "max", "start_ms", "sum")

    def __init__(self, start_ms: float) -> None:
        self.start_ms = start_ms
        self.count = 0
        self.sum = 0.0
        self.max = -math.inf

    def reset(self, start_ms: float) -> None:
        self.start_ms = start_ms
        self.count = 0
        self.sum = 0.0
        self.max = -math.inf


class Sensor:
    """The events of one kind: cumulative ``count`` and ``total``, and sampled windows."""

    __slots__ = ("_config", "_current", "_samples", "count", "total")

    def __init__(self, config: MetricConfig, now_ms: float) -> None:
        self._config = config
        self._samples = [_Sample(now_ms)]
        self._current = 0
        self.count = 0
        self.total = 0.0

    def record(self, value: float, now_ms: float) -> None:
        sample = self._samples[self._current]
        if now_ms - sample.start_ms >= self._config.window_ms:
            sample = self._advance(now_ms)
        sample.count += 1
        sample.sum += value
        if value > sample.max:
            sample.max = value
        self.count += 1
        self.total += value

    def _advance(self, now_ms: float) -> _Sample:
        """The next window starts at ``now_ms`` (reusing the oldest once all exist)."""
        samples = self._samples
        self._current = (self._current + 1) % self._config.samples
        if self._current == len(samples):
            samples.append(_Sample(now_ms))
        else:
            samples[self._current].reset(now_ms)
        return samples[self._current]

    def _live(self, now_ms: float) -> list[_Sample]:
        """The windows still current at ``now_ms``; older ones are emptied (Java's
        ``purgeObsoleteSamples``)."""
        expire_ms = self._config.samples * self._config.window_ms
        for sample in self._samples:
            if now_ms - sample.start_ms >= expire_ms:
                sample.reset(now_ms)
        return self._samples

    def avg(self, now_ms: float) -> float:
        samples = self._live(now_ms)
        count = sum(s.count for s in samples)
        return sum(s.sum for s in samples) / count if count else math.nan

    def max(self, now_ms: float) -> float:
        values = [s.max for s in self._live(now_ms) if s.count]
        return max(values) if values else math.nan

    def rate(self, now_ms: float) -> float:
        """The values' sum per second over the windows."""
        samples = self._live(now_ms)
        return sum(s.sum for s in samples) / self._window_s(samples, now_ms)

    def count_rate(self, now_ms: float) -> float:
        """Events per second over the windows."""
        samples = self._live(now_ms)
        return sum(s.count for s in samples) / self._window_s(samples, now_ms)

    def _window_s(self, samples: list[_Sample], now_ms: float) -> float:
        config = self._config
        elapsed = now_ms - min(s.start_ms for s in samples)
        full_windows = int(elapsed // config.window_ms)
        if full_windows < config.samples - 1:
            elapsed += (config.samples - 1 - full_windows) * config.window_ms
        return max(elapsed, 1.0) / 1000


@dataclass(frozen=True, slots=True, eq=False)
class Metric:
    """One metric: what Java's ``KafkaMetric`` says of itself, and its value now."""

    name: str
    """Java's name, e.g. ``record-send-rate``."""
    group: str
    """``producer-metrics``, ``producer-topic-metrics`` or ``producer-node-metrics``."""
    description: str
    kind: Kind
    """``counter``: only grows (a total); ``gauge``: any value, NaN when undefined."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """``client-id``, and ``topic`` or ``node-id`` for the per-topic and per-node groups."""
    measure: Callable[[], float] = field(default=lambda: math.nan, repr=False)

    def value(self) -> float:
        return float(self.measure())

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What identifies it: name, group, tags."""
        return self.name, self.group, tuple(sorted(self.tags.items()))


class MetricsReporter(Protocol):
    """What ``metric_reporters`` takes (Java's ``MetricsReporter``, snake_case): told of
    every metric when the producer starts, of each one added later (a topic's, a broker's),
    of each removed, and closed with the producer. Read values with ``metric.value()``;
    the methods run on the event loop: keep them short."""

    def init(self, metrics: list[Metric]) -> None: ...

    def metric_change(self, metric: Metric) -> None: ...

    def metric_removal(self, metric: Metric) -> None: ...

    def close(self) -> None: ...


class MetricListener(Protocol):
    """What the registry tells of changes (a reporter, wrapped so it cannot raise)."""

    def metric_change(self, metric: Metric) -> None: ...

    def metric_removal(self, metric: Metric) -> None: ...


class MetricRegistry:
    """Every metric of one producer, in the order they were added; reporters hear of
    additions and removals."""

    def __init__(self) -> None:
        self._metrics: dict[tuple[str, str, tuple[tuple[str, str], ...]], Metric] = {}
        self.reporters: list[MetricListener] = []

    def add(self, metric: Metric) -> None:
        self._metrics[metric.key] = metric
        for reporter in self.reporters:
            reporter.metric_change(metric)

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._metrics.values()))

    def __len__(self) -> int:
        return len(self._metrics)
