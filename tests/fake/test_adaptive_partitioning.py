"""KIP-794 on a cluster with one slow broker: keyless records go less to its partitions
(adaptive partitioning, the default), and none once it cannot take requests for
``partitioner_availability_timeout_ms``; every record is still delivered.

The fake broker answers a connection's requests one at a time, so a broker whose
Produce responses are delayed by ``SLOW`` takes at most one request per ``SLOW``: its
requests in flight reach the limit and its partitions' queues grow.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest

from asyncproducer import Producer, RecordMetadata
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio

SLOW_BROKER = 2
SLOW = 0.05
STALL = 1.0
RECORDS = 4_000
SETTINGS: dict[str, Any] = {
    "linger_ms": 5,
    "batch_size": 1_000,  # many batches: its in-flight requests hold few of them
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 20_000,
}


async def slow_broker_share(
    cluster: FakeCluster, producer: Producer, records: int
) -> tuple[float, list[RecordMetadata]]:
    """Send ``records`` keyless records as fast as send() takes them; the share the slow
    broker's partitions got of the last three quarters, and every record's metadata
    (all delivered)."""
    leaders = {p.partition: p.leader.id for p in await producer.partitions_for("t") if p.leader}
    futures = [await producer.send("t", b"x" * 100) for _ in range(records)]
    delivered = [await future for future in futures]
    # After the first quarter: at first every queue is empty, and the choice uniform.
    steady = delivered[records // 4 :]
    by_broker = Counter(leaders[m.partition] for m in steady)
    return by_broker[SLOW_BROKER] / len(steady), delivered


async def test_a_slow_brokers_partitions_get_fewer_keyless_records() -> None:
    with anyio.fail_after(30):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 6)  # two partitions a broker
            cluster.delay_responses(ApiKey.PRODUCE, SLOW, broker=SLOW_BROKER)
            async with Producer(cluster.bootstrap_servers, **SETTINGS) as producer:
                share, delivered = await slow_broker_share(cluster, producer, RECORDS)
            assert len(delivered) == RECORDS
            assert sum(len(cluster.records("t", p)) for p in range(6)) == RECORDS
    # A uniform choice gives it a third (KIP-480's, UniformStickyPartitioner's, too);
    # measured, adaptive gives it about a tenth. `python -m benchmarks.adaptive`
    # compares their throughput.
    assert share < 0.2


async def test_a_broker_that_cannot_take_requests_gets_no_new_records() -> None:
    with anyio.fail_after(30):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 6)
            async with Producer(
                cluster.bootstrap_servers, partitioner_availability_timeout_ms=100, **SETTINGS
            ) as producer:
                await slow_broker_share(cluster, producer, 100)  # connections open
                # Stalled: its next response comes after STALL, the requests behind it
                # wait (one at a time), so its requests in flight reach their limit.
                cluster.delay_responses(
                    ApiKey.PRODUCE, lambda i: STALL if i == 0 else 0, broker=SLOW_BROKER
                )
                before = [await producer.send("t", b"x" * 100) for _ in range(2_000)]
                await anyio.sleep(0.25)  # past the timeout, its batches still waiting
                _, after = await slow_broker_share(cluster, producer, 1_000)
                slow = {
                    p.partition
                    for p in await producer.partitions_for("t")
                    if p.leader and p.leader.id == SLOW_BROKER
                }
                # Only the rest of a sticky stint begun before (at most a batch_size of
                # records), then none: every switch since left the broker out.
                went = [i for i, m in enumerate(after) if m.partition in slow]
                assert went == list(range(len(went)))
                assert len(went) * 100 <= SETTINGS["batch_size"]
                # What went there before is delivered once it answers, not stranded.
                delivered = [await future for future in before]
                assert slow & {m.partition for m in delivered}
