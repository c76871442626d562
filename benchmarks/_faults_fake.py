"""Fault scenarios on the in-process FakeCluster: broker-side faults, any number of brokers.

Each scenario is a script of faults at random moments (from the run's seed) while the
traffic flows; it heals what it broke before it returns. The cluster is fresh for every
run, and what it stored is read straight from its partition logs.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from asyncproducer.errors import KafkaTimeoutError
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from benchmarks._faults_ledger import Ledger, Stored
from benchmarks._faults_run import (
    Clock,
    Outcome,
    Run,
    Scenario,
    Settings,
    execute,
    fault_times,
    time_budget,
)

NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
ERROR_NAMES = {
    NOT_LEADER_OR_FOLLOWER: "NOT_LEADER_OR_FOLLOWER",
    REQUEST_TIMED_OUT: "REQUEST_TIMED_OUT",
}
PRODUCE = ApiKey.PRODUCE
TOPIC = "faults"


@dataclass
class FakeEnv:
    """What a fault script works with; ``injected`` describes what it did, for the report."""

    cluster: FakeCluster
    rng: random.Random
    partitions: int
    spread_s: float
    delivery_timeout_s: float
    clock: Clock = field(default_factory=Clock)
    injected: list[str] = field(default_factory=list)

    def note(self, when: float, text: str) -> None:
        self.injected.append(f"{when:.2f} s: {text}")

    def any_broker(self) -> int | None:
        """A broker to aim at, or None for whichever the request goes to."""
        return self.rng.choice([None, *self.cluster.broker_ids])

    def leader(self, partition: int) -> int:
        return self.cluster.leader_of(TOPIC, partition)


def _where(broker: int | None) -> str:
    return "any broker" if broker is None else f"broker {broker}"


# --------------------------------------------------------------------------- scripts


async def baseline(env: FakeEnv) -> None:
    """No faults: the reference row."""


async def retriable_errors(env: FakeEnv) -> None:
    for when in fault_times(env.rng, env.rng.randint(3, 6), env.spread_s):
        await env.clock.until(when)
        code = env.rng.choice([NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT])
        count, broker = env.rng.randint(1, 3), env.any_broker()
        env.cluster.fail_next(PRODUCE, code, count, broker=broker)
        env.note(when, f"next {count} Produce on {_where(broker)}: {ERROR_NAMES[code]}")


async def leader_moves(env: FakeEnv) -> None:
    # Slow answers keep batches in flight when the leader moves under them.
    delays = random.Random(env.rng.random())
    env.cluster.delay_responses(PRODUCE, lambda _: delays.uniform(0.02, 0.15))
    env.note(0, "every Produce answered after 20-150 ms")
    for when in fault_times(env.rng, env.rng.randint(3, 5), env.spread_s):
        await env.clock.until(when)
        partition = env.rng.randrange(env.partitions)
        old = env.leader(partition)
        new = env.rng.choice([b for b in env.cluster.broker_ids if b != old])
        env.cluster.move_leader(TOPIC, partition, to_broker=new)
        env.note(when, f"leader of partition {partition}: broker {old} -> {new}")
    await env.clock.until(env.spread_s)
    env.cluster.delay_responses(PRODUCE, 0)


def _drops(after_apply: bool) -> Callable[[FakeEnv], Awaitable[None]]:
    async def script(env: FakeEnv) -> None:
        for when in fault_times(env.rng, env.rng.randint(3, 5), env.spread_s):
            await env.clock.until(when)
            broker = env.any_broker()
            env.cluster.drop_connection(PRODUCE, after_apply=after_apply, broker=broker)
            what = "written, then the response lost" if after_apply else "dropped unwritten"
            env.note(when, f"next Produce on {_where(broker)} {what}")

    return script


async def black_hole(env: FakeEnv) -> None:
    broker = env.leader(env.rng.randrange(env.partitions))
    when, duration = env.rng.uniform(0.2, 0.4) * env.spread_s, env.rng.uniform(1.0, 1.6)
    await env.clock.until(when)
    env.cluster.black_hole(broker)
    await env.clock.until(when + duration)
    env.cluster.black_hole(broker, enabled=False)
    env.note(when, f"broker {broker} black-holed for {duration:.2f} s")


async def all_down(env: FakeEnv) -> None:
    when, duration = env.rng.uniform(0.2, 0.4) * env.spread_s, env.rng.uniform(1.0, 2.0)
    await env.clock.until(when)
    for broker in env.cluster.broker_ids:
        await env.cluster.stop_broker(broker)
    await env.clock.until(when + duration)
    for broker in env.cluster.broker_ids:
        await env.cluster.start_broker(broker)
    env.note(when, f"all brokers down for {duration:.2f} s")


async def down_too_long(env: FakeEnv) -> None:
    broker = env.leader(env.rng.randrange(env.partitions))
    when = env.rng.uniform(0.2, 0.4) * env.spread_s
    duration = env.delivery_timeout_s + env.rng.uniform(0.8, 1.5)
    await env.clock.until(when)
    await env.cluster.stop_broker(broker)
    await env.clock.until(when + duration)
    await env.cluster.start_broker(broker)
    env.note(when, f"broker {broker} down for {duration:.2f} s (longer than the delivery timeout)")


async def slow_too_long(env: FakeEnv) -> None:
    # Written at once, answered too late: the futures fail, yet the records are stored.
    broker = env.leader(env.rng.randrange(env.partitions))
    when = env.rng.uniform(0.2, 0.4) * env.spread_s
    duration = env.delivery_timeout_s + env.rng.uniform(0.5, 1.0)
    await env.clock.until(when)
    env.cluster.delay_responses(PRODUCE, env.delivery_timeout_s + 1, broker=broker)
    await env.clock.until(when + duration)
    env.cluster.delay_responses(PRODUCE, 0, broker=broker)
    env.note(
        when,
        f"broker {broker} writes each Produce but answers {env.delivery_timeout_s + 1:g} s "
        f"later, for {duration:.2f} s",
    )


async def retries_in_flight(env: FakeEnv) -> None:
    delays = random.Random(env.rng.random())
    env.cluster.delay_responses(PRODUCE, lambda _: delays.uniform(0.01, 0.08))
    env.note(0, "every Produce answered after 10-80 ms")
    await retriable_errors(env)
    await env.clock.until(env.spread_s)
    env.cluster.delay_responses(PRODUCE, 0)


async def mixed(env: FakeEnv) -> None:
    menu = [_mixed_error, _mixed_drop, _mixed_move, _mixed_black_hole, _mixed_bounce]
    for when in fault_times(env.rng, env.rng.randint(6, 10), env.spread_s):
        await env.clock.until(when)
        await env.rng.choice(menu)(env, when)


async def _mixed_error(env: FakeEnv, when: float) -> None:
    code, broker = env.rng.choice(list(ERROR_NAMES)), env.any_broker()
    env.cluster.fail_next(PRODUCE, code, broker=broker)
    env.note(when, f"next Produce on {_where(broker)}: {ERROR_NAMES[code]}")


async def _mixed_drop(env: FakeEnv, when: float) -> None:
    after_apply, broker = env.rng.random() < 0.5, env.any_broker()
    env.cluster.drop_connection(PRODUCE, after_apply=after_apply, broker=broker)
    moment = "after" if after_apply else "before"
    env.note(when, f"next Produce on {_where(broker)} dropped {moment} the write")


async def _mixed_move(env: FakeEnv, when: float) -> None:
    partition = env.rng.randrange(env.partitions)
    old = env.leader(partition)
    new = env.rng.choice([b for b in env.cluster.broker_ids if b != old])
    env.cluster.move_leader(TOPIC, partition, to_broker=new)
    env.note(when, f"leader of partition {partition}: broker {old} -> {new}")


async def _mixed_black_hole(env: FakeEnv, when: float) -> None:
    broker, duration = env.rng.choice(env.cluster.broker_ids), env.rng.uniform(0.3, 0.8)
    env.cluster.black_hole(broker)
    await env.clock.until(when + duration)
    env.cluster.black_hole(broker, enabled=False)
    env.note(when, f"broker {broker} black-holed for {duration:.2f} s")


async def _mixed_bounce(env: FakeEnv, when: float) -> None:
    broker, duration = env.rng.choice(env.cluster.broker_ids), env.rng.uniform(0.3, 1.0)
    await env.cluster.stop_broker(broker)
    await env.clock.until(when + duration)
    await env.cluster.start_broker(broker)
    env.note(when, f"broker {broker} down for {duration:.2f} s")


FAST_TIMEOUT = {"request_timeout_ms": 500}

SCENARIOS: list[Scenario[FakeEnv]] = [
    Scenario("baseline", "no faults", baseline),
    Scenario(
        "retriable-errors",
        "NOT_LEADER_OR_FOLLOWER / REQUEST_TIMED_OUT answers (nothing written), then success",
        retriable_errors,
    ),
    Scenario(
        "leader-moves",
        "partition leaders move while slow responses keep batches in flight",
        leader_moves,
    ),
    Scenario(
        "response-lost",
        "Produce written, then the connection drops before the response",
        _drops(after_apply=True),
    ),
    Scenario(
        "reset-before-apply",
        "the connection drops when a Produce arrives, before it is written",
        _drops(after_apply=False),
    ),
    Scenario(
        "black-hole",
        "a leader reads requests and never answers for 1-1.6 s (request timeout 500 ms)",
        black_hole,
        overrides=FAST_TIMEOUT,
    ),
    Scenario("all-down", "every broker down for 1-2 s, then back", all_down),
    Scenario(
        "down-too-long",
        "a leader down for longer than the delivery timeout, then back",
        down_too_long,
        expected_errors=(KafkaTimeoutError,),
    ),
    Scenario(
        "slow-too-long",
        "a leader writes but answers after the delivery timeout, for longer than it",
        slow_too_long,
        expected_errors=(KafkaTimeoutError,),
    ),
    Scenario(
        "retries-in-flight",
        "retriable errors while several requests are in flight (idempotence off: 5 in flight)",
        retries_in_flight,
        max_in_flight_off=5,
    ),
    Scenario(
        "mixed",
        "6 partitions, 6-10 random faults of every kind above",
        mixed,
        partitions=6,
        overrides=FAST_TIMEOUT,
    ),
]


# --------------------------------------------------------------------------- one run


async def heal(cluster: FakeCluster) -> None:
    for broker in cluster.broker_ids:
        cluster.black_hole(broker, enabled=False)
        await cluster.start_broker(broker)  # no-op for a live broker
    cluster.delay_responses(PRODUCE, 0)


async def run_fake(
    scenario: Scenario[FakeEnv],
    settings: Settings,
    config: dict[str, object],
    seed: int,
    ledger: Ledger,
) -> Outcome:
    """One run on a fresh cluster."""
    async with FakeCluster(brokers=scenario.brokers, auto_create_topics=False) as cluster:
        leaders = [p % scenario.brokers for p in range(scenario.partitions)]
        cluster.create_topic(TOPIC, scenario.partitions, leaders=leaders)
        env = FakeEnv(
            cluster,
            random.Random(f"{seed}:{scenario.name}:faults"),
            scenario.partitions,
            scenario.spread_s,
            settings.delivery_timeout_ms / 1000,
        )

        async def inject() -> None:
            env.clock = Clock()
            await scenario.inject(env)

        run = Run(
            settings,
            dict(config),
            cluster.bootstrap_servers,
            TOPIC,
            scenario.partitions,
            scenario.spread_s,
            random.Random(f"{seed}:{scenario.name}:traffic"),
            inject,
            lambda: heal(cluster),
            ledger,
        )
        await execute(run, budget_s=time_budget(scenario, settings))
        stored = [
            Stored(partition, record.offset, record.value)
            for partition in range(scenario.partitions)
            for record in cluster.records(TOPIC, partition)
        ]
    return Outcome(stored, run.metrics, env.injected)
