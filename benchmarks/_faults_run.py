"""One run of a fault scenario: a producer, paced traffic while faults strike, recovery.

Shared by the FakeCluster and the Tansu scenarios; they differ in how the broker is set
up, which faults exist and how the log is read back.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from asyncproducer import Producer
from benchmarks._faults_ledger import Ledger, Stored

Env = TypeVar("Env")

RETRY_LOG_MESSAGE = "retry %d of %s: %s"
"""The sender's debug line for each retry (asyncproducer/_sender.py); its last argument
is the error retried after."""

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
    tasks: int = 1
    """How many tasks share the traffic (each sends its part, paced over ``spread_s``)."""
    idempotence: tuple[bool, ...] = (True, False)
    """The idempotence settings it runs with, one row each."""


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
    tasks: int = 1,
) -> None:
    """Send ``count`` records to random partitions from ``tasks`` tasks, each paced over
    about ``spread_s`` seconds so the faults strike while batches are being built and
    are in flight."""

    async def one_task(share: int) -> None:
        steps = 100
        burst = max(1, share // steps)
        for index in range(share):
            await ledger.send(producer, topic, rng.randrange(partitions))
            if index % burst == burst - 1:
                await anyio.sleep(spread_s / steps)

    async with anyio.create_task_group() as group:
        for task in range(tasks):
            group.start_soon(one_task, count // tasks + (task < count % tasks))


async def recovery(producer: Producer, ledger: Ledger, topic: str, partitions: int) -> None:
    for partition in range(partitions):
        for _ in range(RECOVERY_PER_PARTITION):
            await ledger.send(producer, topic, partition, recovery=True)


@dataclass
class Outcome:
    """What a run left behind, besides its ledger."""

    stored: list[Stored]
    metrics: dict[str, float]
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
    tasks: int = 1
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def delivery_timeout_s(self) -> float:
        return self.settings.delivery_timeout_ms / 1000


@contextlib.contextmanager
def retry_causes(ledger: Ledger) -> Iterator[None]:
    """Count the errors the producer retried after (its debug log names each), and note
    them in the ledger: the report then shows which broker answers the faults caused.
    Only the counting needs the debug records; they go no further than the level the
    sender's logger had."""
    sender_log = logging.getLogger("asyncproducer.sender")
    own_level, shown_from = sender_log.level, sender_log.getEffectiveLevel()
    causes: Counter[str] = Counter()

    def count(record: logging.LogRecord) -> bool:
        if record.msg == RETRY_LOG_MESSAGE and len(record.args or ()) == 3:
            causes[type(record.args[2]).__name__] += 1  # type: ignore[index]
        return record.levelno >= shown_from

    sender_log.addFilter(count)
    sender_log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        sender_log.setLevel(own_level)
        sender_log.removeFilter(count)
        if causes:
            listed = ", ".join(f"{name} x{n}" for name, n in causes.most_common())
            ledger.notes.append(f"retried after: {listed}")


async def execute(run: Run, budget_s: float) -> None:
    """Produce through the faults, then recover; every step bounded. A run that overruns
    ``budget_s`` is abandoned and recorded as a problem (the engine hung somewhere)."""
    with retry_causes(run.ledger):
        await _execute(run, budget_s)


async def _execute(run: Run, budget_s: float) -> None:
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
            run.tasks,
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
