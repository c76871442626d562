"""Fault scenarios on a real broker (Tansu) behind a FaultProxy: connection faults only.

Tansu advertises the proxy's address, so every connection the producer makes goes
through the proxy. What the broker stored is read back with confluent-kafka
(librdkafka, see _faults_readback.py). One broker and one proxy serve every
Tansu run; each run has a topic of its own.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio

from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.proxy import FaultProxy
from asyncproducer.testing.tansu import TansuBroker, find_tansu_binary
from benchmarks._faults_ledger import Ledger
from benchmarks._faults_readback import free_port, read_log
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


@dataclass
class ProxyEnv:
    proxy: FaultProxy
    rng: random.Random
    spread_s: float
    clock: Clock = field(default_factory=Clock)
    injected: list[str] = field(default_factory=list)

    def note(self, when: float, text: str) -> None:
        self.injected.append(f"{when:.2f} s: {text}")


# --------------------------------------------------------------------------- scripts


async def no_faults(env: ProxyEnv) -> None:
    """The reference row: the proxy only forwards."""


async def resets(env: ProxyEnv) -> None:
    for when in fault_times(env.rng, env.rng.randint(3, 5), env.spread_s):
        await env.clock.until(when)
        await env.proxy.reset()
        env.note(when, "every connection reset")


async def responses_lost(env: ProxyEnv) -> None:
    for when in fault_times(env.rng, env.rng.randint(2, 4), env.spread_s):
        await env.clock.until(when)
        if env.proxy.cut_pending:  # no Produce passed since the last one was armed
            env.note(when, "(the previous cut found no Produce request)")
        env.proxy.cut_after_request(api_key=ApiKey.PRODUCE)
        env.note(when, "next Produce forwarded, then its connection cut before the response")


async def black_hole(env: ProxyEnv) -> None:
    when, duration = env.rng.uniform(0.2, 0.4) * env.spread_s, env.rng.uniform(1.0, 1.6)
    await env.clock.until(when)
    env.proxy.black_hole(True)
    await env.clock.until(when + duration)
    env.proxy.black_hole(False)
    env.note(when, f"black hole for {duration:.2f} s")


async def down_up(env: ProxyEnv) -> None:
    when, duration = env.rng.uniform(0.2, 0.4) * env.spread_s, env.rng.uniform(1.0, 2.0)
    await env.clock.until(when)
    await env.proxy.down()
    await env.clock.until(when + duration)
    await env.proxy.up()
    env.note(when, f"broker unreachable (connections reset and refused) for {duration:.2f} s")


SCENARIOS: list[Scenario[ProxyEnv]] = [
    Scenario("tansu-baseline", "no faults: the proxy only forwards", no_faults, brokers=1),
    Scenario("tansu-reset", "every connection reset (RST), 3-5 times", resets, brokers=1),
    Scenario(
        "tansu-response-lost",
        "a Produce reaches Tansu, its response is cut off, 2-4 times",
        responses_lost,
        brokers=1,
    ),
    Scenario(
        "tansu-black-hole",
        "nothing gets through for 1-1.6 s (request timeout 500 ms)",
        black_hole,
        brokers=1,
        overrides={"request_timeout_ms": 500},
    ),
    Scenario("tansu-down-up", "the broker unreachable for 1-2 s", down_up, brokers=1),
]


# --------------------------------------------------------------------------- the broker


def tansu_unavailable() -> str | None:
    """Why the Tansu scenarios cannot run here, or None."""
    try:
        find_tansu_binary()
        import confluent_kafka  # noqa: F401
    except (FileNotFoundError, ImportError) as exc:
        return str(exc)
    return None


class TansuBehindProxy:
    """A Tansu broker advertising the port of a FaultProxy in front of it."""

    def __init__(self) -> None:
        self.broker = TansuBroker(advertised_port=free_port())
        self.proxy: FaultProxy | None = None

    async def __aenter__(self) -> TansuBehindProxy:
        await anyio.to_thread.run_sync(self.broker.start)
        self.proxy = FaultProxy(
            self.broker.bootstrap_servers, port=self.broker.advertised_port or 0
        )
        try:
            await self.proxy.__aenter__()
        except BaseException:
            await anyio.to_thread.run_sync(self.broker.kill)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.proxy is not None:
                await self.proxy.__aexit__(exc_type, exc, tb)
        finally:
            # kill, not stop: Tansu lets connections drain for ~5 s on SIGTERM.
            await anyio.to_thread.run_sync(self.broker.kill)


def create_topic(bootstrap_servers: str, topic: str, partitions: int) -> None:
    from confluent_kafka import admin

    # NewTopic is not re-exported by confluent_kafka.admin's stubs (though documented).
    new_topic: Any = admin.NewTopic  # type: ignore[attr-defined]

    # log_level 4: librdkafka's warnings and errors, not its notices on shutdown.
    client = admin.AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 4})
    futures = client.create_topics(
        [new_topic(topic, num_partitions=partitions, replication_factor=1)]
    )
    futures[topic].result(timeout=30)


async def run_tansu(
    session: TansuBehindProxy,
    scenario: Scenario[ProxyEnv],
    settings: Settings,
    config: dict[str, object],
    seed: int,
    ledger: Ledger,
) -> Outcome:
    """One run on a fresh topic of the shared broker."""
    proxy = session.proxy
    assert proxy is not None
    topic = f"faults-{scenario.name}-{uuid.uuid4().hex[:8]}"
    await anyio.to_thread.run_sync(
        create_topic, proxy.bootstrap_servers, topic, scenario.partitions
    )
    env = ProxyEnv(proxy, random.Random(f"{seed}:{scenario.name}:faults"), scenario.spread_s)

    async def inject() -> None:
        env.clock = Clock()
        await scenario.inject(env)

    run = Run(
        settings,
        dict(config),
        proxy.bootstrap_servers,
        topic,
        scenario.partitions,
        scenario.spread_s,
        random.Random(f"{seed}:{scenario.name}:traffic"),
        inject,
        proxy.heal,
        ledger,
    )
    cuts_before = proxy.cuts
    await execute(run, budget_s=time_budget(scenario, settings))
    await proxy.heal()
    if proxy.cuts > cuts_before:
        ledger.notes.append(f"{proxy.cuts - cuts_before} connections cut after a Produce")
    stored, missing = await anyio.to_thread.run_sync(
        read_log, proxy.bootstrap_servers, topic, scenario.partitions
    )
    if missing:
        ledger.problems.append(f"read back incomplete: {missing}")
    return Outcome(stored, run.metrics, env.injected)
