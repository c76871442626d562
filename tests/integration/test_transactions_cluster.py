"""Transactions on a 3-node Apache Kafka 4.x cluster, read back with confluent-kafka.

The single-node scenarios of test_transactions.py again (compactly) where the transaction
state log and the topics are replicated as in production: replication factor 3 and
``min.insync.replicas`` 2 for the topics, and for ``__transaction_state`` (KafkaCluster's
3-node defaults: one partition, RF 3, min ISR 2), plus what only a cluster can show: the
transaction coordinator's broker SIGKILLed in the middle of a transaction.

``transaction.abort.timed.out.transaction.cleanup.interval.ms`` is 500 ms (Kafka's default
is 10 s) so the coordinator aborts a timed-out transaction half a second after its timeout.

Reading back uses test_transactions.py's helpers: a librdkafka consumer reads to a
sentinel written after the transactions under test ended (everything there is to see at
that isolation level), and a librdkafka consumer's ``committed()`` for group offsets.
Which node coordinates a transactional id, and the state the coordinator holds, are asked
with kafka-python's public ``describe_transactions`` (FindCoordinator +
DescribeTransactions).

Every test runs on asyncio, uvloop and trio: about a minute in all on 2 cores (the cluster
start ~7 s; the coordinator kill ~10 s per loop: 6 s until Kafka fences the dead node, and
its restart), hence ``slow``: ``pytest -m slow tests/integration/test_transactions_cluster.py``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer._types import TopicPartition
from asyncproducer.errors import (
    InvalidProducerEpochError,
    KafkaError,
    ProducerFencedError,
)
from asyncproducer.testing.kafka import KafkaCluster
from tests.integration.brokers import require_kafka_tools
from tests.integration.txn_readback import (
    RUNS_AT_ONCE_S,
    Seen,
    group_offsets,
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
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(240)]

CLEANUP_INTERVAL_MS = 500
MAX_BLOCK_MS = 20_000


@pytest.fixture(scope="module")
def kafka3() -> Iterator[KafkaCluster]:
    """Three combined broker+controller nodes for the module (~10 s to start on 2 cores)."""
    require_kafka_tools()
    with KafkaCluster(
        brokers=3,
        broker_config={
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": str(CLEANUP_INTERVAL_MS),
            "min.insync.replicas": "2",
            # A killed node is declared dead after 3 s instead of 9 (KRaft's defaults: a
            # heartbeat every 2 s, a 9 s session): the coordinator-kill test's commit waits
            # for that, on every loop.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
        },
    ) as cluster:
        yield cluster


async def new_topic(kafka: KafkaCluster, partitions: int) -> str:
    name = new_name("txn3")
    await anyio.to_thread.run_sync(
        lambda: kafka.create_topic(
            name,
            partitions=partitions,
            replication_factor=3,
            configs={"min.insync.replicas": "2"},
        )
    )
    return name


def transactional(kafka: KafkaCluster, transactional_id: str, **config: Any) -> Producer:
    settings: dict[str, Any] = {
        "transaction_timeout_ms": 60_000,
        "max_block_ms": MAX_BLOCK_MS,
        **config,
    }
    return Producer(kafka.bootstrap_servers, transactional_id=transactional_id, **settings)


async def visible(
    kafka: KafkaCluster, topic: str, partitions: Sequence[int], isolation: str
) -> dict[int, list[Seen]]:
    return await anyio.to_thread.run_sync(
        read_to_sentinel, kafka.bootstrap_servers, topic, partitions, isolation
    )


def describe_transaction(kafka: KafkaCluster, transactional_id: str) -> Any:
    """kafka-python's TransactionDescription: coordinator_id, state, topic_partitions."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        return admin.describe_transactions([transactional_id])[transactional_id]
    finally:
        admin.close()


async def offsets_of(
    kafka: KafkaCluster, group_id: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    return await anyio.to_thread.run_sync(
        group_offsets, kafka.bootstrap_servers, group_id, partitions, "read_uncommitted"
    )


# --------------------------------------------------------------------------- a. visibility


async def test_committed_visible_aborted_not_in_order_on_three_nodes(kafka3: KafkaCluster) -> None:
    """Commit, abort (its records written first), commit on one producer: read_committed
    reads the two committed transactions, each partition in send order; read_uncommitted
    reads all three, at the offsets the futures reported."""
    partitions = [0, 1, 2]
    topic = await new_topic(kafka3, len(partitions))
    batches = {name: [b"%s-%d" % (name, i) for i in range(60)] for name in (b"a", b"b", b"c")}
    async with transactional(kafka3, new_name("vis3")) as producer:
        async with producer.transaction():
            first = [
                await producer.send(topic, value, partition=i % 3)
                for i, value in enumerate(batches[b"a"])
            ]
        await producer.begin_transaction()
        aborted = [
            await producer.send(topic, value, partition=i % 3)
            for i, value in enumerate(batches[b"b"])
        ]
        await producer.flush()
        await settle(aborted)  # all in the log before the abort
        await producer.abort_transaction()
        async with producer.transaction():
            last = [
                await producer.send(topic, value, partition=i % 3)
                for i, value in enumerate(batches[b"c"])
            ]
        written = await settle(first) + await settle(aborted) + await settle(last)

    committed = await visible(kafka3, topic, partitions, "read_committed")
    for partition in partitions:
        expected = batches[b"a"][partition::3] + batches[b"c"][partition::3]
        assert [r.value for r in committed[partition]] == expected, f"partition {partition}"
    in_the_log = await visible(kafka3, topic, partitions, "read_uncommitted")
    everything = batches[b"a"] + batches[b"b"] + batches[b"c"]
    where = {
        (md.partition, md.offset): value for md, value in zip(written, everything, strict=True)
    }
    assert {(p, r.offset): r.value for p, rs in in_the_log.items() for r in rs} == where
    for partition in partitions:
        offsets = [r.offset for r in in_the_log[partition]]
        assert offsets == sorted(offsets)
        expected = [v for i, v in enumerate(everything) if i % 60 % 3 == partition]
        assert [r.value for r in in_the_log[partition]] == expected, f"partition {partition}"


# --------------------------------------------------------------------------- b. fencing


async def test_a_second_instance_fences_the_first_on_three_nodes(kafka3: KafkaCluster) -> None:
    partitions = [0, 1]
    topic = await new_topic(kafka3, len(partitions))
    transactional_id = new_name("fenced3")
    async with transactional(kafka3, transactional_id) as first:
        await first.begin_transaction()
        zombies = [await first.send(topic, b"zombie-%d" % i, partition=i % 2) for i in range(10)]
        await settle(zombies)  # in the log, the transaction open
        async with transactional(kafka3, transactional_id) as second:
            # second's start() fenced first: the coordinator aborted first's transaction
            # and bumped the epoch. first's next Produce carries the old epoch: Kafka
            # answers INVALID_PRODUCER_EPOCH there (PRODUCER_FENCED in the coordinator's
            # APIs); either is fatal, and every later call raises it at once.
            fatal = (ProducerFencedError, InvalidProducerEpochError)
            with anyio.fail_after(MAX_BLOCK_MS / 1000 + 5):
                with pytest.raises(fatal) as fenced:
                    await first.send_and_wait(topic, b"after-fencing", partition=0)
            with anyio.fail_after(RUNS_AT_ONCE_S):
                with pytest.raises(type(fenced.value)):
                    await first.commit_transaction()
                with pytest.raises(type(fenced.value)):
                    await first.abort_transaction()
                with pytest.raises(type(fenced.value)):
                    await first.begin_transaction()
            async with second.transaction():
                for i in range(10):
                    await second.send(topic, b"successor-%d" % i, partition=i % 2)
            description = await anyio.to_thread.run_sync(
                describe_transaction, kafka3, transactional_id
            )
            # EndTxn returns once PrepareCommit is logged; markers are written after.
            assert str(description.state.value) in ("PrepareCommit", "CompleteCommit")

    committed = await visible(kafka3, topic, partitions, "read_committed")
    assert sorted(values(committed)) == sorted(b"successor-%d" % i for i in range(10))
    in_the_log = await visible(kafka3, topic, partitions, "read_uncommitted")
    assert {b"zombie-%d" % i for i in range(10)} <= set(values(in_the_log))


# --------------------------------------------------------------------------- c. coordinator


async def test_the_coordinator_killed_mid_transaction_commit_is_all_or_nothing(
    kafka3: KafkaCluster,
) -> None:
    """The transaction coordinator's node is SIGKILLed with records in the log and more
    in flight; then commit. Kafka moves ``__transaction_state``'s leadership (and so the
    coordinator) to a surviving replica once the dead node's session times out (6 s), and
    the new coordinator loads the transaction from the replicated log.

    The commit either succeeds or raises a KafkaError, within max_block_ms; a new
    instance with the same id then settles whatever is left (InitProducerId completes a
    commit under way, or aborts an open transaction), and read_committed sees all of the
    transaction's records or none (seen so far: the commit succeeds after ~7 s on every
    loop). The node is restarted before the test ends, so later tests have three nodes."""
    partitions = [0, 1, 2]
    topic = await new_topic(kafka3, len(partitions))
    transactional_id = new_name("coord3")
    before = [b"before-%d" % i for i in range(30)]
    after = [b"after-%d" % i for i in range(30)]
    outcome: str | KafkaError = "committed"
    description = None
    try:
        async with transactional(kafka3, transactional_id) as producer:
            await producer.begin_transaction()
            written = [
                await producer.send(topic, value, partition=i % 3) for i, value in enumerate(before)
            ]
            await settle(written)
            description = await anyio.to_thread.run_sync(
                describe_transaction, kafka3, transactional_id
            )
            assert str(description.state.value) == "Ongoing"
            coordinator = kafka3.node(description.coordinator_id)
            await anyio.to_thread.run_sync(coordinator.kill)

            in_flight = [
                await producer.send(topic, value, partition=i % 3) for i, value in enumerate(after)
            ]
            started = time.monotonic()
            with anyio.fail_after(MAX_BLOCK_MS / 1000 + 10):
                try:
                    await producer.commit_transaction()
                except KafkaError as error:  # typed, and within max_block_ms
                    outcome = error
            elapsed = time.monotonic() - started
            assert elapsed < MAX_BLOCK_MS / 1000 + 2, f"commit took {elapsed:.1f} s"
            for future in in_flight:
                if outcome == "committed":
                    await future
                else:
                    await written_or_dropped_or_failed(future)
        if outcome != "committed":
            # Settle the transaction: a new instance's start() finishes or aborts it.
            async with transactional(kafka3, transactional_id):
                pass
    finally:
        if description is not None:
            await anyio.to_thread.run_sync(kafka3.node(description.coordinator_id).start)

    committed = await visible(kafka3, topic, partitions, "read_committed")
    seen = sorted(values(committed))
    assert seen in ([], sorted(before + after)), (
        f"half a transaction is visible after {outcome!r}: {len(seen)} of 60 records"
    )
    if outcome == "committed":
        assert seen == sorted(before + after)
        for partition in partitions:
            expected = before[partition::3] + after[partition::3]
            assert [r.value for r in committed[partition]] == expected


async def written_or_dropped_or_failed(future: Any) -> None:
    """A record of a transaction whose commit failed: awaited whatever became of it (an
    exception never retrieved is reported by asyncio and fails the test)."""
    with contextlib.suppress(KafkaError):
        await written_or_dropped(future)


# --------------------------------------------------------------------------- d. timeout


async def test_a_transaction_left_open_past_its_timeout_is_aborted_and_fenced(
    kafka3: KafkaCluster,
) -> None:
    """transaction_timeout_ms=2000; the coordinator aborts the transaction (and bumps the
    producer's epoch) at most CLEANUP_INTERVAL_MS after the timeout. The producer learns
    it from its next request: the next record fails, and so does the commit, with a
    fencing error."""
    topic = await new_topic(kafka3, 1)
    transactional_id = new_name("timeout3")
    async with transactional(kafka3, transactional_id, transaction_timeout_ms=2_000) as producer:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"timed-out-1")
        await producer.send_and_wait(topic, b"timed-out-2")
        deadline = time.monotonic() + 15
        while True:  # the coordinator's abort: ~2.5 s after the transaction began
            await anyio.sleep(0.5)
            description = await anyio.to_thread.run_sync(
                describe_transaction, kafka3, transactional_id
            )
            if str(description.state.value) != "Ongoing" or time.monotonic() > deadline:
                break
        assert str(description.state.value) in ("PrepareAbort", "CompleteAbort")

        # Kafka answers the stale epoch's Produce with INVALID_PRODUCER_EPOCH (fatal, as
        # ProducerFencedError is); the commit then raises the same error at once.
        with anyio.fail_after(MAX_BLOCK_MS / 1000 + 5):
            with pytest.raises((ProducerFencedError, InvalidProducerEpochError)) as late:
                await producer.send_and_wait(topic, b"after-the-timeout")
        with anyio.fail_after(RUNS_AT_ONCE_S), pytest.raises(type(late.value)):
            await producer.commit_transaction()

    committed = await visible(kafka3, topic, [0], "read_committed")
    assert values(committed) == []
    in_the_log = await visible(kafka3, topic, [0], "read_uncommitted")
    assert values(in_the_log)[:2] == [b"timed-out-1", b"timed-out-2"]


# --------------------------------------------------------------------------- e. offsets


async def test_group_offsets_change_on_commit_only_on_three_nodes(kafka3: KafkaCluster) -> None:
    source = await new_topic(kafka3, 2)
    output = await new_topic(kafka3, 1)
    group = new_name("g3")
    in0, in1 = (source, 0), (source, 1)
    nothing = {in0: -1001, in1: -1001}  # librdkafka's "no committed offset"
    async with transactional(kafka3, new_name("offsets3")) as producer:
        await producer.begin_transaction()
        await producer.send(output, b"processed-1")
        await producer.send_offsets_to_transaction(
            {TopicPartition(source, 0): 10, TopicPartition(source, 1): 20}, group
        )
        await producer.flush()
        assert await offsets_of(kafka3, group, [in0, in1]) == nothing  # pending
        await producer.commit_transaction()
        await wait_for_offsets(
            kafka3.bootstrap_servers, group, {in0: 10, in1: 20}, "read_uncommitted"
        )

        await producer.begin_transaction()
        aborted = await producer.send(output, b"processed-2")
        await producer.send_offsets_to_transaction({TopicPartition(source, 0): 99}, group)
        assert await offsets_of(kafka3, group, [in0, in1]) == {in0: 10, in1: 20}
        await producer.abort_transaction()
        await written_or_dropped(aborted)

        async with producer.transaction():  # begins once the abort is complete
            await producer.send(output, b"processed-3")
            await producer.send_offsets_to_transaction({TopicPartition(source, 1): 30}, group)
        await wait_for_offsets(
            kafka3.bootstrap_servers, group, {in0: 10, in1: 30}, "read_uncommitted"
        )

    output_seen = await visible(kafka3, output, [0], "read_committed")
    assert values(output_seen) == [b"processed-1", b"processed-3"]
