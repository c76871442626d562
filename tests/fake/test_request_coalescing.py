"""While a broker has a Produce request out, full batches for it wait for the answer and
go together in the next request (``Sender._run_once``, ``ReadyCheck.urgent``); at most
until their ``linger_ms`` is over, and not when a batch is queued behind one of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer._cluster import ClusterSnapshot
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio

PARTITIONS = 4
VALUE = b"v" * 300  # three to a 1,000-byte batch: the fourth record finds it full


class Cycling:
    """Keyless records fill one partition's batch, then the next partition's (as the
    default sticky partitioner does, without its random choice)."""

    def __init__(self) -> None:
        self.current = 0

    def partition(self, topic: str, *record_and_cluster: Any) -> int:
        return self.current

    def on_new_batch(self, topic: str, cluster: ClusterSnapshot, prev_partition: int) -> None:
        self.current = (prev_partition + 1) % PARTITIONS


def produce_requests(cluster: FakeCluster) -> int:
    return cluster.request_count(ApiKey.PRODUCE)


def queue_time_max_ms(producer: Producer) -> float:
    """The longest a batch waited between its first record and its request going out."""
    return producer.metrics()["record-queue-time-max"]


@asynccontextmanager
async def producing(
    partitions: int, linger_ms: int, first_answer_s: float, partitioner: Any = None
) -> AsyncIterator[tuple[FakeCluster, Producer]]:
    """A one-broker cluster, topic ``t``, a producer of 1,000-byte batches already
    connected (a record acknowledged on another topic, so the first request goes at
    once), and the next Produce answer held back ``first_answer_s``."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", partitions)
            cluster.create_topic("warm-up", 1)
            async with Producer(
                cluster.bootstrap_servers,
                linger_ms=linger_ms,
                batch_size=1_000,
                partitioner=partitioner,
            ) as producer:
                await producer.partitions_for("t")
                await producer.send("warm-up", b"w", partition=0)
                await producer.flush()
                cluster.delay_responses(ApiKey.PRODUCE, first_answer_s, count=1)
                yield cluster, producer


async def test_full_batches_wait_for_the_answer_and_go_in_one_request() -> None:
    # linger_ms: nothing goes for its linger in this test.
    async with producing(PARTITIONS, 60_000, 0.3, Cycling()) as (cluster, producer):
        # Partitions 0, 1 and 2 fill (the 4th, 7th and 10th records find them full);
        # partition 3 holds three records and is not full.
        futures = [await producer.send("t", VALUE) for _ in range(12)]
        for future in futures[:9]:
            await future
        # Partition 0's batch went alone; partitions 1 and 2 in one request, once the
        # first was answered (before: one request per full batch, at once).
        assert produce_requests(cluster) == 1 + 2
        assert queue_time_max_ms(producer) >= 200  # they waited for the answer
        assert not futures[9].done()
        await producer.flush()
        assert produce_requests(cluster) == 1 + 3
    for partition in range(PARTITIONS):
        assert len(cluster.batches("t", partition)) == 1


async def test_a_full_batch_waits_no_longer_than_its_linger() -> None:
    async with producing(PARTITIONS, 200, 1.0, Cycling()) as (_, producer):
        # Partition 0's batch goes; partition 1's fills while that request is out for
        # 1 s: it goes when its 200 ms are over, not when the answer comes.
        futures = [await producer.send("t", VALUE) for _ in range(7)]
        for future in futures[:6]:
            await future
        assert 200 <= queue_time_max_ms(producer) < 600


async def test_a_batch_queued_behind_a_full_one_goes_at_once() -> None:
    async with producing(1, 60_000, 1.0) as (cluster, producer):
        # One partition: the first batch goes alone; the second fills while the first is
        # out for 1 s, and the third opens behind it: the second goes at once (a
        # partition's batches are pipelined), not after the answer.
        futures = [await producer.send("t", VALUE) for _ in range(7)]
        for future in futures[:6]:
            await future
        assert queue_time_max_ms(producer) < 600
        await producer.flush()
    assert len(cluster.batches("t", 0)) == 3
