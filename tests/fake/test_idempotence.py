"""The idempotent producer against the FakeCluster's broker-side sequence rules: several
batches of a partition in flight, sequence errors, epoch bumps, splits, leader hints.

Each test checks what the fake stored (every record once, in send order, at the offset
its future reported) as well as what the futures say.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from asyncproducer import Producer, RecordMetadata
from asyncproducer.errors import KafkaTimeoutError, RecordTooLargeError
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio

REQUEST_TIMED_OUT = 7
NOT_LEADER_OR_FOLLOWER = 6
UNKNOWN_PRODUCER_ID = 59
# One record of VALUE_SIZE bytes per batch: each send() makes a batch of its own.
VALUE_SIZE = 300
ONE_RECORD_PER_BATCH = {
    "batch_size": 400,
    "linger_ms": 0,
    "retry_backoff_ms": 10,
    "retry_backoff_max_ms": 50,
}


def value(index: int) -> bytes:
    return str(index).encode().ljust(VALUE_SIZE, b".")


async def send_all(producer: Producer, values: Sequence[bytes]) -> list[RecordMetadata]:
    futures = [await producer.send("t", v, partition=0) for v in values]
    return [await f for f in futures]


def assert_stored_once_in_order(
    cluster: FakeCluster, values: Sequence[bytes], acks: Sequence[RecordMetadata]
) -> None:
    stored = cluster.records("t", 0)
    assert [r.value for r in stored] == list(values)
    assert [r.offset for r in stored] == [md.offset for md in acks]


async def test_five_in_flight_first_fails_the_rest_are_out_of_order_then_all_in_order() -> None:
    """The first of five in-flight requests fails retriably; the broker refuses the other
    four with OUT_OF_ORDER_SEQUENCE_NUMBER (their sequences follow a batch it does not
    have). All five are resent in sequence order; nothing is lost or duplicated."""
    values = [value(i) for i in range(5)]
    with anyio.fail_after(15):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                await producer.partitions_for("t")
                await producer.send_and_wait("t", b"warm-up", partition=0)  # producer id
                cluster.fail_next(ApiKey.PRODUCE, REQUEST_TIMED_OUT)
                # Hold the answers so the five requests are all out before the first
                # error comes back.
                cluster.delay_responses(ApiKey.PRODUCE, 0.2, count=5)
                before = cluster.request_count(ApiKey.PRODUCE)
                acks = await send_all(producer, values)
                metrics = producer.metrics()
            assert cluster.request_count(ApiKey.PRODUCE) - before == 10
            assert metrics["record-retry-total"] == 5
            assert metrics["epoch-bump-total"] == 0
            stored = cluster.records("t", 0)[1:]
            assert [r.value for r in stored] == values
            assert [r.offset for r in stored] == [md.offset for md in acks]
            assert [r.sequence for r in stored] == [1, 2, 3, 4, 5]


async def test_response_lost_after_the_write_is_a_duplicate_acknowledged_once() -> None:
    """The broker wrote the batch but the answer was lost; the retry is answered as a
    duplicate with the original offset, which the future reports."""
    with anyio.fail_after(10):
        async with FakeCluster(brokers=2) as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                first = await producer.send_and_wait("t", b"first", partition=0)
                cluster.drop_connection(ApiKey.PRODUCE, after_apply=True)
                second = await producer.send_and_wait("t", b"second", partition=0)
        assert (first.offset, second.offset) == (0, 1)
        assert [r.value for r in cluster.records("t", 0)] == [b"first", b"second"]
        assert cluster.request_count(ApiKey.PRODUCE) == 3


async def test_unknown_producer_id_bumps_the_epoch_and_starts_sequences_over() -> None:
    values = [value(i) for i in range(6)]
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                acks = await send_all(producer, values[:3])
                cluster.forget_producers()
                acks += await send_all(producer, values[3:])
                metrics = producer.metrics()
        assert_stored_once_in_order(cluster, values, acks)
        stored = cluster.records("t", 0)
        assert [(r.producer_epoch, r.sequence) for r in stored] == [
            (0, 0),
            (0, 1),
            (0, 2),
            (1, 0),
            (1, 1),
            (1, 2),
        ]
        assert metrics["epoch-bump-total"] == 1


async def test_injected_unknown_producer_id_is_retried_under_a_new_epoch() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                await producer.send_and_wait("t", b"a", partition=0)
                cluster.fail_next(ApiKey.PRODUCE, UNKNOWN_PRODUCER_ID)
                await producer.send_and_wait("t", b"b", partition=0)
                await producer.send_and_wait("t", b"c", partition=0)
        stored = cluster.records("t", 0)
        assert [(r.value, r.producer_epoch, r.sequence) for r in stored] == [
            (b"a", 0, 0),
            (b"b", 1, 0),
            (b"c", 1, 1),
        ]


async def test_message_too_large_splits_the_batch_until_it_fits() -> None:
    values = [value(i) for i in range(16)]  # one batch of ~5 KB
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1, max_message_bytes=1_400)
            async with Producer(
                cluster.bootstrap_servers, linger_ms=50, batch_size=16_384
            ) as producer:
                acks = await send_all(producer, values)
                metrics = producer.metrics()
        assert_stored_once_in_order(cluster, values, acks)
        assert [r.sequence for r in cluster.records("t", 0)] == list(range(16))
        # 16 records -> halves of 8 -> quarters of 4 (about 1.3 KB each).
        assert metrics["batch-split-total"] == 1 + 2
        assert all(len(b.raw) <= 1_400 for b in cluster.batches("t", 0))


async def test_a_single_record_too_large_fails_alone_and_later_sequences_close_the_gap() -> None:
    """The broker refuses a one-record batch as too large: it fails with the typed
    error. The batches sent after it, already stamped with later sequences, are moved
    down so the broker sees no gap."""
    small = [value(i) for i in range(4)]
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1, max_message_bytes=1_000)
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                await producer.partitions_for("t")
                cluster.delay_responses(ApiKey.PRODUCE, 0.1, count=4)
                futures = [await producer.send("t", small[0], partition=0)]
                futures.append(await producer.send("t", b"x" * 2_000, partition=0))
                futures += [await producer.send("t", v, partition=0) for v in small[1:]]
                outcomes = []
                for future in futures:
                    try:
                        outcomes.append(await future)
                    except RecordTooLargeError as exc:
                        outcomes.append(exc)
        assert isinstance(outcomes[1], RecordTooLargeError)
        assert "t-0" in str(outcomes[1])
        assert outcomes[1].possibly_written is False
        acks = [md for md in outcomes if isinstance(md, RecordMetadata)]
        assert_stored_once_in_order(cluster, small, acks)
        assert [r.sequence for r in cluster.records("t", 0)] == [0, 1, 2, 3]


async def test_leader_hint_in_the_produce_response_avoids_a_metadata_request() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=2) as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                await producer.send_and_wait("t", b"a", partition=0)
                metadata_requests = cluster.request_count(ApiKey.METADATA)
                cluster.move_leader("t", 0, to_broker=1)
                moved = await producer.send_and_wait("t", b"b", partition=0)
                assert cluster.request_count(ApiKey.METADATA) == metadata_requests
        assert moved.offset == 1
        assert [e.broker for e in cluster.request_log if e.api_key == ApiKey.PRODUCE] == [0, 0, 1]


async def test_leader_moves_with_batches_in_flight_order_is_kept() -> None:
    """Batches are in flight to the old leader when the leader moves: the new leader
    refuses the later ones (sequence gap) until the earlier ones are retried to it."""
    values = [value(i) for i in range(20)]
    with anyio.fail_after(15):
        async with FakeCluster(brokers=2) as cluster:
            cluster.create_topic("t", 1, leaders=[0])
            async with Producer(cluster.bootstrap_servers, **ONE_RECORD_PER_BATCH) as producer:
                await producer.partitions_for("t")
                cluster.delay_responses(ApiKey.PRODUCE, 0.05, broker=0)
                futures = []
                for index, v in enumerate(values):
                    futures.append(await producer.send("t", v, partition=0))
                    if index == 7:
                        await anyio.sleep(0.02)  # some requests are out
                        cluster.move_leader("t", 0, to_broker=1)
                acks = [await f for f in futures]
        assert_stored_once_in_order(cluster, values, acks)


async def test_batch_expired_in_flight_is_possibly_written_and_the_partition_moves_on() -> None:
    """The broker wrote the batch but answered after the delivery timeout: the records
    fail with possibly_written=True (they are in the log). The partition's sequence is
    unresolved until then; the next batch goes under a bumped epoch from sequence 0."""
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            async with Producer(
                cluster.bootstrap_servers,
                delivery_timeout_ms=600,
                request_timeout_ms=600,
                linger_ms=0,
                retry_backoff_ms=10,
            ) as producer:
                await producer.send_and_wait("t", b"a", partition=0)
                cluster.delay_responses(ApiKey.PRODUCE, 2.0, count=1)
                late = await producer.send("t", b"b", partition=0)
                with pytest.raises(KafkaTimeoutError) as caught:
                    await late
                after = await producer.send_and_wait("t", b"c", partition=0)
                metrics = producer.metrics()
        assert caught.value.possibly_written is True
        stored = cluster.records("t", 0)
        assert [r.value for r in stored] == [b"a", b"b", b"c"]
        assert after.offset == 2
        assert (stored[2].producer_epoch, stored[2].sequence) == (1, 0)
        assert metrics["epoch-bump-total"] == 1
