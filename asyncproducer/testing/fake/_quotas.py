"""Client quotas (KIP-13) and the throttling of KIP-219, as a Kafka broker applies them.

Pure bookkeeping, the clock passed in (seconds); the sockets' side (answering at once,
then not reading the connection until the throttle ends) is in :mod:`.server`.

What Kafka does, and this module models:

* A quota is a ``producer_byte_rate`` per client id, or a default for every client id
  without one of its own. Each broker enforces it alone: a client producing to three
  brokers may send three times the quota in all.
* Each broker measures each client id's Produce bytes (the request's size) as Kafka's
  ``Rate`` over a ``WindowedSum``: ``quota.window.num`` samples (default 11) of
  ``quota.window.size.seconds`` (default 1), divided by the time they span, which is
  never taken as less than ``num - 1`` whole windows (so a client's first burst is
  spread over them).
* The bytes are recorded first, then compared: a request that takes the rate over the
  quota is still served, and its response carries the time that, with nothing more
  sent, brings the rate back to the quota: ``(rate - quota) / quota * span``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_WINDOW",
    "ClientQuotas",
    "QuotaWindow",
    "RequestArrival",
    "Throttle",
    "WindowedRate",
    "throttle_ms",
    "violations",
]


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """Kafka's ``quota.window.num`` and ``quota.window.size.seconds`` (a float here, so
    tests can use short windows)."""

    samples: int = 11
    size_s: float = 1.0

    def __post_init__(self) -> None:
        if self.samples < 2:
            # One sample would make the measured span a fraction of a window: any
            # request could be throttled for an arbitrarily long time.
            raise ValueError(f"quota_window_num must be >= 2, got {self.samples}")
        if not self.size_s > 0:
            raise ValueError(f"quota_window_size_seconds must be > 0, got {self.size_s}")


DEFAULT_WINDOW = QuotaWindow()


@dataclass(slots=True)
class _Sample:
    start: float
    last_event: float
    total: float = 0.0


class WindowedRate:
    """Units per second over the last ``window.samples`` windows, as Kafka's ``Rate``."""

    def __init__(self, window: QuotaWindow) -> None:
        self._window = window
        # One more sample than the window count, as Kafka keeps: the oldest may still
        # overlap the measured span.
        self._samples: list[_Sample] = []
        self._current = 0

    def record(self, value: float, now: float) -> None:
        if not self._samples:
            self._samples.append(_Sample(now, now))
        sample = self._samples[self._current]
        if now - sample.start >= self._window.size_s:
            sample = self._advance(now)
        sample.total += value
        sample.last_event = now

    def _advance(self, now: float) -> _Sample:
        self._current = (self._current + 1) % (self._window.samples + 1)
        if self._current == len(self._samples):
            self._samples.append(_Sample(now, now))
        else:
            self._samples[self._current] = _Sample(now, now)
        return self._samples[self._current]

    def measure(self, now: float) -> tuple[float, float]:
        """(rate per second, the span in seconds it was measured over)."""
        self._purge(now)
        if not self._samples:
            self._samples.append(_Sample(now, now))
        span = self.span(now)
        return sum(s.total for s in self._samples) / span, span

    def span(self, now: float) -> float:
        """Since the oldest sample began, but at least ``samples - 1`` whole windows
        more than the whole windows it has (Kafka assumes empty windows before the
        first, rather than judging a first burst over a few milliseconds)."""
        size = self._window.size_s
        elapsed = now - min(s.start for s in self._samples)
        whole = int(elapsed // size)
        wanted = self._window.samples - 1
        if whole < wanted:
            elapsed += (wanted - whole) * size
        return elapsed

    def _purge(self, now: float) -> None:
        # A sample with no event in the whole monitored span no longer counts.
        expiry = self._window.samples * self._window.size_s
        for i, sample in enumerate(self._samples):
            if now - sample.last_event >= expiry:
                self._samples[i] = _Sample(now, now)


def throttle_ms(rate: float, quota: float, span_s: float) -> int:
    """How long (ms, rounded as Kafka does) a client measured at ``rate`` over ``span_s``
    must send nothing for its rate to be back at ``quota``: with O the rate, T the quota
    and W the span, O * W / (W + X) = T gives X = (O - T) / T * W. 0 within the quota."""
    if rate <= quota:
        return 0
    # Java's Math.round: halves go up (Python's round() would go to even).
    return math.floor((rate - quota) / quota * span_s * 1000.0 + 0.5)


@dataclass(frozen=True, slots=True)
class RequestArrival:
    """A request as it arrived on a connection while quotas were in force."""

    broker: int
    connection: int
    client_id: str | None
    api_key: int
    correlation_id: int
    at: float
    """When the fake read it off the socket (``time.monotonic()``), which while the
    connection is throttled is before it is served."""


@dataclass(frozen=True, slots=True)
class Throttle:
    """A throttle time a broker gave one Produce request, and the connection's mute."""

    broker: int
    connection: int
    client_id: str | None
    correlation_id: int
    throttle_ms: int
    started: float
    """When the throttle began (``time.monotonic()``): for a throttle the client was told about,
    when the response was written (it cannot have known before); otherwise when the
    request was handled."""
    ends: float
    """``started + throttle_ms``: when the broker reads the connection again."""
    told: bool
    """The response carried the throttle time for the client to honour (Produce v6+,
    acks != 0). acks=0 gets no response, and before v6 the broker held the response for
    the throttle time instead: then nothing is expected of the client."""


def violations(
    arrivals: list[RequestArrival], throttles: list[Throttle], api_key: int | None = None
) -> list[RequestArrival]:
    """The requests (of ``api_key``, or any) that arrived on a connection while a
    throttle it had been told about held it: what a client honouring KIP-219 never
    sends. Requests written before the throttled response reached the client are not
    counted: the broker reads everything already sent before it writes that response."""
    windows: dict[tuple[int, int], list[Throttle]] = {}
    for throttle in throttles:
        if throttle.told:
            windows.setdefault((throttle.broker, throttle.connection), []).append(throttle)
    return [
        arrival
        for arrival in arrivals
        if (api_key is None or arrival.api_key == api_key)
        and any(
            t.started < arrival.at < t.ends
            for t in windows.get((arrival.broker, arrival.connection), ())
        )
    ]


@dataclass(slots=True)
class ClientQuotas:
    """The cluster's ``producer_byte_rate`` quotas, each broker's measured rates, and
    what was throttled; one per fake cluster."""

    window: QuotaWindow = DEFAULT_WINDOW
    limits: dict[str | None, float] = field(default_factory=dict)
    """Client id -> bytes per second; the key None is the default for every client id."""
    rates: dict[tuple[int, str], WindowedRate] = field(default_factory=dict)
    arrivals: list[RequestArrival] = field(default_factory=list)
    throttles: list[Throttle] = field(default_factory=list)

    def set(self, client_id: str | None, producer_byte_rate: float | None) -> None:
        if producer_byte_rate is None:
            self.limits.pop(client_id, None)
            return
        if not producer_byte_rate > 0:
            # Kafka refuses a quota <= 0 too (it would throttle everything forever).
            raise ValueError(f"producer_byte_rate must be > 0, got {producer_byte_rate!r}")
        self.limits[client_id] = float(producer_byte_rate)

    @property
    def enabled(self) -> bool:
        """Kafka measures clients only while some quota is set; arrivals are recorded
        while a throttle given earlier may still hold a connection, too."""
        return bool(self.limits) or bool(self.throttles)

    def limit_for(self, client_id: str | None) -> float | None:
        """The quota of ``client_id``: its own, else the default, else None (unlimited)."""
        own = self.limits.get(client_id or "")
        return own if own is not None else self.limits.get(None)

    def record_produce(self, broker: int, client_id: str | None, size: int, now: float) -> int:
        """Count ``size`` bytes of a Produce request on ``broker``; the throttle time (ms)
        its response must carry, 0 within the quota."""
        if not self.limits:
            return 0
        key = (broker, client_id or "")
        rate = self.rates.get(key)
        if rate is None:
            rate = self.rates[key] = WindowedRate(self.window)
        rate.record(size, now)
        quota = self.limit_for(client_id)
        if quota is None:
            return 0
        measured, span = rate.measure(now)
        return throttle_ms(measured, quota, span)
