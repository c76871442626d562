"""Failover scenarios on a 3-node Apache Kafka cluster: real replication and elections.

One :class:`KafkaCluster` (3 KRaft nodes, each broker and controller) serves every run; a
``FaultProxy`` stands in front of each node's client listener (the nodes advertise the
proxies' ports, and replicate over a listener of their own). Each run has a topic of its
own: 6 partitions, replication factor 3, ``min.insync.replicas=2``. The producer sends
with acks=all, idempotence on and 5 requests in flight, from 20 tasks, while the scenario
kills, stops, restarts or cuts off nodes; confluent-kafka reads the log back.

Every scenario ends with all three nodes up and every partition fully replicated, so the
next one starts from a healthy cluster.
"""

from __future__ import annotations

import random
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType

import anyio

from asyncproducer.errors import KafkaTimeoutError
from asyncproducer.testing.kafka import KafkaCluster, KafkaNode
from asyncproducer.testing.proxy import FaultProxy
from benchmarks._faults_ledger import Ledger
from benchmarks._faults_readback import free_port, read_log
from benchmarks._faults_run import Clock, Outcome, Run, Scenario, Settings, execute, time_budget

PARTITIONS = 6
MIN_INSYNC = 2
TASKS = 20
HEALTHY_TIMEOUT_S = 90.0
"""How long a node may take to start and every partition to be fully replicated again."""

SETTINGS = Settings(
    records=50_000,
    delivery_timeout_ms=30_000,
    request_timeout_ms=3_000,
    linger_ms=5,
    retry_backoff_ms=100,
    retry_backoff_max_ms=1_000,
    reconnect_backoff_ms=50,
    reconnect_backoff_max_ms=1_000,
    max_block_ms=30_000,
)
"""Kafka's faults last seconds, not the fake's milliseconds: a killed leader is replaced
only once the controller fences it (6 s without a heartbeat, see KafkaCluster), and a
node takes 5-10 s to start. The delivery timeout leaves room for both."""


@dataclass
class KafkaEnv:
    cluster: KafkaCluster
    proxies: dict[int, FaultProxy]
    topic: str
    rng: random.Random
    spread_s: float
    clock: Clock = field(default_factory=Clock)
    injected: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.injected.append(f"{self.clock.now():.1f} s: {text}")

    async def leader(self, partition: int = 0) -> KafkaNode:
        return await anyio.to_thread.run_sync(self.cluster.leader_of, self.topic, partition)

    async def kill(self, node: KafkaNode) -> None:
        await anyio.to_thread.run_sync(node.kill)
        self.note(f"node {node.node_id} killed (SIGKILL)")

    async def stop(self, node: KafkaNode) -> None:
        await anyio.to_thread.run_sync(node.stop)
        self.note(f"node {node.node_id} stopped (controlled shutdown)")

    async def start(self, *nodes: KafkaNode) -> None:
        async with anyio.create_task_group() as group:  # JVMs start faster side by side
            for node in nodes:
                group.start_soon(self._start_one, node)

    async def _start_one(self, node: KafkaNode) -> None:
        started = time.monotonic()
        await anyio.to_thread.run_sync(self.cluster.start_node, node, HEALTHY_TIMEOUT_S)
        self.note(f"node {node.node_id} back ({time.monotonic() - started:.1f} s to start)")

    async def fully_replicated(self) -> None:
        """Wait until every partition of the topic has all three nodes in its ISR."""
        await anyio.to_thread.run_sync(wait_fully_replicated, self.cluster, self.topic)


def wait_fully_replicated(cluster: KafkaCluster, topic: str) -> None:
    deadline = time.monotonic() + HEALTHY_TIMEOUT_S
    while True:
        layout = cluster.describe_topic(topic)
        if layout and all(len(isr) == cluster.brokers for _, isr in layout.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic!r} not fully replicated after {HEALTHY_TIMEOUT_S:g} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------- scripts


async def baseline(env: KafkaEnv) -> None:
    """No faults: the reference row."""


async def leader_killed(env: KafkaEnv) -> None:
    """SIGKILL the leader of partition 0 a third of the way in; restart it 3 s later."""
    await env.clock.until(env.rng.uniform(0.25, 0.4) * env.spread_s)
    victim = await env.leader()
    await env.kill(victim)
    await anyio.sleep(3)
    await env.start(victim)
    await env.fully_replicated()


async def _two_down(env: KafkaEnv, hold_s: float) -> None:
    """Stop two nodes, one after the other: the controller takes each out of the ISRs as
    it shuts down, so the node left leads with an ISR of one, below min.insync.replicas=2:
    every Produce is answered NOT_ENOUGH_REPLICAS. (Killed rather than stopped, the second
    would take the quorum's majority with it before the ISRs could shrink.)"""
    await env.clock.until(env.rng.uniform(0.2, 0.3) * env.spread_s)
    survivor = await env.leader()
    down = [node for node in env.cluster.nodes if node is not survivor]
    for node in down:
        await env.stop(node)
    env.note(f"only node {survivor.node_id} left: ISR 1 < min.insync.replicas {MIN_INSYNC}")
    await anyio.sleep(hold_s)
    await env.start(*down)
    await env.fully_replicated()


async def two_down_in_time(env: KafkaEnv) -> None:
    await _two_down(env, hold_s=3.0)


async def two_down_too_long(env: KafkaEnv) -> None:
    # Longer than the delivery timeout (10 s for this scenario), counted from the moment
    # the second node is gone: what was sent meanwhile must fail, typed, in time.
    await _two_down(env, hold_s=13.0)


async def rolling_restart(env: KafkaEnv) -> None:
    """Each node in turn: controlled shutdown, start, wait until it is back in every ISR."""
    await env.clock.until(0.1 * env.spread_s)
    for node in env.cluster.nodes:
        await env.stop(node)
        await env.start(node)
        await env.fully_replicated()


async def cut_off(env: KafkaEnv) -> None:
    """The proxy in front of partition 0's leader swallows everything for 5 s (request
    timeout 3 s): the node stays healthy and leads, so only the client side breaks."""
    await env.clock.until(env.rng.uniform(0.25, 0.4) * env.spread_s)
    victim = await env.leader()
    proxy = env.proxies[victim.node_id]
    proxy.black_hole(True)
    env.note(f"node {victim.node_id} black-holed by its proxy")
    await anyio.sleep(5)
    proxy.black_hole(False)
    env.note(f"node {victim.node_id} reachable again")


def _scenario(
    name: str,
    summary: str,
    inject: Callable[[KafkaEnv], Awaitable[None]],
    spread_s: float,
    **options: object,
) -> Scenario[KafkaEnv]:
    return Scenario(
        name,
        summary,
        inject,
        partitions=PARTITIONS,
        spread_s=spread_s,
        tasks=TASKS,
        idempotence=(True,),
        **options,  # type: ignore[arg-type]
    )


SCENARIOS: list[Scenario[KafkaEnv]] = [
    _scenario("kafka-baseline", "no faults", baseline, spread_s=5),
    _scenario(
        "kafka-leader-killed",
        "the leader of partition 0 SIGKILLed mid-stream, restarted 3 s later",
        leader_killed,
        spread_s=12,
    ),
    _scenario(
        "kafka-two-down",
        "two nodes stopped (NOT_ENOUGH_REPLICAS) for 3 s, then started again",
        two_down_in_time,
        spread_s=12,
    ),
    _scenario(
        "kafka-two-down-too-long",
        "two nodes stopped for 13 s, longer than the delivery timeout (10 s)",
        two_down_too_long,
        spread_s=12,
        overrides={"delivery_timeout_ms": 10_000},
        expected_errors=(KafkaTimeoutError,),
    ),
    _scenario(
        "kafka-rolling-restart",
        "every node in turn: controlled shutdown, start, back in every ISR",
        rolling_restart,
        spread_s=30,
    ),
    _scenario(
        "kafka-cut-off",
        "the leader of partition 0 black-holed by its proxy for 5 s",
        cut_off,
        spread_s=12,
    ),
]


# --------------------------------------------------------------------------- the cluster


def kafka_unavailable() -> str | None:
    """Why the Kafka scenarios cannot run here, or None."""
    if shutil.which("java") is None:
        return "needs java (apt-get install openjdk-17-jre-headless)"
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def cluster_for_proxies() -> KafkaCluster:
    """A 3-node cluster (not started) whose nodes advertise ports a proxy will take."""
    return KafkaCluster(brokers=3, advertised_ports={n: free_port() for n in (1, 2, 3)})


class KafkaBehindProxies:
    """A FaultProxy in front of each node of ``cluster``, listening on the port the node
    advertises. Without a ``cluster``, one from :func:`cluster_for_proxies` is started and
    ended with the proxies; a given one outlives them (the proxies belong to one event
    loop, a cluster can serve several one after the other)."""

    def __init__(self, cluster: KafkaCluster | None = None) -> None:
        self._given = cluster
        self.cluster: KafkaCluster | None = cluster
        self.proxies: dict[int, FaultProxy] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> KafkaBehindProxies:
        await self._stack.__aenter__()
        try:
            if self.cluster is None:
                self.cluster = await self._stack.enter_async_context(cluster_for_proxies())
            for node in self.cluster.nodes:
                proxy = FaultProxy(node.bootstrap_server, port=node.advertised_port)
                self.proxies[node.node_id] = await self._stack.enter_async_context(proxy)
        except BaseException:
            await self._stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(proxy.bootstrap_servers for proxy in self.proxies.values())


async def run_kafka(
    session: KafkaBehindProxies,
    scenario: Scenario[KafkaEnv],
    settings: Settings,
    config: dict[str, object],
    seed: int,
    ledger: Ledger,
) -> Outcome:
    """One run on a fresh topic of the shared cluster."""
    cluster = session.cluster
    assert cluster is not None
    topic = f"faults-{scenario.name}-{uuid.uuid4().hex[:8]}"
    await anyio.to_thread.run_sync(
        lambda: cluster.create_topic(
            topic,
            partitions=scenario.partitions,
            replication_factor=3,
            configs={"min.insync.replicas": str(MIN_INSYNC)},
        )
    )
    env = KafkaEnv(
        cluster,
        session.proxies,
        topic,
        random.Random(f"{seed}:{scenario.name}:faults"),
        scenario.spread_s,
    )

    async def inject() -> None:
        env.clock = Clock()
        await scenario.inject(env)

    async def heal() -> None:
        for proxy in session.proxies.values():
            await proxy.heal()
        down = [node for node in cluster.nodes if not node.running]
        if down:  # the scenario failed half-way: leave a healthy cluster for the next
            ledger.problems.append(f"nodes {[n.node_id for n in down]} were left down")
            await env.start(*down)
            await env.fully_replicated()

    run = Run(
        settings,
        dict(config),
        session.bootstrap_servers,
        topic,
        scenario.partitions,
        scenario.spread_s,
        random.Random(f"{seed}:{scenario.name}:traffic"),
        inject,
        heal,
        ledger,
        tasks=scenario.tasks,
    )
    await execute(run, budget_s=time_budget(scenario, settings) + HEALTHY_TIMEOUT_S)
    await heal()
    stored, missing = await anyio.to_thread.run_sync(
        read_log, session.bootstrap_servers, topic, scenario.partitions
    )
    if missing:
        ledger.problems.append(f"read back incomplete: {missing}")
    return Outcome(stored, run.metrics, env.injected)
