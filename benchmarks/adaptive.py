"""Adaptive partitioning (KIP-794): keyless records on a cluster with one slow broker.

    python -m benchmarks.adaptive [--broker fake|kafka] [--records 100000] [--rounds 3]
                                  [--variants adaptive adaptive-off uniform-sticky ...]
                                  [--base-delay-ms 20] [--slowdown 10]
                                  [--availability-timeout-ms 100] [--loop asyncio|uvloop|trio]
                                  [--json PATH] [--markdown]

Issue 23 item 4's measurement: with one broker 10x slower than the others, adaptive
partitioning should give keyless records at least twice the uniform sticky partitioner's
(KIP-480) throughput, a lower latency p99, and strand no record on the slow broker beyond
``delivery_timeout_ms``.

The cluster (``--broker``), 3 brokers and a topic of 12 partitions, 4 led by each:

- ``fake``: a :class:`~asyncproducer.testing.fake.FakeCluster` in this process (it shares
  the producer's event loop and CPU). Every broker's Produce responses are delayed by
  ``--base-delay-ms``, one broker's by ``--slowdown`` times that. The fake, like Kafka,
  takes one request per connection at a time, so its delay also holds the requests
  pipelined behind: a broker slow to *process*. The default base, 20 ms, is about what
  a 3-node Kafka with acks=all answers one record in on a small machine, and makes the
  slow broker, not the CPU the producer shares with the fake, what bounds uniform-sticky
  (with 5 ms, the reference below is barely faster than uniform-sticky itself).
- ``kafka``: a 3-node :class:`~asyncproducer.testing.kafka.KafkaCluster` (replication
  factor 3), a ``FaultProxy`` in front of each node. One proxy makes its node slow to
  *process* (``FaultProxy.slow_requests``): on each connection the node gets one request
  at a time, each only once it answered the one before, then after a processing time
  sized so that the node's produce latency is ``--slowdown`` times the median of the
  others', as measured first (then measured again with it in place, and corrected, up
  to ``CORRECTIONS`` times). A delay on the responses alone (``delay_responses``) made
  the node far *away*, not slow: Kafka kept working on the 5 requests in flight while
  the proxy held their answers, and the node barely limited anyone's throughput.

Before the rounds (on Kafka, after ``WARM_UP_RECORDS`` records to warm its JVMs up), each
broker's produce latency is measured (``PROBES`` records sent one at a time to a
partition it leads, the brokers in turn, ``linger_ms=0``) and reported: the slowdown the
variants actually met.

The variants (``--variants``), each a new producer per run:

- ``adaptive``: ``partitioner_adaptive_partitioning_enable=True`` (KIP-794, the default);
- ``adaptive-off``: ``partitioner_adaptive_partitioning_enable=False`` (the built-in
  partitioner without load weights: a new partition after ``batch_size`` bytes);
- ``uniform-sticky``: ``partitioner=UniformStickyPartitioner`` (KIP-480: a new partition
  with each new batch), what the target is measured against;
- ``availability``: adaptive with ``partitioner_availability_timeout_ms`` set
  (``--availability-timeout-ms``, 100): a broker that could not take a request that
  long gets no new keyless records;
- ``no-slow-broker``: ``uniform-sticky`` with the slow broker's slowdown lifted for its
  runs (the others' delay stays): the reference, what this harness gets when no broker
  is slow. A partitioner cannot beat it by much, so it says how far the target is
  reachable here at all.

A variant the producer refuses (a ``ConfigError`` before KIP-794 landed) is reported as
such; the others still run. Each run sends ``--records`` keyless 100-byte values from one
task, with at most ``--window`` (10,000) unacknowledged (then it waits for any to come back:
awaiting the oldest would pace a run by the slow broker, whatever share it got), with
``linger_ms=5``, ``batch_size=16384``, ``acks=all``, idempotence on,
``delivery_timeout_ms=30000`` and ``request_timeout_ms=10000``. Rounds are interleaved
(every variant in round 1, then round 2, ...).

Reported per variant, medians of the rounds: msg/s; latency p50 and p99 (send() called ->
acknowledgement, per record); each broker's share of the records (by the partition's
leader); and over all rounds: the worst latency, the worst on the slow broker, against
``delivery_timeout_ms``, and the records that failed. Then each variant against
``uniform-sticky``: the median of the per-round msg/s ratios and p99 ratios, and whether
issue 23's target is met (>= 2x, p99 lower, nothing failed or over the delivery timeout;
not asked of the reference).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from asyncproducer import Producer
from asyncproducer.partitioners import UniformStickyPartitioner
from asyncproducer.protocol.versions import ApiKey
from benchmarks._bench_drive import WINDOW, Tally
from benchmarks._bench_report import percentile, plain
from benchmarks._bench_run import machine

PARTITIONS = 12
VALUE = b"v" * 100
PROBES = 20
"""Records sent one at a time to each broker to measure its produce latency."""
PROBE_TIMEOUT_S = 120.0
WARM_UP_RECORDS = 20_000
"""Sent to a new Kafka cluster before measuring it: its JVMs answer slower until warm."""
CORRECTIONS = 3
"""At most this many measure-and-correct steps for the Kafka proxy's delay."""
TOLERANCE = 0.15
"""The slowdown reached is good enough within this fraction of the one asked for."""
DELIVERY_TIMEOUT_MS = 30_000
PRODUCER: Mapping[str, Any] = {
    "linger_ms": 5,
    "batch_size": 16384,
    "acks": "all",
    "enable_idempotence": True,
    "delivery_timeout_ms": DELIVERY_TIMEOUT_MS,
    # delivery_timeout_ms must cover linger_ms + request_timeout_ms (Java's rule).
    "request_timeout_ms": 10_000,
}
BASELINE = "uniform-sticky"
"""Ratios are against this variant: "the uniform sticky partitioner" of the target."""
TARGET_RATIO = 2.0
REFERENCE = "no-slow-broker"
"""uniform-sticky with the slow broker's slowdown lifted for the run: what this harness
gets when no broker is slow, about the most a partitioner could reach here."""
REFERENCE_NOTE = (
    "no-slow-broker: uniform-sticky with the slow broker as fast as the others for its runs "
    "(a reference: what this harness gets with no broker slow)."
)


def variant_configs(availability_timeout_ms: int) -> dict[str, dict[str, Any]]:
    """Each variant's producer settings, on top of :data:`PRODUCER`."""
    return {
        "adaptive": {"partitioner_adaptive_partitioning_enable": True},
        "adaptive-off": {"partitioner_adaptive_partitioning_enable": False},
        BASELINE: {"partitioner": UniformStickyPartitioner},
        "availability": {
            "partitioner_adaptive_partitioning_enable": True,
            "partitioner_availability_timeout_ms": availability_timeout_ms,
        },
        REFERENCE: {"partitioner": UniformStickyPartitioner},
    }


VARIANTS = tuple(variant_configs(0))


@dataclass
class Setup:
    """The cluster the rounds run on, and the latency each broker was measured at."""

    bootstrap_servers: str
    topic: str
    leaders: dict[int, int]  # partition -> leader broker
    slow: int  # the slow broker's id
    description: str
    probe_ms: dict[int, float] = field(default_factory=dict)
    """Median produce latency of each broker, with the slowdown in place."""
    unslowed_probe_ms: dict[int, float] = field(default_factory=dict)
    """The same before the slowdown (kafka: what the proxy's processing time was sized
    from)."""

    @property
    def brokers(self) -> list[int]:
        return sorted(set(self.leaders.values()))


@dataclass
class Run:
    """One variant in one round. ``error``: the run could not be made (the producer
    refused the settings, or it did not finish); its figures are then empty."""

    variant: str
    round: int
    records: int
    seconds: float = 0.0
    acked: int = 0
    failed: int = 0
    first_error: str | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    per_broker: dict[int, int] = field(default_factory=dict)  # acked records by leader
    max_ms_per_broker: dict[int, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def msgs_per_s(self) -> float | None:
        if self.error is not None or not self.seconds:
            return None
        return self.acked / self.seconds


# --------------------------------------------------------------------------- a run


async def produce(
    producer: Producer,
    topic: str,
    records: int,
    leaders: Mapping[int, int],
    run: Run,
    window: int = WINDOW,
) -> None:
    """Send ``records`` keyless values, at most ``window`` unacknowledged; fill ``run``."""
    tally = Tally(records, latencies=True)
    all_done = anyio.Event()
    tally.on_done = all_done.set
    by_broker: Counter[int] = Counter()
    worst: dict[int, float] = {}

    def done(i: int, sent: float, future: Any) -> None:
        latency = time.perf_counter() - sent
        tally.latency[i] = latency
        try:
            metadata = future.result()
        except BaseException as exc:  # the record's failure (a cancellation too), counted
            tally.fail(exc)
            return
        tally.ok()
        broker = leaders[metadata.partition]
        by_broker[broker] += 1
        worst[broker] = max(worst.get(broker, 0.0), latency)

    room = anyio.Event()

    def counted(i: int, sent: float, future: Any) -> None:
        nonlocal room
        done(i, sent, future)
        room.set()

    started = time.perf_counter()
    for i in range(records):
        # At most `window` unacknowledged, whichever come back first: awaiting the oldest
        # would make the run's pace the slowest broker's, whatever went there.
        while i - (tally.acked + tally.failed) >= window:
            await room.wait()
            room = anyio.Event()
        sent = time.perf_counter()
        future = await producer.send(topic, VALUE)
        future.add_done_callback(partial(counted, i, sent))
    await producer.flush()
    if tally.acked + tally.failed < records:  # done() runs as a callback: may come later
        await all_done.wait()  # bounded by the caller
    run.seconds = time.perf_counter() - started
    run.acked, run.failed, run.first_error = tally.acked, tally.failed, tally.first_error
    latencies = tally.latencies()
    if latencies:
        run.p50_ms = percentile(latencies, 50) * 1000
        run.p99_ms = percentile(latencies, 99) * 1000
        run.max_ms = latencies[-1] * 1000
    run.per_broker = dict(sorted(by_broker.items()))
    run.max_ms_per_broker = {b: worst[b] * 1000 for b in sorted(worst)}


async def run_variant(
    setup: Setup,
    variant: str,
    config: Mapping[str, Any],
    round_: int,
    records: int,
    limit_s: float,
    window: int = WINDOW,
) -> Run:
    """One run of ``variant`` with a new producer; a failure is the run's ``error``."""
    run = Run(variant, round_, records)
    try:
        producer = Producer(setup.bootstrap_servers, **PRODUCER, **config)
    except Exception as exc:
        run.error = f"refused at construction: {type(exc).__name__}: {exc}"
        return run
    try:
        with anyio.fail_after(limit_s):
            async with producer:
                # Metadata, connections, producer id: before the clock starts.
                await producer.send_and_wait(setup.topic, VALUE)
                await produce(producer, setup.topic, records, setup.leaders, run, window)
    except TimeoutError:
        run.error = f"did not finish in {limit_s:g} s"
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    return run


async def probe(setup: Setup) -> dict[int, float]:
    """Each broker's median produce latency (ms): PROBES records one at a time, to the
    first partition it leads, ``linger_ms=0``; the brokers take turns, so that a change
    in the machine's load meanwhile falls on all of them."""
    first_led = {b: min(p for p, led in setup.leaders.items() if led == b) for b in setup.brokers}
    times: dict[int, list[float]] = {b: [] for b in first_led}
    with anyio.fail_after(PROBE_TIMEOUT_S):
        async with Producer(setup.bootstrap_servers, linger_ms=0) as producer:
            for turn in range(PROBES + 1):
                for broker, partition in first_led.items():
                    sent = time.perf_counter()
                    await producer.send_and_wait(setup.topic, VALUE, partition=partition)
                    if turn:  # the first turn connects
                        times[broker].append((time.perf_counter() - sent) * 1000)
    return {b: statistics.median(ms) for b, ms in times.items()}


# --------------------------------------------------------------------------- clusters


Slowed = Callable[[bool], None]
"""``slowed(False)`` lifts the slow broker's slowdown (it is as fast as the others),
``slowed(True)`` puts it back."""


@asynccontextmanager
async def fake_cluster(
    base_delay_ms: float, slowdown: float
) -> AsyncIterator[tuple[Setup, Slowed]]:
    from asyncproducer.testing.fake import FakeCluster

    async with FakeCluster(brokers=3) as cluster:
        topic = "adaptive"
        cluster.create_topic(topic, PARTITIONS)
        slow = cluster.broker_ids[0]
        setup = Setup(
            cluster.bootstrap_servers,
            topic,
            {p: cluster.leader_of(topic, p) for p in range(PARTITIONS)},
            slow,
            f"FakeCluster, 3 brokers in this process; Produce responses delayed "
            f"{base_delay_ms:g} ms, broker {slow}'s {base_delay_ms * slowdown:g} ms",
        )

        def slowed(on: bool, broker: int = slow) -> None:
            factor = slowdown if on else 1.0
            cluster.delay_responses(ApiKey.PRODUCE, base_delay_ms * factor / 1000, broker=broker)

        for broker in cluster.broker_ids:
            slowed(broker == slow, broker)
        setup.probe_ms = await probe(setup)
        yield setup, slowed


@asynccontextmanager
async def kafka_cluster(slowdown: float) -> AsyncIterator[tuple[Setup, Slowed]]:
    from benchmarks._faults_kafka import KafkaBehindProxies

    async with KafkaBehindProxies() as session:
        cluster = session.cluster
        assert cluster is not None
        topic = f"adaptive-{uuid.uuid4().hex[:8]}"
        await anyio.to_thread.run_sync(
            partial(cluster.create_topic, topic, PARTITIONS, replication_factor=3)
        )
        layout = await anyio.to_thread.run_sync(cluster.describe_topic, topic)
        slow = cluster.nodes[0].node_id
        setup = Setup(
            session.bootstrap_servers,
            topic,
            {p: leader for p, (leader, _) in layout.items()},
            slow,
            "",
        )
        await warm_up(setup)
        setup.unslowed_probe_ms = measured = await probe(setup)
        proxy = session.proxies[slow]
        processing = 0.0
        # Kafka's latency drifts (JIT, the shared machine): measure again with the
        # processing time in place and correct it, until the slowdown is near enough.
        for _ in range(CORRECTIONS):
            processing = processing_ms(measured, slow, slowdown, processing)
            proxy.slow_requests(processing / 1000)
            measured = await probe(setup)
            if abs(slowness(measured, slow) / slowdown - 1) <= TOLERANCE:
                break
        setup.probe_ms = measured
        setup.description = (
            f"Apache Kafka {cluster.version}, 3 nodes (replication factor 3), a FaultProxy "
            f"in front of each; node {slow}'s takes its requests one at a time per "
            f"connection, {processing:.1f} ms each (FaultProxy.slow_requests)"
        )
        yield setup, lambda on: proxy.slow_requests(processing / 1000 if on else 0)


async def warm_up(setup: Setup) -> None:
    with anyio.fail_after(PROBE_TIMEOUT_S):
        async with Producer(setup.bootstrap_servers, **PRODUCER) as producer:
            futures = [await producer.send(setup.topic, VALUE) for _ in range(WARM_UP_RECORDS)]
            for future in futures:
                await future


def others_ms(measured_ms: Mapping[int, float], slow: int) -> float:
    """The median latency of the brokers other than ``slow``."""
    return statistics.median(ms for broker, ms in measured_ms.items() if broker != slow)


def slowness(measured_ms: Mapping[int, float], slow: int) -> float:
    """The slow broker's latency ÷ the median of the others'."""
    return measured_ms[slow] / others_ms(measured_ms, slow)


def processing_ms(
    measured_ms: Mapping[int, float], slow: int, slowdown: float, in_place_ms: float = 0.0
) -> float:
    """The proxy's processing time (``slow_requests``) that makes ``slow``'s latency
    ``slowdown`` times the median of the other brokers', from their latencies
    ``measured_ms`` with ``in_place_ms`` in place: on a request sent alone, as the probe
    sends them, it adds to the broker's own latency."""
    return max(0.0, in_place_ms + slowdown * others_ms(measured_ms, slow) - measured_ms[slow])


# --------------------------------------------------------------------------- the rounds


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    configs = variant_configs(args.availability_timeout_ms)
    cluster = (
        fake_cluster(args.base_delay_ms, args.slowdown)
        if args.broker == "fake"
        else kafka_cluster(args.slowdown)
    )
    runs: list[Run] = []
    async with cluster as (setup, slowed):
        progress(f"{setup.description}; measured latency (ms): {probe_text(asdict(setup))}")
        for round_ in range(1, args.rounds + 1):
            for variant in args.variants:
                slowed(variant != REFERENCE)
                run = await run_variant(
                    setup,
                    variant,
                    configs[variant],
                    round_,
                    args.records,
                    args.timeout,
                    args.window,
                )
                progress(f"round {round_}, {variant}: {describe(run)}")
                runs.append(run)
    return {
        "settings": settings(args, configs),
        "machine": machine(setup.description),
        "setup": asdict(setup),
        "summary": summarise(runs, args.variants, setup.slow),
        "versus_baseline": versus_baseline(runs, args.variants),
        "runs": [asdict(run) | {"msgs_per_s": run.msgs_per_s} for run in runs],
    }


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def describe(run: Run) -> str:
    if run.error is not None:
        return f"ERROR {run.error}"
    return (
        f"{run.msgs_per_s:,.0f} msg/s, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
        f"max {run.max_ms:.1f} ms, by broker {run.per_broker}, {run.failed} failed"
    )


def settings(args: argparse.Namespace, configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "broker": args.broker,
        "records": args.records,
        "rounds": args.rounds,
        "slowdown": args.slowdown,
        "base_delay_ms": args.base_delay_ms if args.broker == "fake" else None,
        "loop": args.loop,
        "value_bytes": len(VALUE),
        "partitions": PARTITIONS,
        "window": args.window,
        "producer": {k: str(v) for k, v in PRODUCER.items()},
        "variants": {v: {k: str(x) for k, x in configs[v].items()} for v in args.variants},
    }


# --------------------------------------------------------------------------- figures


def median_of(values: Sequence[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return statistics.median(seen) if seen else None


def shares(run: Run) -> dict[int, float]:
    """Each broker's fraction of the run's acknowledged records."""
    total = sum(run.per_broker.values())
    return {b: n / total for b, n in run.per_broker.items()} if total else {}


def summarise(runs: Sequence[Run], variants: Sequence[str], slow: int) -> list[dict[str, Any]]:
    """Per variant: medians of its good runs, worst cases and failures over all of them."""
    rows = []
    for variant in variants:
        mine = [r for r in runs if r.variant == variant]
        good = [r for r in mine if r.error is None]
        brokers = sorted({b for r in good for b in r.per_broker})
        worst = max((r.max_ms for r in good if r.max_ms is not None), default=None)
        rows.append(
            {
                "variant": variant,
                "runs": len(mine),
                "good_runs": len(good),
                "errors": sorted({r.error for r in mine if r.error is not None}),
                "msgs_per_s": median_of([r.msgs_per_s for r in good]),
                "p50_ms": median_of([r.p50_ms for r in good]),
                "p99_ms": median_of([r.p99_ms for r in good]),
                "max_ms": worst,
                "max_ms_slow_broker": max(
                    (r.max_ms_per_broker.get(slow, 0.0) for r in good), default=None
                ),
                "max_vs_delivery_timeout": None if worst is None else worst / DELIVERY_TIMEOUT_MS,
                "share": {b: median_of([shares(r).get(b, 0.0) for r in good]) for b in brokers},
                "failed": sum(r.failed for r in good),
                "first_error": next((r.first_error for r in good if r.first_error), None),
            }
        )
    return rows


def versus_baseline(runs: Sequence[Run], variants: Sequence[str]) -> list[dict[str, Any]]:
    """Each variant against :data:`BASELINE` in the same round: the medians over rounds of
    msg/s ÷ baseline msg/s and p99 ÷ baseline p99, and whether the target is met."""
    base = {r.round: r for r in runs if r.variant == BASELINE and r.error is None}
    rows = []
    for variant in variants:
        if variant == BASELINE:
            continue
        pairs = [
            (r, base[r.round])
            for r in runs
            if r.variant == variant and r.error is None and r.round in base
        ]
        throughput = median_of([_ratio(r.msgs_per_s, b.msgs_per_s) for r, b in pairs])
        p99 = median_of([_ratio(r.p99_ms, b.p99_ms) for r, b in pairs])
        mine = [r for r, _ in pairs]
        clean = all(
            not r.failed and r.max_ms is not None and r.max_ms < DELIVERY_TIMEOUT_MS for r in mine
        )
        met = None
        if throughput is not None and p99 is not None and variant != REFERENCE:
            met = throughput >= TARGET_RATIO and p99 < 1.0 and clean
        rows.append(
            {
                "variant": variant,
                "rounds": len(pairs),
                "msgs_per_s_ratio": throughput,
                "p99_ratio": p99,
                "none_failed_or_late": clean if pairs else None,
                "target_met": met,
            }
        )
    return rows


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


# --------------------------------------------------------------------------- report


def probe_text(setup: Mapping[str, Any]) -> str:
    """Each broker's measured latency, from a :class:`Setup` as a dict (``asdict``, or
    read back from JSON, where the keys are strings)."""
    after = {int(b): ms for b, ms in setup["probe_ms"].items()}
    before = {int(b): ms for b, ms in setup["unslowed_probe_ms"].items()}
    slow = int(setup["slow"])

    def one(broker: int) -> str:
        was = f" (before the slowdown {before[broker]:.1f})" if broker in before else ""
        return f"broker {broker}{' (slow)' if broker == slow else ''} {after[broker]:.1f}{was}"

    ratio = slowness(after, slow)
    return ", ".join(one(b) for b in sorted(after)) + f"; the slow one {ratio:.1f}x the others"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def report(document: Mapping[str, Any]) -> str:
    """The report as Markdown (``plain()`` makes its tables columns for a terminal)."""
    setup, slow = document["setup"], document["setup"]["slow"]
    brokers = sorted({int(b) for b in setup["leaders"].values()})
    share_head = " / ".join(f"{b}{'*' if b == slow else ''}" for b in brokers)
    lines = [
        f"| variant | runs | msg/s | p50 (ms) | p99 (ms) | max (ms) | max on slow (ms) | "
        f"max ÷ delivery timeout | share by broker {share_head} | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in document["summary"]:
        by_broker = {int(b): fraction for b, fraction in row["share"].items()}
        share = " / ".join(f"{by_broker.get(b, 0.0):.0%}" for b in brokers)
        lines.append(
            f"| {row['variant']} | {row['good_runs']}/{row['runs']} | "
            f"{_fmt(row['msgs_per_s'], ',.0f')} | {_fmt(row['p50_ms'], '.1f')} | "
            f"{_fmt(row['p99_ms'], '.1f')} | {_fmt(row['max_ms'], '.0f')} | "
            f"{_fmt(row['max_ms_slow_broker'], '.0f')} | "
            f"{_fmt(row['max_vs_delivery_timeout'], '.3f')} | "
            f"{share if row['good_runs'] else 'n/a'} | {row['failed']:,} |"
        )
    ratios = [
        f"| variant ÷ {BASELINE} | rounds | msg/s ratio | p99 ratio | none failed or late "
        f"| target met (>= {TARGET_RATIO:g}x, p99 lower, none failed or late) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in document["versus_baseline"]:
        ratios.append(
            f"| {row['variant']} | {row['rounds']} | {_fmt(row['msgs_per_s_ratio'], '.2f', 'x')} "
            f"| {_fmt(row['p99_ratio'], '.2f', 'x')} | {_yes_no(row['none_failed_or_late'])} "
            f"| {_yes_no(row['target_met'])} |"
        )
    errors = [
        f"- {row['variant']}: {error}" for row in document["summary"] for error in row["errors"]
    ]
    failures = [
        f"- {row['variant']}: {row['failed']:,} records failed, the first with {row['first_error']}"
        for row in document["summary"]
        if row["failed"]
    ]
    settings = document["settings"]
    return "\n\n".join(
        part
        for part in (
            f"{setup['description']}; {settings['records']:,} keyless records of "
            f"{settings['value_bytes']} B per run, {settings['rounds']} interleaved rounds, "
            f"medians (max and failed: over every round), {settings['loop']}.\n"
            f"Produce latency measured per broker (ms, one record at a time): "
            f"{probe_text(setup)}. * = the slow broker.",
            "\n".join(lines),
            "\n".join(ratios),
            REFERENCE_NOTE if any(r["variant"] == REFERENCE for r in document["summary"]) else "",
            "\n".join(["Runs that could not be made:", *errors]) if errors else "",
            "\n".join(["Records that failed:", *failures]) if failures else "",
        )
        if part
    )


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adaptive", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--broker", choices=("fake", "kafka"), default="fake")
    parser.add_argument("--records", type=int, default=100_000, help="per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--window", type=int, default=WINDOW, help="records unacknowledged at most (any order)"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument(
        "--base-delay-ms", type=float, default=20.0, help="fake: every broker's Produce delay"
    )
    parser.add_argument("--slowdown", type=float, default=10.0, help="the slow broker's factor")
    parser.add_argument("--availability-timeout-ms", type=int, default=100)
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "trio"), default="asyncio")
    parser.add_argument("--timeout", type=float, default=300.0, help="per run, seconds")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--markdown", action="store_true", help="print the report as Markdown")
    args = parser.parse_args(argv)
    if BASELINE not in args.variants:
        parser.error(f"--variants must include {BASELINE}: the ratios are against it")
    for name in ("records", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.slowdown < 1 or args.base_delay_ms < 0:
        parser.error("--slowdown must be >= 1 and --base-delay-ms >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    backend = "trio" if args.loop == "trio" else "asyncio"
    options = {"use_uvloop": True} if args.loop == "uvloop" else {}
    document = anyio.run(measure, args, backend=backend, backend_options=options)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1, ensure_ascii=False))
    text = report(document)
    print(text if args.markdown else plain(text))
    # A run that could not be made is a failure of the benchmark; a target missed is not.
    return 1 if any(row["errors"] for row in document["summary"]) else 0


if __name__ == "__main__":
    sys.exit(main())
