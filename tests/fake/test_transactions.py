"""The transactional producer against the FakeCluster's transaction coordinator: commit,
abort, fencing, failed records, offsets, coordinator errors and moves, every wait bounded.

Each test checks what the fake's log holds (what a read_committed consumer would read, and
the markers) as well as what the calls returned or raised. tests/integration/
test_transactions.py runs the same calls against Apache Kafka, read back by confluent-kafka.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from asyncproducer import Producer, TopicPartition, _staging
from asyncproducer._types import ConsumerGroupMetadata, OffsetAndMetadata
from asyncproducer.errors import (
    InvalidProducerEpochError,
    InvalidRecordError,
    KafkaTimeoutError,
    ProducerClosedError,
    ProducerFencedError,
    RecordTooLargeError,
    SerializationError,
    TransactionAbortedError,
    TransactionStateError,
    UnknownProducerIdError,
)
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from tests.integration.txn_readback import SENTINEL, Seen, read_to_sentinel, values

pytestmark = pytest.mark.anyio

FAST = {"linger_ms": 0, "retry_backoff_ms": 10, "retry_backoff_max_ms": 50, "max_block_ms": 5000}
INVALID_RECORD = 87
CONCURRENT_TRANSACTIONS = 51


def committed(cluster: FakeCluster, topic: str = "t", partitions: int = 3) -> list[bytes | None]:
    return [
        r.value
        for p in range(partitions)
        for r in cluster.records(topic, p, isolation="read_committed")
    ]


def written(cluster: FakeCluster, topic: str = "t", partitions: int = 3) -> list[bytes | None]:
    return [r.value for p in range(partitions) for r in cluster.records(topic, p)]


def markers(cluster: FakeCluster, topic: str = "t", partitions: int = 3) -> list[str]:
    return [m.kind for p in range(partitions) for m in cluster.markers(topic, p)]


async def send_all(producer: Producer, values: list[bytes], topic: str = "t") -> list[Any]:
    futures = [await producer.send(topic, v, key=v) for v in values]
    return [await f for f in futures]


@pytest.fixture(params=[2, 1], ids=["tv2-cluster", "tv1-cluster"])
def transaction_version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


async def test_commit_abort_commit(transaction_version: int) -> None:
    """Three transactions on one producer: what was committed is visible to read_committed,
    what was aborted was written and is hidden by its abort markers."""
    first = [b"a%d" % i for i in range(50)]
    aborted = [b"b%d" % i for i in range(20)]
    last = [b"c%d" % i for i in range(30)]
    with anyio.fail_after(20):
        async with FakeCluster(brokers=3, transaction_version=transaction_version) as cluster:
            cluster.create_topic("t", 3)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                async with p.transaction():
                    await send_all(p, first)
                await p.begin_transaction()
                await send_all(p, aborted)  # written before the abort
                await p.abort_transaction()
                async with p.transaction():
                    futures = [await p.send("t", v, key=v) for v in last]  # not awaited
                assert all(f.done() and f.exception() is None for f in futures)
            assert sorted(committed(cluster)) == sorted(first + last)
            assert sorted(written(cluster)) == sorted(first + aborted + last)
            assert "abort" in markers(cluster)
            assert "commit" in markers(cluster)
            info = cluster.transaction_state("tx")
            assert info.state == "CompleteCommit"
            if transaction_version == 2:  # partitions join with Produce v12; EndTxn bumps
                assert cluster.request_count(ApiKey.ADD_PARTITIONS_TO_TXN) == 0
                assert info.producer_epoch == 3
            else:
                assert cluster.request_count(ApiKey.ADD_PARTITIONS_TO_TXN) == 3
                assert info.producer_epoch == 0


async def test_sending_outside_a_transaction_raises_at_once() -> None:
    """Before begin, after commit, after abort: send() and send_batch() raise
    TransactionStateError without enqueuing anything (the C shortcut too: plain bytes)."""
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                for attempt in range(3):
                    with pytest.raises(TransactionStateError, match="inside a transaction"):
                        await p.send("t", b"plain")
                    with pytest.raises(TransactionStateError, match="inside a transaction"):
                        await p.send_batch([("t", b"plain")])
                    await p.begin_transaction()
                    future = await p.send("t", b"in %d" % attempt)
                    if attempt % 2:
                        await p.abort_transaction()
                        assert future.exception() is not None  # dropped (or aborted)
                    else:
                        await p.commit_transaction()
                with pytest.raises(TransactionStateError, match="no transaction to commit"):
                    await p.commit_transaction()
                with pytest.raises(TransactionStateError, match="no transaction to abort"):
                    await p.abort_transaction()
                await p.begin_transaction()
                with pytest.raises(TransactionStateError, match="cannot begin"):
                    await p.begin_transaction()
                await p.abort_transaction()
            assert committed(cluster, partitions=1) == [b"in 0", b"in 2"]


async def test_transactional_calls_on_a_plain_producer_raise() -> None:
    with anyio.fail_after(10):
        async with (
            FakeCluster(brokers=1) as cluster,
            Producer(cluster.bootstrap_servers, **FAST) as p,
        ):
            for call in (p.begin_transaction, p.commit_transaction, p.abort_transaction):
                with pytest.raises(TransactionStateError, match="transactional_id"):
                    await call()
            with pytest.raises(TransactionStateError, match="transactional_id"):
                await p.send_offsets_to_transaction({TopicPartition("t", 0): 1}, "g")


async def test_a_newer_instance_fences_the_older() -> None:
    """B starts with A's transactional id: the coordinator aborts A's open transaction and
    bumps the epoch; A's commit raises ProducerFencedError, and so does everything A is
    asked after. B's transaction commits."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 3)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as a:
                await a.begin_transaction()
                await send_all(a, [b"from a %d" % i for i in range(10)])
                async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as b:
                    with pytest.raises(ProducerFencedError):
                        await a.commit_transaction()
                    for call in (a.begin_transaction, a.abort_transaction):
                        with pytest.raises(ProducerFencedError):
                            await call()
                    with pytest.raises(ProducerFencedError):
                        await a.send("t", b"late")
                    async with b.transaction():
                        await send_all(b, [b"from b"])
            assert committed(cluster) == [b"from b"]
            assert len(written(cluster)) == 11  # A's records were written, then aborted


async def test_a_failed_record_fails_the_commit_and_the_abort_recovers() -> None:
    """A record the broker refuses (INVALID_RECORD) spoils the transaction: the commit
    raises that error, later records fail at once, the abort works, and the next
    transaction commits."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                await p.begin_transaction()
                await send_all(p, [b"ok"])
                cluster.fail_next(ApiKey.PRODUCE, INVALID_RECORD)
                bad = await p.send("t", b"refused")
                with pytest.raises(InvalidRecordError):
                    await bad
                with pytest.raises(TransactionStateError, match="must be aborted"):
                    await p.send("t", b"after")
                with pytest.raises(InvalidRecordError) as raised:
                    await p.commit_transaction()
                assert "abort it" in raised.value.__notes__[0]
                await p.abort_transaction()
                async with p.transaction():
                    await send_all(p, [b"next"])
            assert committed(cluster, partitions=1) == [b"next"]


async def test_a_record_failing_during_the_commit_fails_it() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers, transactional_id="tx", **{**FAST, "linger_ms": 1000}
            ) as p:
                await p.begin_transaction()
                future = await p.send("t", b"lingering")  # still queued when commit starts
                cluster.fail_next(ApiKey.PRODUCE, INVALID_RECORD)
                with pytest.raises(InvalidRecordError):
                    await p.commit_transaction()
                assert isinstance(future.exception(), InvalidRecordError)
                await p.abort_transaction()
            assert committed(cluster, partitions=1) == []


async def test_abort_drops_the_records_not_sent_yet() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers, transactional_id="tx", **{**FAST, "linger_ms": 10_000}
            ) as p:
                await p.begin_transaction()
                futures = [await p.send("t", b"%d" % i) for i in range(5)]
                await p.abort_transaction()
                for future in futures:
                    assert isinstance(future.exception(), TransactionAbortedError)
                async with p.transaction():
                    await p.send("t", b"kept")
            assert written(cluster, partitions=1) == [b"kept"]


async def raise_inside(p: Producer) -> None:
    async with p.transaction():
        await (await p.send("t", b"raised"))
        raise ZeroDivisionError


async def test_the_block_aborts_on_an_exception_and_on_cancellation() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                with pytest.raises(ZeroDivisionError):
                    await raise_inside(p)
                with anyio.move_on_after(0.2):
                    async with p.transaction():
                        await (await p.send("t", b"cancelled"))
                        await anyio.sleep(10)
                async with p.transaction():
                    await p.send("t", b"committed")
            assert committed(cluster, partitions=1) == [b"committed"]
            assert markers(cluster, partitions=1) == ["abort", "abort", "commit"]


async def test_offsets_commit_with_the_transaction_and_not_without() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 3)
            cluster.create_topic("in", 2)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                async with p.transaction():
                    await p.send("t", b"out")
                    await p.send_offsets_to_transaction(
                        {
                            TopicPartition("in", 0): 10,
                            TopicPartition("in", 1): OffsetAndMetadata(7, "m"),
                        },
                        ConsumerGroupMetadata("g", generation_id=3, member_id="member-1"),
                    )
                assert cluster.committed_offsets("g") == {("in", 0): 10, ("in", 1): 7}
                await p.begin_transaction()
                await p.send_offsets_to_transaction({TopicPartition("in", 0): 99}, "g")
                await p.abort_transaction()
                assert cluster.committed_offsets("g") == {("in", 0): 10, ("in", 1): 7}
                async with p.transaction():  # offsets only, no record
                    await p.send_offsets_to_transaction({TopicPartition("in", 1): 8}, "g")
                assert cluster.committed_offsets("g") == {("in", 0): 10, ("in", 1): 8}


async def test_partitions_are_added_once_per_transaction_in_one_request() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1, transaction_version=1) as cluster:
            cluster.create_topic("t", 3)
            async with Producer(
                cluster.bootstrap_servers, transactional_id="tx", **{**FAST, "linger_ms": 50}
            ) as p:
                for _ in range(2):
                    async with p.transaction():
                        for i in range(300):
                            await p.send("t", b"%d" % i, partition=i % 3)
            assert cluster.request_count(ApiKey.ADD_PARTITIONS_TO_TXN) == 2
            assert len(committed(cluster)) == 600


async def test_concurrent_transactions_and_a_moved_coordinator_are_retried() -> None:
    with anyio.fail_after(20):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 3)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                async with p.transaction():
                    await p.send("t", b"1")
                    cluster.fail_next(ApiKey.END_TXN, CONCURRENT_TRANSACTIONS, count=3)
                old = cluster.coordinator_of("tx")
                cluster.move_coordinator("tx", (old + 1) % 3)
                async with p.transaction():
                    await p.send("t", b"2")
            assert sorted(committed(cluster)) == [b"1", b"2"]


async def test_an_unavailable_coordinator_fails_start_within_max_block_ms() -> None:
    """The coordinator's broker is down: start() retries FindCoordinator, then raises
    KafkaTimeoutError naming COORDINATOR_NOT_AVAILABLE (with a hint) when max_block_ms is
    up (aiokafka's start() waits forever here, #1091)."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=2) as cluster:
            await cluster.stop_broker(cluster.coordinator_of("tx"))
            producer = Producer(
                cluster.bootstrap_servers, transactional_id="tx", **{**FAST, "max_block_ms": 1500}
            )
            started = time.monotonic()
            with pytest.raises(KafkaTimeoutError, match="COORDINATOR_NOT_AVAILABLE") as raised:
                await producer.start()
            assert time.monotonic() - started < 1.5 + 1.0
            assert "replication.factor" in str(raised.value)
            with pytest.raises(ProducerClosedError):  # start() closed it
                await producer.begin_transaction()


async def test_init_transactions_starts_once() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            p = Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST)
            await p.init_transactions()
            await p.init_transactions()  # no-op
            assert cluster.transaction_state("tx").producer_epoch == 0
            async with p.transaction():
                await p.send("t", b"x")
            await p.close()
            assert committed(cluster, partitions=1) == [b"x"]


async def test_many_plain_records_through_the_fast_path() -> None:
    """Plain bytes records take the C shortcut while the transaction is open; all of
    them commit, exactly once, in order."""
    values = [b"%05d" % i for i in range(5000)]
    with anyio.fail_after(30):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with (
                Producer(
                    cluster.bootstrap_servers, transactional_id="tx", **{**FAST, "linger_ms": 5}
                ) as p,
                p.transaction(),
            ):
                if _staging.Appender is not None:  # send() is the C one
                    assert p.send == p._appender.send
                for v in values:
                    await p.send("t", v, partition=0)
            assert committed(cluster, partitions=1) == values


async def test_lost_sequences_abort_the_transaction_then_the_epoch_moves_on(
    transaction_version: int,
) -> None:
    """The partition leader forgets the producer (UNKNOWN_PRODUCER_ID for a batch that
    is not its first): a transaction cannot start its sequences over, so the record
    fails, the commit raises, and after the abort the epoch moves on: with version 1,
    InitProducerId with the current id and epoch (KIP-360); with version 2, the abort's
    EndTxn answers with it (every end of a transaction does). The next transaction
    commits under it."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1, transaction_version=transaction_version) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                await p.begin_transaction()
                await send_all(p, [b"first"])
                cluster.forget_producers()
                lost = await p.send("t", b"lost", key=b"lost")
                with pytest.raises(UnknownProducerIdError):
                    await lost
                with pytest.raises(UnknownProducerIdError):
                    await p.commit_transaction()
                await p.abort_transaction()
                assert cluster.transaction_state("tx").producer_epoch == 1
                async with p.transaction():
                    await send_all(p, [b"after"])
            assert committed(cluster, partitions=1) == [b"after"]


async def test_closing_with_a_transaction_open_aborts_it() -> None:
    """As Java's producer: close() aborts the open transaction (its records sent so far
    get abort markers at once; those not sent fail with TransactionAbortedError), rather
    than leave it to hold read_committed consumers back until the coordinator's timeout."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                await p.begin_transaction()
                await send_all(p, [b"sent"])
            assert cluster.transaction_state("tx").state == "CompleteAbort"
            assert written(cluster, partitions=1) == [b"sent"]
            assert committed(cluster, partitions=1) == []
            assert markers(cluster, partitions=1) == ["abort"]


async def test_the_coordinator_lost_mid_transaction_commits_once_it_is_back() -> None:
    """The coordinator's broker stops mid-transaction; its partitions move to another
    broker a moment later (as a new leader of __transaction_state takes over): the commit
    retries through COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR and succeeds, and the
    transaction is all visible, never half."""
    values = [b"%d" % i for i in range(100)]
    with anyio.fail_after(20):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 3)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                await p.begin_transaction()
                await send_all(p, values)
                old = cluster.coordinator_of("tx")
                await cluster.stop_broker(old)

                async def fail_over() -> None:
                    await anyio.sleep(0.3)
                    cluster.move_coordinator("tx", (old + 1) % 3)

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(fail_over)
                    await p.commit_transaction()
            assert sorted(committed(cluster)) == sorted(values)


async def test_a_transaction_past_its_timeout_is_aborted_by_the_coordinator() -> None:
    """transaction_timeout_ms passes with the transaction open: the coordinator aborts it
    and bumps the epoch, so the producer's next call raises a typed error (the epoch it
    holds is fenced), and nothing of the transaction is visible."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers,
                transactional_id="tx",
                transaction_timeout_ms=300,
                **FAST,
            ) as p:
                await p.begin_transaction()
                await send_all(p, [b"too slow"])
                await anyio.sleep(0.5)
                with pytest.raises((ProducerFencedError, InvalidProducerEpochError)):
                    await p.commit_transaction()
            assert committed(cluster, partitions=1) == []
            assert markers(cluster, partitions=1) == ["abort"]


async def test_a_record_too_large_spoils_the_transaction_a_bad_argument_does_not() -> None:
    """As Java's doSend: send() raising an error a broker could have given (the record
    is too large) or a timeout leaves the transaction unable to commit without it; an
    argument refused before any broker was involved (a serializer's error) does not."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers, transactional_id="tx", max_request_size=2000, **FAST
            ) as p:
                async with p.transaction():
                    await p.send("t", b"kept")
                    with pytest.raises(SerializationError):
                        await p.send("t", "not bytes")
                await p.begin_transaction()
                dropped = await p.send("t", b"lost with the abort")
                with pytest.raises(RecordTooLargeError):
                    await p.send("t", b"x" * 5000)
                with pytest.raises(RecordTooLargeError) as raised:
                    await p.commit_transaction()
                assert "abort it" in raised.value.__notes__[0]
                await p.abort_transaction()
                with pytest.raises((TransactionAbortedError, RecordTooLargeError)):
                    await dropped
            assert committed(cluster, partitions=1) == [b"kept"]


async def test_a_producer_fenced_by_its_timeout_fails_and_closes_at_once() -> None:
    """The coordinator aborted the transaction past its timeout and bumped the epoch: the
    next batch gets INVALID_PRODUCER_EPOCH, the producer cannot go on, and every call
    raises at once; close() does not try to abort through connections that are gone."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            p = Producer(
                cluster.bootstrap_servers,
                transactional_id="tx",
                transaction_timeout_ms=300,
                **FAST,
            )
            await p.start()
            await p.begin_transaction()
            await send_all(p, [b"first"])
            await anyio.sleep(0.6)
            late = await p.send("t", b"late")
            with pytest.raises((InvalidProducerEpochError, ProducerFencedError)):
                await late
            started = time.monotonic()
            with pytest.raises((InvalidProducerEpochError, ProducerFencedError)):
                await p.commit_transaction()
            await p.close()
            assert time.monotonic() - started < 2
            assert committed(cluster, partitions=1) == []


async def test_a_librdkafka_consumer_reads_what_the_transactions_left() -> None:
    """What this producer's transactions leave on the FakeCluster, read by a client this
    project did not write: librdkafka at read_committed sees the committed transactions,
    in order; at read_uncommitted the aborted one's records too."""
    committed_values = [b"c%d" % i for i in range(30)]
    aborted_values = [b"a%d" % i for i in range(10)]
    with anyio.fail_after(40):
        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("t", 3)
            async with Producer(cluster.bootstrap_servers, transactional_id="tx", **FAST) as p:
                async with p.transaction():
                    await send_all(p, committed_values[:15])
                await p.begin_transaction()
                await send_all(p, aborted_values)
                await p.abort_transaction()
                async with p.transaction():
                    await send_all(p, committed_values[15:])
            read: dict[str, dict[int, list[Seen]]] = {}
            for isolation in ("read_committed", "read_uncommitted"):
                read[isolation] = await anyio.to_thread.run_sync(
                    read_to_sentinel, cluster.bootstrap_servers, "t", range(3), isolation
                )
            for partition in range(3):  # the fake's own view, as librdkafka reads it
                stored = [
                    r
                    for r in cluster.records("t", partition, isolation="read_committed")
                    if not (r.value or b"").startswith(SENTINEL)
                ]
                assert [r.value for r in stored] == [
                    s.value for s in read["read_committed"][partition]
                ]
            assert sorted(values(read["read_committed"])) == sorted(committed_values)
            assert sorted(values(read["read_uncommitted"])) == sorted(
                committed_values + aborted_values
            )
