"""RecordAccumulator decisions, with a fake clock (no I/O)."""

from __future__ import annotations

import pytest

from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._batch import RECORD_OVERHEAD, RECORDS_PER_CHARGE, Record, batch_reservation
from asyncproducer._cluster import BrokerInfo, ClusterSnapshot, PartitionMetadata, TopicInfo
from asyncproducer._idempotence import IdempotenceState, ProducerIdAndEpoch, increment_sequence
from asyncproducer._memory import BufferPool
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE, record_size
from asyncproducer.protocol.records import decode_batches

CLUSTER = ClusterSnapshot(
    brokers={1: BrokerInfo(1, "a", 1), 2: BrokerInfo(2, "b", 2)},
    topics={
        "t": TopicInfo(
            "t",
            (
                PartitionMetadata("t", 0, 1, 0, (1,), (1,)),
                PartitionMetadata("t", 1, 2, 0, (2,), (2,)),
                PartitionMetadata("t", 2, -1, 0, (1,), ()),  # no leader right now
            ),
        )
    },
)


def accumulator(**overrides: object) -> RecordAccumulator:
    settings: dict[str, object] = {
        "batch_size": 1_000,
        "linger_ms": 10,
        "compression": CompressionType.NONE,
        "compression_level": None,
        "delivery_timeout_ms": 1_000,
        "retry_backoff": ExponentialBackoff(100, 100, jitter=0),
    }
    settings.update(overrides)
    return RecordAccumulator(**settings)  # type: ignore[arg-type]


APPENDED = "appended"
NEEDS_NEW_BATCH = "new batch"


def pending(value: bytes) -> Record:
    return (0, None, value, ())


def add(acc: RecordAccumulator, partition: int, now: float, value: bytes = b"abc") -> str:
    """Append as send() does; say whether the record needed a new batch."""
    if acc.try_append("t", partition, None, pending(value)) is not None:
        return APPENDED
    batch, created = acc.append_to_new_batch("t", partition, None, pending(value), 1_000, now)
    assert created
    assert batch.record_count >= 1
    return NEEDS_NEW_BATCH


def test_linger_decides_readiness() -> None:
    acc = accumulator()
    assert add(acc, 0, now=0) == NEEDS_NEW_BATCH
    assert add(acc, 0, now=1) == APPENDED
    check = acc.ready(CLUSTER, now_ms=5, memory_waiting=False)
    assert check.ready_nodes == set()
    assert check.next_check_ms == 5
    assert acc.ready(CLUSTER, now_ms=10, memory_waiting=False).ready_nodes == {1}


def test_full_batch_flush_close_and_memory_pressure_skip_linger() -> None:
    acc = accumulator()
    add(acc, 0, now=0, value=b"x" * 500)
    assert add(acc, 0, now=0, value=b"x" * 500) == NEEDS_NEW_BATCH  # the first is full now
    assert acc.ready(CLUSTER, 0, False).ready_nodes == {1}

    for hurry in ("flush", "close", "memory"):
        acc = accumulator()
        add(acc, 1, now=0)
        if hurry == "flush":
            acc.begin_flush()
        elif hurry == "close":
            acc.closing = True
        assert acc.ready(CLUSTER, 0, hurry == "memory").ready_nodes == {2}, hurry


def test_a_full_batch_alone_is_ready_but_not_urgent_until_its_linger_is_over() -> None:
    """Its broker, with a request out, gets it with the answer (``Sender``), unless
    something presses: its linger over, a batch behind it, a flush, close or memory."""
    acc = accumulator()
    add(acc, 0, now=0, value=b"x" * 500)
    # Full now; the record that did not fit goes elsewhere (a sticky partitioner's next
    # partition): nothing queues behind the full batch.
    assert acc.try_append("t", 0, None, pending(b"x" * 500)) is None
    check = acc.ready(CLUSTER, now_ms=4, memory_waiting=False)
    assert check.ready_nodes == {1}
    assert check.drainable == {1: [("t", 0)]}
    assert check.urgent == set()
    assert check.next_check_ms == 6  # when its linger is over
    assert acc.ready(CLUSTER, now_ms=10, memory_waiting=False).urgent == {1}
    assert acc.ready(CLUSTER, now_ms=4, memory_waiting=True).urgent == {1}
    acc.begin_flush()
    assert acc.ready(CLUSTER, now_ms=4, memory_waiting=False).urgent == {1}


def test_a_batch_queued_behind_a_full_one_makes_its_broker_urgent() -> None:
    acc = accumulator()
    add(acc, 0, now=0, value=b"x" * 500)
    assert add(acc, 0, now=1, value=b"x" * 500) == NEEDS_NEW_BATCH
    check = acc.ready(CLUSTER, now_ms=1, memory_waiting=False)
    assert check.ready_nodes == check.urgent == {1}


def test_batch_fills_until_batch_size() -> None:
    acc = accumulator(linger_ms=0)
    outcomes = [add(acc, 0, now=0, value=b"x" * 100) for _ in range(12)]
    # ~110 bytes per record in 1,000-byte batches: 8 fit (61 bytes of header), then a new one.
    assert outcomes.count(NEEDS_NEW_BATCH) == 2
    assert outcomes.index(NEEDS_NEW_BATCH, 1) == 8
    (first,) = acc.drain(acc.ready(CLUSTER, 0, False), [1], 10_000)[1]
    assert first.record_count == 8
    assert len(first.payload or b"") <= 1_000


def test_unknown_leader_is_reported_not_drained() -> None:
    acc = accumulator(linger_ms=0)
    add(acc, 2, now=0)
    check = acc.ready(CLUSTER, 0, False)
    assert check.unknown_leader_topics == {"t"}
    assert check.ready_nodes == set()


def test_drain_mutes_partition_until_finished_and_respects_request_size() -> None:
    acc = accumulator(linger_ms=0)
    add(acc, 0, now=0, value=b"x" * 500)
    add(acc, 0, now=0, value=b"x" * 500)  # second batch, same partition
    check = acc.ready(CLUSTER, 0, False)
    drained = acc.drain(check, [1], max_request_size=10_000)
    assert [b.partition for b in drained[1]] == [0]  # one batch per partition in flight
    assert acc.ready(CLUSTER, 0, False).ready_nodes == set()  # muted
    acc.finished(drained[1][0])
    assert acc.ready(CLUSTER, 0, False).ready_nodes == {1}

    acc = accumulator(linger_ms=0)
    add(acc, 0, now=0, value=b"x" * 400)
    add(acc, 1, now=0, value=b"x" * 400)
    check = acc.ready(CLUSTER, 0, False)
    check.drainable[1] = check.drainable[1] + check.drainable.pop(2)  # both on one broker
    drained = acc.drain(check, [1], max_request_size=500)
    assert len(drained[1]) == 1  # the second batch would pass max_request_size


def test_retry_waits_for_backoff_and_goes_first() -> None:
    acc = accumulator(linger_ms=0)
    add(acc, 0, now=0)
    (batch,) = acc.drain(acc.ready(CLUSTER, 0, False), [1], 10_000)[1]
    add(acc, 0, now=1)  # a later batch queues behind
    acc.reenqueue(batch, now_ms=10)
    check = acc.ready(CLUSTER, 50, False)
    assert check.ready_nodes == set()
    assert check.next_check_ms == 60  # retry_backoff 100 ms from t=10
    (again,) = acc.drain(acc.ready(CLUSTER, 110, False), [1], 10_000)[1]
    assert again is batch
    assert batch.attempts == 1


def test_expiry_takes_queued_batches_past_delivery_timeout() -> None:
    acc = accumulator(delivery_timeout_ms=100)
    add(acc, 0, now=0)
    add(acc, 1, now=50)
    assert acc.expired(99) == []
    assert acc.next_expiry_ms(99) == 1
    (first,) = acc.expired(100)
    assert first.partition == 0
    assert [b.partition for b in acc.expired(150)] == [1]
    assert not acc.has_queued


def test_idempotent_stamps_are_contiguous_per_partition_and_wrap() -> None:
    state = IdempotenceState()
    state.initializing()
    state.set_producer(ProducerIdAndEpoch(7, 3))
    acc = accumulator(linger_ms=0, guarantee_order=False)
    for _ in range(3):
        add(acc, 0, now=0)
    add(acc, 1, now=0)
    drained = acc.drain(acc.ready(CLUSTER, 0, False), [1, 2], 10_000, state)
    (batch0,) = decode_batches(drained[1][0].payload or b"")
    (batch1,) = decode_batches(drained[2][0].payload or b"")
    assert (batch0.producer_id, batch0.producer_epoch, batch0.base_sequence) == (7, 3, 0)
    assert batch1.base_sequence == 0
    add(acc, 0, now=1)
    (next0,) = acc.drain(acc.ready(CLUSTER, 1, False), [1], 10_000, state)[1]
    assert next0.base_sequence == 3  # not muted: idempotence keeps the order
    assert increment_sequence(2**31 - 2, 3) == 1


def test_a_new_batch_reserves_the_overhead_of_as_many_records_as_fit() -> None:
    assert BATCH_HEADER_SIZE == 61
    # A 90-byte value takes 99 bytes as a batch's first record (deltas 0; two-byte
    # length varints), and so do the next 63: 939 // 99 = 9 fit in a batch of 1,000.
    assert record_size(0, 0, None, b"v" * 90, ()) == 99
    assert batch_reservation(1_000, pending(b"v" * 90), 10**6) == (1_000 + 9 * RECORD_OVERHEAD, 9)
    # 100-byte values in 16 KiB: 64 of 109 bytes, then (16_323 - 6_976) // 110 = 84 fit,
    # 148 in all; 16 are paid for up front, the rest as they come.
    assert batch_reservation(16_384, pending(b"v" * 100), 10**6) == (
        16_384 + RECORDS_PER_CHARGE * RECORD_OVERHEAD,
        RECORDS_PER_CHARGE,
    )
    # A record larger than batch_size: its own batch, exactly its size.
    assert batch_reservation(1_000, pending(b"v" * 5_000), 10**6) == (
        61 + 5_009 + RECORD_OVERHEAD,
        1,
    )
    # Never more than all of buffer_memory; then fewer records are paid for.
    assert batch_reservation(1_000, pending(b"v" * 90), 2_000) == (2_000, 1_000 // RECORD_OVERHEAD)
    assert batch_reservation(1_000, pending(b"v" * 1_800), 2_000) == (2_000, 1)


class CountedPool(BufferPool):
    """A buffer pool that counts the charges batches make for more records."""

    charges = 0

    def charge(self, size: int) -> bool:
        self.charges += 1
        return self.try_reserve(size)


@pytest.mark.parametrize("value_size", [0, 10, 90, 100, 1_000])
@pytest.mark.parametrize("batch_size", [1_000, 16_384])
def test_a_batch_of_like_records_pays_for_what_it_holds_in_a_few_steps(
    value_size: int, batch_size: int
) -> None:
    # Up to 16 records up front, then as many again each time it is at capacity (at most
    # as many as still fit): a full batch has paid for its records and at most one more,
    # and went back to the Python path to pay a few times, not once per 16 records.
    pool = CountedPool(10**7)
    acc = accumulator(batch_size=batch_size, charge=pool.charge)
    reserved, capacity = batch_reservation(batch_size, pending(b"v" * value_size), pool.total)
    assert capacity <= RECORDS_PER_CHARGE
    assert pool.try_reserve(reserved)
    batch, _ = acc.append_to_new_batch(
        "t", 0, None, pending(b"v" * value_size), reserved, 0, capacity
    )
    paid_for = batch.record_capacity
    while acc.try_append("t", 0, None, pending(b"v" * value_size)) is batch:
        paid_for = batch.record_capacity
    assert batch.full
    assert 0 <= paid_for - batch.record_count <= 1
    assert batch.reserved == reserved + (paid_for - capacity) * RECORD_OVERHEAD
    assert pool.charges <= max(1, batch.record_count // RECORDS_PER_CHARGE).bit_length() + 1


def test_the_next_batch_pays_up_front_for_what_the_last_one_held() -> None:
    """Steady traffic: a partition's second batch pays once, for as many records as its
    first held, and fills without going back to pay more."""
    pool = CountedPool(10**7)
    acc = accumulator(batch_size=16_384, charge=pool.charge)
    assert acc.last_batch_records("t", 0) == 0
    record = pending(b"v" * 100)
    for expected_charges in (4, 0):  # 16 -> 32 -> 64 -> 128 -> 148; then none
        pool.charges = 0
        reserved, capacity = batch_reservation(
            16_384, record, pool.total, acc.last_batch_records("t", 0)
        )
        assert pool.try_reserve(reserved)
        batch, _ = acc.append_to_new_batch("t", 0, None, record, reserved, 0, capacity)
        while acc.try_append("t", 0, None, record) is batch:
            pass
        assert batch.record_count == 148
        assert pool.charges == expected_charges
        assert acc.last_batch_records("t", 0) == 148
    acc.queues[("t", 0)].clear()
    acc.finished(batch)  # gone: its count is kept
    assert acc.last_batch_records("t", 0) == 148


def test_small_batches_leave_room_for_many_partitions() -> None:
    """A batch of a few records holds ~21 KiB of buffer_memory at 16 KiB batch_size, not
    the overhead of every record that could fit (~64 KiB): 32 MiB keeps ~1,500 partitions'
    batches open, where Java's pool keeps 2,048."""
    reserved, _ = batch_reservation(16_384, pending(b"v" * 100), 32 * 2**20)
    assert reserved == 16_384 + RECORDS_PER_CHARGE * RECORD_OVERHEAD
    assert 32 * 2**20 // reserved > 1_500


def test_a_batch_pays_for_smaller_records_and_closes_when_memory_is_short() -> None:
    pool = BufferPool(1_000 + RECORD_OVERHEAD + RECORDS_PER_CHARGE * RECORD_OVERHEAD)
    acc = accumulator(batch_size=100_000, charge=pool.try_reserve)
    # The first record was large: the reservation covers one record's overhead.
    reserved = 1_000 + RECORD_OVERHEAD
    assert pool.try_reserve(reserved)
    batch, _ = acc.append_to_new_batch("t", 0, None, pending(b"v"), reserved, 0, 1)
    # The next pays for 16 more, in one step.
    assert acc.try_append("t", 0, None, pending(b"v")) is batch
    assert batch.reserved == reserved + RECORDS_PER_CHARGE * RECORD_OVERHEAD
    assert pool.available == 0
    for _ in range(RECORDS_PER_CHARGE - 1):
        assert acc.try_append("t", 0, None, pending(b"v")) is batch
    # buffer_memory has nothing left for the 18th record's overhead: the batch is full,
    # though its bytes are far from batch_size, and a new batch must wait for memory.
    assert batch.record_count == 1 + RECORDS_PER_CHARGE
    assert acc.try_append("t", 0, None, pending(b"v")) is None
    assert batch.full
    pool.release(batch.reserved)
    assert pool.available == pool.total


def test_a_batch_without_a_charge_is_bounded_by_bytes_only() -> None:
    acc = accumulator(batch_size=100_000)
    batch, _ = acc.append_to_new_batch("t", 0, None, pending(b"v"), 1_000, 0)
    for _ in range(500):
        assert acc.try_append("t", 0, None, pending(b"v")) is batch
    assert batch.reserved == 1_000
