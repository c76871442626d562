"""One run of a fault scenario: a producer, paced traffic while faults strike, recovery.

Shared by the FakeCluster and the Tansu scenarios; they differ in how the broker is set
up, which faults exist and how the log is read back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from asyncproducer import Producer
from benchmarks._faults_ledger import Ledger, Stored

Env = TypeVar("Env")

RECOVERY_PER_PARTITION = 2
"""Records sent to every partition after the faults ended: they must all be acknowledged."""
WAIT_SLACK_S = 2.0
"""How much longer than ``delivery_timeout_ms`` the report waits for a future."""


@dataclass(frozen=True)
class Settings:
    """Producer settings shared by every run (short, so the matrix takes a minute or two)."""

    records: int = 1000
    delivery_timeout_ms: int = 4000
    request_timeout_ms: int = 1000
    linger_ms: int = 5
    retry_backoff_ms: int = 20
    retry_backoff_max_ms: int = 200
    reconnect_backoff_ms: int = 20
    reconnect_backoff_max_ms: int = 200
    max_block_ms: int = 5000

    def producer_config(
        self, *, idempotence: bool, max_in_flight: int, overrides: dict[str, int]
    ) -> dict[str, Any]:
        config: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": idempotence,
            "max_in_flight_requests_per_connection": max_in_flight,
            "linger_ms": self.linger_ms,
            "delivery_timeout_ms": self.delivery_timeout_ms,
            "request_timeout_ms": self.request_timeout_ms,
            "retry_backoff_ms": self.retry_backoff_ms,
            "retry_backoff_max_ms": self.retry_backoff_max_ms,
            "reconnect_backoff_ms": self.reconnect_backoff_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
            "max_block_ms": self.max_block_ms,
        }
        config.update(overrides)
        return config


@dataclass(frozen=True)
class Scenario(Generic[Env]):
    """A named fault schedule. ``inject(env)`` runs while the traffic flows and must end
    on its own, every fault healed; ``env`` is the broker side (cluster or proxy)."""

    name: str
    summary: str
    inject: Callable[[Env], Awaitable[None]]
    partitions: int = 3
    brokers: int = 3
    overrides: dict[str, int] = field(default_factory=dict)
    max_in_flight_off: int = 1
    spread_s: float = 1.5
    expected_errors: tuple[type[BaseException], ...] = ()
    """Exception types the failures of this scenario must have (empty: any)."""


def time_budget(scenario: Scenario[Any], settings: Settings) -> float:
    """How long one run may take: the traffic, its faults (at most the delivery timeout
    and a bit), two waits for the futures, and room to spare."""
    return scenario.spread_s + 3 * settings.delivery_timeout_ms / 1000 + 20


class Clock:
    """Seconds since the traffic started; fault scripts schedule themselves on it."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.started

    async def until(self, when: float) -> None:
        await anyio.sleep(max(0.0, when - self.now()))


def fault_times(rng: random.Random, count: int, spread_s: float) -> list[float]:
    """``count`` moments within the traffic (not at its very start or end), in order."""
    return sorted(rng.uniform(0.1 * spread_s, 0.8 * spread_s) for _ in range(count))


async def traffic(
    producer: Producer,
    ledger: Ledger,
    topic: str,
    partitions: int,
    count: int,
    spread_s: float,
    rng: random.Random,
) -> None:
    """Send ``count`` records to random partitions, paced over about ``spread_s`` seconds
    so the faults strike while batches are being built and are in flight."""
    steps = 100
    burst = max(1, count // steps)
    for index in range(count):
        await ledger.send(producer, topic, rng.randrange(partitions))
        if index % burst == burst - 1:
            await anyio.sleep(spread_s / steps)


async def recovery(producer: Producer, ledger: Ledger, topic: str, partitions: int) -> None:
    for partition in range(partitions):
        for _ in range(RECOVERY_PER_PARTITION):
            await ledger.send(producer, topic, partition, recovery=True)


@dataclass
class Outcome:
    """What a run left behind, besides its ledger."""

    stored: list[Stored]
    metrics: dict[str, int]
    injected: list[str]


@dataclass
class Run:
    """Everything one run needs, whatever the broker."""

    settings: Settings
    config: dict[str, Any]
    bootstrap_servers: str
    topic: str
    partitions: int
    spread_s: float
    traffic_rng: random.Random
    inject: Callable[[], Coroutine[Any, Any, None]]
    heal: Callable[[], Awaitable[None]]
    ledger: Ledger
    metrics: dict[str, int] = field(default_factory=dict)

    @property
    def delivery_timeout_s(self) -> float:
        return self.settings.delivery_timeout_ms / 1000


async def execute(run: Run, budget_s: float) -> None:
    """Produce through the faults, then recover; every step bounded. A run that overruns
    ``budget_s`` is abandoned and recorded as a problem (the engine hung somewhere)."""
    producer = Producer(run.bootstrap_servers, **run.config)
    with anyio.move_on_after(10) as starting:
        await producer.start()
    if starting.cancelled_caught:
        run.ledger.problems.append("Producer.start() did not return within 10 s")
        return
    try:
        with anyio.move_on_after(budget_s) as scope:
            await _produce(run, producer)
        if scope.cancelled_caught:
            run.ledger.problems.append(f"the run did not finish within {budget_s:g} s")
    finally:
        run.metrics = producer.metrics()
        await _close(run, producer)


async def _produce(run: Run, producer: Producer) -> None:
    ledger = run.ledger
    with anyio.fail_after(run.settings.max_block_ms / 1000 + 5):
        await producer.partitions_for(run.topic)  # metadata before the faults start
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run.inject)
        await traffic(
            producer,
            ledger,
            run.topic,
            run.partitions,
            run.settings.records,
            run.spread_s,
            run.traffic_rng,
        )
    await run.heal()  # a no-op when the scenario healed itself, as it should
    if not await ledger.wait(run.delivery_timeout_s + WAIT_SLACK_S):
        ledger.notes.append("some futures were still pending after the faults")
    await recovery(producer, ledger, run.topic, run.partitions)
    await ledger.wait(run.delivery_timeout_s + WAIT_SLACK_S)


async def _close(run: Run, producer: Producer) -> None:
    # close() fails what is still pending after its timeout; it must itself return.
    started = time.monotonic()
    with anyio.move_on_after(10) as scope:
        await producer.close(timeout=5)
    if scope.cancelled_caught:
        run.ledger.problems.append("Producer.close(timeout=5) did not return within 10 s")
    elif time.monotonic() - started > 6:
        run.ledger.notes.append(f"close took {time.monotonic() - started:.1f} s")


def unexpected_errors(ledger: Ledger, expected: tuple[type[BaseException], ...]) -> list[str]:
    """Failures of a type the scenario does not expect (e.g. not KafkaTimeoutError)."""
    if not expected:
        return []
    others = [
        s.error for s in ledger.records if s.error is not None and not isinstance(s.error, expected)
    ]
    if not others:
        return []
    names = " or ".join(e.__name__ for e in expected)
    return [f"{len(others)} failures were not {names} (first: {others[0]!r})"]
