"""The default partitioner's switch (KIP-794): when a topic's keyless records move to
another partition, and where, from the accumulator's queues (no I/O)."""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from typing import Any

import pytest

from asyncproducer import Producer
from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._batch import BatchState
from asyncproducer._sticky_switch import BrokerAvailability, StickySwitch
from asyncproducer.errors import ConfigError
from asyncproducer.partitioners import RoundRobinPartitioner, StickyPartitionCache
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE
from tests.unit.test_partitioners import cluster

BATCH_SIZE = 1_000
VALUE = b"v" * 90  # about 100 bytes encoded: ten fill a batch


class Draws(random.Random):
    """``randrange(n)`` returns the given draws in turn (each checked to be below n)."""

    def __init__(self, *draws: int) -> None:
        super().__init__(0)
        self.draws = list(draws)
        self.bounds: list[int] = []

    def randrange(self, stop: Any, *args: Any, **kwargs: Any) -> int:  # type: ignore[override]
        assert not args
        assert not kwargs
        self.bounds.append(stop)
        draw = self.draws.pop(0)
        assert 0 <= draw < stop
        return draw


def accumulator() -> RecordAccumulator:
    return RecordAccumulator(
        batch_size=BATCH_SIZE,
        linger_ms=10,
        compression=CompressionType.NONE,
        compression_level=None,
        delivery_timeout_ms=60_000,
        retry_backoff=ExponentialBackoff(100, 100, jitter=0),
    )


def switch(
    acc: RecordAccumulator,
    rng: random.Random,
    *,
    adaptive: bool = True,
    availability: BrokerAvailability | None = None,
) -> tuple[StickySwitch, StickyPartitionCache]:
    sticky = StickyPartitionCache()
    return (
        StickySwitch(
            sticky,
            acc,
            batch_size=BATCH_SIZE,
            adaptive=adaptive,
            availability=availability,
            rng=rng,
        ),
        sticky,
    )


def append(acc: RecordAccumulator, partition: int) -> bool:
    """One keyless record for partition ``partition`` of topic t, appended as the producer
    does; False if it needed a new batch (then the producer asks the switch first)."""
    record = (0, None, VALUE, ())
    if acc.try_append("t", partition, None, record) is not None:
        return True
    acc.append_to_new_batch("t", partition, None, record, 0, 0.0)
    return False


def fill(acc: RecordAccumulator, partition: int) -> None:
    """Append until the partition's open batch is full."""
    while acc.full_batch("t", partition) is None:
        record = (0, None, VALUE, ())
        if acc.try_append("t", partition, None, record) is None and not acc.full_batch(
            "t", partition
        ):
            acc.append_to_new_batch("t", partition, None, record, 0, 0.0)


def sent(acc: RecordAccumulator, partition: int) -> None:
    """The partition's queued batches leave (drained and acknowledged)."""
    queued = acc.queues[("t", partition)]
    while queued:
        batch = queued.popleft()
        batch.move_to(BatchState.SENDING)
        acc.finished(batch)


def queue(acc: RecordAccumulator, partition: int, batches: int) -> None:
    """Give the partition's queue ``batches`` batches (only their number counts here)."""
    acc.queues[("t", partition)] = deque([object()] * batches)  # type: ignore[list-item]


THREE = cluster({"t": [1, 2, 3]})  # partition i led by broker i + 1


# --------------------------------------------------------------------------- bytes


def test_appended_bytes_count_every_batch_of_the_partition_once() -> None:
    acc = accumulator()
    for _ in range(25):
        append(acc, 0)
    batches = list(acc.queues[("t", 0)])
    assert len(batches) == 3
    # Full batches count as BATCH_SIZE (they took as much as fits), the open one as is.
    total = 2 * BATCH_SIZE + BATCH_HEADER_SIZE + batches[-1].records_size
    assert acc.appended_bytes("t", 0) == total
    assert acc.appended_bytes("t", 1) == 0
    # Sent and acknowledged, batches still count, and the newest is not kept for it.
    sent(acc, 0)
    assert acc.appended_bytes("t", 0) == total
    assert ("t", 0) not in acc._newest
    append(acc, 0)
    newest = acc.queues[("t", 0)][-1]
    assert acc.appended_bytes("t", 0) == total + BATCH_HEADER_SIZE + newest.records_size


# --------------------------------------------------------------------------- when


def test_a_record_stays_until_a_batch_size_went_there() -> None:
    acc = accumulator()
    moving, sticky = switch(acc, Draws(0, 1))
    assert sticky.partition("t", THREE) == 0
    append(acc, 0)
    sent(acc, 0)  # it left half empty (linger_ms): the next record opens another there
    assert moving.partition_for_new_batch("t", 0, THREE) == 0
    append(acc, 0)
    fill(acc, 0)
    assert acc.appended_bytes("t", 0) >= BATCH_SIZE
    assert moving.partition_for_new_batch("t", 0, THREE) == 1  # the second draw
    assert sticky.partitions == {"t": 1}


def test_batches_that_leave_early_share_a_batch_size_then_move_on() -> None:
    """No fractional batch: with batches sent at 40 % full, the switch comes after the
    third (120 %), never within one."""
    acc = accumulator()
    moving, sticky = switch(acc, Draws(0, 2))
    assert sticky.partition("t", THREE) == 0
    stays = 0
    while True:
        for _ in range(4):
            append(acc, 0)
        sent(acc, 0)
        moved = moving.partition_for_new_batch("t", 0, THREE)
        if moved != 0:
            break
        stays += 1
    assert (stays, moved) == (2, 2)
    assert 2 * BATCH_SIZE > acc.appended_bytes("t", 0) >= BATCH_SIZE


def test_a_full_batch_from_before_the_choice_does_not_count() -> None:
    acc = accumulator()
    fill(acc, 1)  # keyed records filled partition 1 before it was chosen
    draws = Draws(2)
    moving, sticky = switch(acc, draws)
    assert sticky.partition("t", THREE) == 1
    assert draws.bounds == [5]  # queues 0, 1, 0 weigh 2, 1, 2: the draw 2 lands on 1
    assert acc.full_batch("t", 1) is not None
    assert moving.partition_for_new_batch("t", 1, THREE) == 1


def test_a_stale_call_follows_the_partition_the_topic_moved_to() -> None:
    acc = accumulator()
    moving, sticky = switch(acc, Draws(2))
    assert sticky.partition("t", THREE) == 2
    assert moving.partition_for_new_batch("t", 0, THREE) == 2


# --------------------------------------------------------------------------- where


def test_shorter_queues_weigh_more_javas_example() -> None:
    """Queues 0, 3, 1 weigh 4, 1, 3: draws 0-3 give partition 0, 4 gives 1, 5-7 give 2."""
    acc = accumulator()
    queue(acc, 0, 0)
    queue(acc, 1, 3)
    queue(acc, 2, 1)
    draws = Draws(*range(8))
    _, sticky = switch(acc, draws)
    chosen = [sticky.next_partition("t", THREE, sticky.partitions.get("t", -1)) for _ in range(8)]
    assert chosen == [0, 0, 0, 0, 1, 2, 2, 2]
    assert draws.bounds == [8] * 8


def test_a_slow_brokers_partitions_get_fewer_records_over_many_choices() -> None:
    acc = accumulator()
    queue(acc, 0, 1)
    queue(acc, 1, 1)
    queue(acc, 2, 9)  # its broker's requests are at their limit: batches pile up
    _, sticky = switch(acc, random.Random(7))
    counts = Counter(
        sticky.next_partition("t", THREE, sticky.partitions.get("t", -1)) for _ in range(3_000)
    )
    # Weights 9, 9, 1 of 19.
    assert counts[2] < 3_000 * 2 / 19
    assert min(counts[0], counts[1]) > 3_000 * 8 / 19


@pytest.mark.parametrize("adaptive", [True, False])
def test_equal_queues_or_adaptive_off_choose_uniformly_among_partitions_with_a_leader(
    adaptive: bool,
) -> None:
    acc = accumulator()
    queue(acc, 0, 0 if adaptive else 5)
    leaders = cluster({"t": [1, -1, 3, 2]})  # partition 1 has no leader
    draws = Draws(0, 1, 2, 2)
    _, sticky = switch(acc, draws, adaptive=adaptive)
    chosen = [sticky.next_partition("t", leaders, sticky.partitions.get("t", -1)) for _ in range(4)]
    assert chosen == [0, 2, 3, 3]  # the partition it leaves may come again, as in Java
    assert draws.bounds == [3] * 4


def test_without_any_leader_any_partition_will_do() -> None:
    _, sticky = switch(accumulator(), Draws(1))
    assert sticky.partition("t", cluster({"t": [-1, -1]})) == 1


# --------------------------------------------------------------------------- who is out


def test_a_broker_that_cannot_take_requests_beyond_the_timeout_is_left_out() -> None:
    availability = BrokerAvailability(100)
    for now in (0, 50, 150):
        availability.polled(1, now, took_request=True)
        availability.polled(3, now, took_request=now == 0)  # in flight at its limit since
    assert not availability.unavailable(1)
    assert availability.unavailable(3)  # 150 ms without taking a request
    assert not availability.unavailable(2)  # never polled: nothing says it is slow
    acc = accumulator()
    draws = Draws(0, 1)
    _, sticky = switch(acc, draws, availability=availability)
    assert [
        sticky.next_partition("t", THREE, sticky.partitions.get("t", -1)) for _ in range(2)
    ] == [0, 1]
    assert draws.bounds == [2, 2]  # partition 2 (broker 3) is out; 0 and 1 weigh the same
    availability.polled(3, 160, took_request=True)
    assert not availability.unavailable(3)


def test_the_sender_is_told_when_a_held_back_broker_runs_out_of_time() -> None:
    """A sender with nothing else to do sleeps: it must wake when a broker's timeout runs
    out, or the switches meanwhile read it as available (seen on CI, on uvloop)."""
    availability = BrokerAvailability(100)
    assert availability.ms_until_unavailable(3, 0) == math.inf  # never polled
    availability.polled(3, 0, took_request=True)
    availability.polled(3, 30, took_request=False)
    assert availability.ms_until_unavailable(3, 30) == 71  # out once past 100 ms, at 101
    availability.polled(3, 101, took_request=False)
    assert availability.unavailable(3)
    assert availability.ms_until_unavailable(3, 101) == math.inf  # out: nothing to wait for


def test_when_every_broker_is_out_the_choice_is_uniform_again() -> None:
    availability = BrokerAvailability(10)
    for node in (1, 2, 3):
        availability.polled(node, 0, took_request=True)
        availability.polled(node, 20, took_request=False)
    draws = Draws(2)
    _, sticky = switch(accumulator(), draws, availability=availability)
    assert sticky.partition("t", THREE) == 2
    assert draws.bounds == [3]


def test_a_single_partition_topic_needs_no_weights() -> None:
    acc = accumulator()
    _, sticky = switch(acc, Draws(0))
    one = cluster({"t": [1]})
    assert sticky.partition("t", one) == 0


def test_kip_480s_choice_stays_with_other_sticky_partitioners() -> None:
    """Without a switch (UniformStickyPartitioner, a custom one), the cache's own choice:
    never the partition it leaves."""
    sticky = StickyPartitionCache(rng=random.Random(3))
    first = sticky.partition("t", THREE)
    assert all(
        sticky.next_partition("t", THREE, p := sticky.partitions["t"]) != p for _ in range(50)
    )
    assert first in (0, 1, 2)


def test_the_weights_serve_a_millisecond() -> None:
    """Computed at most once a millisecond per topic (a pass over its partitions), as
    Java's serve until its sender's next turn."""
    acc = accumulator()
    queue(acc, 2, 3)  # weights 4, 4, 1 of 9
    now = [0.0]
    draws = Draws(8, 8, 1)
    sticky = StickyPartitionCache()
    StickySwitch(sticky, acc, batch_size=BATCH_SIZE, adaptive=True, rng=draws, clock=lambda: now[0])
    assert sticky.next_partition("t", THREE, -1) == 2
    queue(acc, 2, 0)  # drained: every queue as long, uniform from now on
    now[0] = 0.0009
    assert sticky.next_partition("t", THREE, 2) == 2  # the same weights: the draw 8 of 9
    now[0] = 0.0011
    assert sticky.next_partition("t", THREE, 2) == 1  # uniform: the draw 1 of 3
    assert draws.bounds == [9, 9, 3]


def test_the_weights_are_not_cached_across_snapshots() -> None:
    """A partition that loses its leader is not chosen on the next switch."""
    acc = accumulator()
    draws = Draws(0, 0)
    _, sticky = switch(acc, draws)
    assert sticky.partition("t", cluster({"t": [1, 2]})) == 0
    assert sticky.next_partition("t", cluster({"t": [-1, 2]}), 0) == 1


def test_an_availability_timeout_with_another_partitioner_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"partitioner_availability_timeout_ms=100: .* partitioner=RoundRobinPartitioner "
        r"replaces it",
    ):
        Producer(
            "localhost:9092",
            partitioner=RoundRobinPartitioner,
            partitioner_availability_timeout_ms=100,
        )
    Producer("localhost:9092", partitioner_availability_timeout_ms=100)  # the default: fine
