"""Transactions against Apache Kafka 4.x (one KRaft node), read back with confluent-kafka.

What a transaction promises is checked with a client this project did not write:
librdkafka consumers at ``isolation.level=read_committed`` (what a transaction shows) and
``read_uncommitted`` (what was written to the log, aborted or not), and a librdkafka
consumer's ``committed()`` for the offsets a transaction commits for a group (with
kafka-python for their metadata).

Every read ends at a sentinel (tests/integration/txn_readback.py says why).

One Kafka node serves the whole module (~5 s to start); each test has topics and
transactional ids of its own, and runs on asyncio, asyncio+uvloop and trio. The last
test starts a second, deliberately broken node (see its docstring).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CkTopicPartition

from asyncproducer import Producer
from asyncproducer._types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition
from asyncproducer.errors import (
    KafkaTimeoutError,
    ProducerFencedError,
    TransactionAbortedError,
    TransactionStateError,
)
from asyncproducer.testing.kafka import KafkaCluster
from tests.integration.brokers import require_kafka_tools
from tests.integration.txn_readback import (
    RUNS_AT_ONCE_S,
    Seen,
    new_name,
    read_to_sentinel,
    settle,
    values,
    wait_for_offsets,
    written_or_dropped,
)

with warnings.catch_warnings():  # kafka-python's schema loading uses a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient

# 240 s: a cold cache fetches Kafka from Maven Central in the first test's setup.
pytestmark = [pytest.mark.kafka, pytest.mark.anyio, pytest.mark.timeout(240)]

OFFSET_INVALID = -1001  # librdkafka's "no committed offset"


@pytest.fixture(scope="module")
def kafka() -> Iterator[KafkaCluster]:
    """One Kafka 4.x node for the module. Its single-node settings are what transactions
    need: __transaction_state and __consumer_offsets with replication factor 1 and
    min.insync.replicas 1 (KafkaCluster sets them from the node count)."""
    require_kafka_tools()
    with KafkaCluster(brokers=1) as cluster:
        yield cluster


async def new_topic(kafka: KafkaCluster, partitions: int) -> str:
    name = new_name("txn")
    await anyio.to_thread.run_sync(lambda: kafka.create_topic(name, partitions=partitions))
    return name


async def visible(
    kafka: KafkaCluster, topic: str, partitions: Sequence[int], isolation: str
) -> dict[int, list[Seen]]:
    return await anyio.to_thread.run_sync(
        read_to_sentinel, kafka.bootstrap_servers, topic, partitions, isolation
    )


def transactional(kafka: KafkaCluster, transactional_id: str, **config: Any) -> Producer:
    return Producer(
        kafka.bootstrap_servers,
        transactional_id=transactional_id,
        transaction_timeout_ms=60_000,
        max_block_ms=20_000,
        **config,
    )


# --------------------------------------------------------------------------- 1. commit


async def test_a_committed_transaction_is_read_exactly_once_in_order(kafka: KafkaCluster) -> None:
    partitions = [0, 1, 2, 3]
    topic = await new_topic(kafka, len(partitions))
    count = 1_000
    async with transactional(kafka, new_name("commit")) as producer:
        async with producer.transaction():
            futures = [
                await producer.send(topic, b"value-%d" % i, key=b"key-%d" % (i % 37))
                for i in range(count)
            ]
        written = await settle(futures)  # done once commit_transaction() returned

    seen = await visible(kafka, topic, partitions, "read_committed")
    assert sum(len(s) for s in seen.values()) == count  # none lost, none twice
    assert sorted(values(seen)) == sorted(b"value-%d" % i for i in range(count))
    used = {p for p, records in seen.items() if records}
    assert len(used) > 1, f"1,000 records over 37 keys landed in partitions {used} only"
    where = {(md.partition, md.offset): i for i, md in enumerate(written)}
    for partition, records in seen.items():
        indexes = [where[partition, record.offset] for record in records]
        assert indexes == sorted(indexes), f"partition {partition} is out of order"
        for record, i in zip(records, indexes, strict=True):  # as each future reported
            assert (record.key, record.value) == (b"key-%d" % (i % 37), b"value-%d" % i)


# --------------------------------------------------------------------------- 2. abort


async def test_an_aborted_transaction_is_in_the_log_but_never_read_committed(
    kafka: KafkaCluster,
) -> None:
    """The first 300 records are written before the abort (their futures completed with
    offsets), so read_uncommitted shows them; the 5 sent after the flush are never sent:
    the abort fails them with TransactionAbortedError, as Java's producer does."""
    partitions = [0, 1, 2]
    topic = await new_topic(kafka, len(partitions))
    async with transactional(kafka, new_name("abort"), linger_ms=60_000) as producer:
        await producer.begin_transaction()
        futures = [
            await producer.send(topic, b"aborted-%d" % i, key=b"k-%d" % (i % 11))
            for i in range(300)
        ]
        await producer.flush()  # sends them now, despite linger_ms
        written = await settle(futures)
        assert all(md.offset >= 0 for md in written)
        lingering = [
            await producer.send(topic, b"never-sent-%d" % i, partition=i % 3) for i in range(5)
        ]
        await producer.abort_transaction()
        for future in lingering:
            with pytest.raises(TransactionAbortedError):
                await future

    committed = await visible(kafka, topic, partitions, "read_committed")
    assert values(committed) == []
    in_the_log = await visible(kafka, topic, partitions, "read_uncommitted")
    assert sorted(values(in_the_log)) == sorted(b"aborted-%d" % i for i in range(300))
    assert {(p, r.offset) for p, records in in_the_log.items() for r in records} == {
        (md.partition, md.offset) for md in written
    }


# --------------------------------------------------------------------------- 3. in a row


async def test_commit_abort_commit_on_one_producer_shows_the_committed_only(
    kafka: KafkaCluster,
) -> None:
    partitions = [0, 1]
    topic = await new_topic(kafka, len(partitions))
    batches = {name: [b"%s-%d" % (name, i) for i in range(20)] for name in (b"a", b"b", b"c")}
    async with transactional(kafka, new_name("row")) as producer:
        async with producer.transaction():
            for i, value in enumerate(batches[b"a"]):
                await producer.send(topic, value, partition=i % 2)
        await producer.begin_transaction()
        aborted = [
            await producer.send(topic, value, partition=i % 2)
            for i, value in enumerate(batches[b"b"])
        ]
        await settle(aborted[:3])  # written before the abort
        await producer.abort_transaction()
        written_then_aborted = {
            value
            for value, future in zip(batches[b"b"], aborted, strict=True)
            if await written_or_dropped(future)
        }
        assert written_then_aborted >= set(batches[b"b"][:3])
        await producer.begin_transaction()
        for i, value in enumerate(batches[b"c"]):
            await producer.send(topic, value, partition=i % 2)
        await producer.commit_transaction()

    committed = await visible(kafka, topic, partitions, "read_committed")
    for partition in partitions:
        expected = batches[b"a"][partition::2] + batches[b"c"][partition::2]
        assert [r.value for r in committed[partition]] == expected
    in_the_log = await visible(kafka, topic, partitions, "read_uncommitted")
    assert sorted(values(in_the_log)) == sorted(
        batches[b"a"] + list(written_then_aborted) + batches[b"c"]
    )


# --------------------------------------------------------------------------- 4. fencing


async def test_a_second_instance_fences_the_first_and_aborts_its_transaction(
    kafka: KafkaCluster,
) -> None:
    partitions = [0, 1]
    topic = await new_topic(kafka, len(partitions))
    transactional_id = new_name("fenced")
    async with transactional(kafka, transactional_id) as first:
        await first.begin_transaction()
        futures = [await first.send(topic, b"zombie-%d" % i, partition=i % 2) for i in range(10)]
        await settle(futures)  # in the log, the transaction open
        async with transactional(kafka, transactional_id) as second:
            # second's start() fenced first: Kafka aborted first's open transaction.
            with anyio.fail_after(25):
                with pytest.raises(ProducerFencedError):
                    await first.commit_transaction()
                # Unusable from now on: everything raises the fencing at once.
                with anyio.fail_after(RUNS_AT_ONCE_S):
                    with pytest.raises(ProducerFencedError):
                        await first.send(topic, b"after-fencing")
                    with pytest.raises(ProducerFencedError):
                        await first.abort_transaction()
                    with pytest.raises(ProducerFencedError):
                        await first.begin_transaction()
            async with second.transaction():
                for i in range(10):
                    await second.send(topic, b"successor-%d" % i, partition=i % 2)

    committed = await visible(kafka, topic, partitions, "read_committed")
    assert sorted(values(committed)) == sorted(b"successor-%d" % i for i in range(10))
    in_the_log = await visible(kafka, topic, partitions, "read_uncommitted")
    assert {b"zombie-%d" % i for i in range(10)} <= set(values(in_the_log))


# --------------------------------------------------------------------------- 5. offsets


def committed_metadata(
    kafka: KafkaCluster, group_id: str
) -> dict[tuple[str, int], tuple[int, str]]:
    """The group's committed offsets with their metadata, as kafka-python reads them."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        found = admin.list_group_offsets(group_id)[group_id]
        return {(tp.topic, tp.partition): (o.offset, o.metadata) for tp, o in found.items()}
    finally:
        admin.close()


async def test_offsets_sent_to_a_transaction_commit_with_it_and_not_on_abort(
    kafka: KafkaCluster,
) -> None:
    source = await new_topic(kafka, 2)
    output = await new_topic(kafka, 1)
    group, aborted_only, third = new_name("g"), new_name("g-aborted"), new_name("g-librdkafka")
    in0, in1 = (source, 0), (source, 1)
    async with transactional(kafka, new_name("offsets")) as producer:
        async with producer.transaction():  # the group as its id
            await producer.send(output, b"processed-1")
            await producer.send_offsets_to_transaction(
                {
                    TopicPartition(source, 0): 42,
                    TopicPartition(source, 1): OffsetAndMetadata(7, "m"),
                },
                group,
            )
        await wait_for_offsets(kafka.bootstrap_servers, group, {in0: 42, in1: 7})

        await producer.begin_transaction()  # the group as ConsumerGroupMetadata, then aborted
        aborted = await producer.send(output, b"processed-2")
        await producer.send_offsets_to_transaction(
            {TopicPartition(source, 0): 99}, ConsumerGroupMetadata(group)
        )
        await producer.send_offsets_to_transaction({TopicPartition(source, 1): 13}, aborted_only)
        await producer.abort_transaction()
        await written_or_dropped(aborted)

        # librdkafka's own types: its TopicPartition list and consumer_group_metadata().
        consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": third})
        try:
            metadata = consumer.consumer_group_metadata()
        finally:
            consumer.close()
        async with producer.transaction():
            await producer.send(output, b"processed-3")
            await producer.send_offsets_to_transaction([CkTopicPartition(source, 0, 5)], metadata)

    # The third transaction could only begin once the abort was complete (Kafka answers
    # CONCURRENT_TRANSACTIONS until then), so the aborted offsets are decided by now.
    await wait_for_offsets(kafka.bootstrap_servers, third, {in0: 5})
    await wait_for_offsets(kafka.bootstrap_servers, group, {in0: 42, in1: 7})
    await wait_for_offsets(kafka.bootstrap_servers, aborted_only, {in1: OFFSET_INVALID})
    assert await anyio.to_thread.run_sync(committed_metadata, kafka, group) == {
        in0: (42, ""),  # Kafka stores no metadata as ""
        in1: (7, "m"),
    }
    output_seen = await visible(kafka, output, [0], "read_committed")
    assert values(output_seen) == [b"processed-1", b"processed-3"]


# --------------------------------------------------------------------------- 6. misuse


async def test_sends_outside_a_transaction_fail_at_once_and_a_failing_block_aborts(
    kafka: KafkaCluster,
) -> None:
    topic = await new_topic(kafka, 1)

    class Boom(Exception):
        pass

    async def raise_inside_a_transaction(producer: Producer) -> None:
        async with producer.transaction():
            raised = [await producer.send(topic, b"raised-%d" % i) for i in range(3)]
            await settle(raised)  # in the log before the block raises
            raise Boom

    async with transactional(kafka, new_name("misuse")) as producer:
        with anyio.fail_after(RUNS_AT_ONCE_S):
            with pytest.raises(TransactionStateError):
                await producer.send(topic, b"before-any-transaction")
            with pytest.raises(TransactionStateError):
                await producer.commit_transaction()
            with pytest.raises(TransactionStateError):
                await producer.send_offsets_to_transaction({TopicPartition(topic, 0): 1}, "g")
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        with anyio.fail_after(RUNS_AT_ONCE_S), pytest.raises(TransactionStateError):
            await producer.send(topic, b"after-the-commit")

        with pytest.raises(Boom):
            await raise_inside_a_transaction(producer)
        with anyio.fail_after(RUNS_AT_ONCE_S), pytest.raises(TransactionStateError):
            await producer.send(topic, b"after-the-abort")

        with anyio.CancelScope() as scope:
            async with producer.transaction():
                cancelled = [await producer.send(topic, b"cancelled-%d" % i) for i in range(3)]
                await settle(cancelled)
                scope.cancel()
                await anyio.sleep(30)
        assert scope.cancelled_caught

        async with producer.transaction():
            await producer.send(topic, b"committed-2")

    committed = await visible(kafka, topic, [0], "read_committed")
    assert values(committed) == [b"committed-1", b"committed-2"]
    in_the_log = await visible(kafka, topic, [0], "read_uncommitted")
    assert values(in_the_log) == [
        b"committed-1",
        *(b"raised-%d" % i for i in range(3)),
        *(b"cancelled-%d" % i for i in range(3)),
        b"committed-2",
    ]


# --------------------------------------------------------------------------- 7. bounded


@pytest.fixture
def coordinatorless_kafka() -> Iterator[KafkaCluster]:
    """One node that cannot host a transaction coordinator: __transaction_state asks for
    3 replicas, so Kafka never creates it and FindCoordinator answers
    COORDINATOR_NOT_AVAILABLE for every transactional id."""
    require_kafka_tools()
    with KafkaCluster(
        brokers=1, broker_config={"transaction.state.log.replication.factor": "3"}
    ) as cluster:
        yield cluster


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_start_without_a_coordinator_fails_within_max_block_ms(
    coordinatorless_kafka: KafkaCluster,
) -> None:
    """aiokafka (#1091) waits forever here. asyncio only: the broken node is a second JVM
    start (~5 s of CI's 2 cores), and the deadline is the coordinator client's, the same
    code on every loop (the three loops' transports are covered by the tests above)."""
    max_block_ms = 3_000
    producer_id = new_name("nowhere")
    producer = Producer(
        coordinatorless_kafka.bootstrap_servers,
        transactional_id=producer_id,
        max_block_ms=max_block_ms,
    )
    started = time.monotonic()
    with anyio.fail_after(max_block_ms / 1000 + 10):  # a hang fails here, not at 240 s
        with pytest.raises(KafkaTimeoutError) as raised:
            await producer.start()
    elapsed = time.monotonic() - started
    assert elapsed < max_block_ms / 1000 + 1.5, f"start() took {elapsed:.1f} s"
    message = str(raised.value)
    assert "COORDINATOR_NOT_AVAILABLE" in message, message
    assert producer_id in message, message
