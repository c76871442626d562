"""When and where the default partitioner moves a topic's keyless records: Java's built-in
partitioner (KIP-794, Java 3.3 and later).

Keyless records of a topic all go to its *sticky* partition (``partitioners``), so they
fill batches one partition at a time. Three rules decide the switch to another:

1. **When.** At the first new batch after ``batch_size`` bytes went to the sticky
   partition (a full batch counts as ``batch_size``: it took as much as fits). KIP-480
   moved on at every new batch instead: a partition whose batches leave before they
   fill (a fast broker, with ``linger_ms``) was left sooner, so the slowest broker got
   the most records. Counting bytes gives every partition the same share; moving only
   at a new batch leaves no fractional batch behind (with 12 KiB sent per ``linger_ms``
   and a 16 KiB ``batch_size``, batches of 12 KiB, not 12 and 4).
2. **Where**, with ``partitioner_adaptive_partitioning_enable`` (the default): a random
   partition with a leader, weighted by how short its queue is. A partition whose queue
   holds ``q`` batches waiting to be sent weighs ``max(q) + 1 - q``: the queue of a slow
   broker's partitions grows (its requests in flight are at their limit), so it gets
   fewer new records. Uniform when every queue is as long, or with adaptive partitioning
   off.
3. **Who is out**, with ``partitioner_availability_timeout_ms`` > 0: a partition whose
   leader has had batches ready to send but could not take a request (its requests in
   flight at ``max_in_flight_requests_per_connection``, or throttled) for longer than
   that gets no new records, unless no partition is left.

Decided only when a keyless record needs a new batch on its sticky partition (the C
appender's shortcut fills the open batch without asking). Java decides after every
append, but only switches there at a batch boundary too, or once ``2 * batch_size``
went there whatever the batches; deciding at the boundary, this needs neither rule.
The bytes counted are the partition's batches' (``RecordAccumulator.appended_bytes``),
keyed and explicitly partitioned records included (Java counts the keyless ones only);
the queue of a partition is its batches in the accumulator, as Java's. Java computes
the weights on each of its sender's turns; this computes them when it switches, from
the queues as they are then, at most once a millisecond per topic.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._cluster import ClusterSnapshot, TopicInfo
from asyncproducer.partitioners import StickyPartitionCache

__all__ = ["BrokerAvailability", "StickySwitch"]


class BrokerAvailability:
    """Which brokers could not take a request for longer than ``timeout_ms`` while they
    had batches ready (Java's ``NodeLatencyStats``), as the sender reports each turn."""

    __slots__ = ("_drained_ms", "_ready_ms", "timeout_ms")

    def __init__(self, timeout_ms: float) -> None:
        self.timeout_ms = timeout_ms
        self._ready_ms: dict[int, float] = {}
        """Per broker, when it last had a batch ready to send."""
        self._drained_ms: dict[int, float] = {}
        """Per broker, when it last took a request (or had its first batch ready)."""

    def polled(self, node: int, now_ms: float, *, took_request: bool) -> None:
        """``node`` had batches ready at ``now_ms``; ``took_request``: a request to it could
        be drained (else its requests in flight, or a throttle, held it back)."""
        if took_request or node not in self._drained_ms:
            self._drained_ms[node] = now_ms
        self._ready_ms[node] = now_ms

    def unavailable(self, node: int) -> bool:
        drained = self._drained_ms.get(node)
        return drained is not None and self._ready_ms[node] - drained > self.timeout_ms

    def ms_until_unavailable(self, node: int, now_ms: float) -> float:
        """How long after ``now_ms`` a poll of ``node`` (still held back) would find it
        unavailable; infinity if it already is. The sender wakes then: a sender asleep
        (nothing else to do) would otherwise leave the keyless records' next switches
        reading a broker as available well past its timeout."""
        drained = self._drained_ms.get(node)
        if drained is None or self.unavailable(node):
            return math.inf
        return max(drained + self.timeout_ms + 1 - now_ms, 0)


class StickySwitch:
    """The default partitioner's switch (module docstring): moves ``sticky``, the
    :class:`~asyncproducer.partitioners.StickyPartitionCache` whose partitions the C
    appender reads, and makes its choices from now on (first ones included)."""

    __slots__ = (
        "_accumulator",
        "_availability",
        "_batch_size",
        "_clock",
        "_from_bytes",
        "_keys",
        "_loads",
        "_rng",
        "_sticky",
    )

    def __init__(
        self,
        sticky: StickyPartitionCache,
        accumulator: RecordAccumulator,
        *,
        batch_size: int,
        adaptive: bool,
        availability: BrokerAvailability | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sticky = sticky
        self._clock = clock
        self._loads: dict[str, _Load] = {}
        """Per topic, the weights its last choices drew from (``_LOAD_SERVES_S``)."""
        self._keys: dict[str, tuple[TopicInfo, list[tuple[str, int]]]] = {}
        """Per topic, the accumulator's keys of its partitions (``_queue_keys``)."""
        self._accumulator = accumulator
        self._batch_size = max(batch_size, 1)
        self._availability = availability
        self._rng = rng if rng is not None else sticky.rng
        self._from_bytes: dict[str, int] = {}
        """Per topic, its sticky partition's ``appended_bytes`` when it was chosen."""
        chooser: Callable[[str, TopicInfo, int | None], int] = (
            self._choose_by_load if adaptive else self._choose_uniformly
        )
        sticky.chooser = chooser

    def partition_for_new_batch(self, topic: str, partition: int, cluster: ClusterSnapshot) -> int:
        """The partition for a keyless record whose sticky ``partition`` has no batch with
        room: the next sticky partition if ``batch_size`` bytes went to this one (rule
        1), else the same (the record opens a new batch there)."""
        if self._sticky.partitions.get(topic) != partition:
            return self._sticky.partition(topic, cluster)  # moved on meanwhile: follow it
        produced = self._accumulator.appended_bytes(topic, partition) - self._from_bytes.get(
            topic, 0
        )
        if produced >= self._batch_size:
            return self._sticky.next_partition(topic, cluster, partition)
        return partition

    # ------------------------------------------------------------------ choosing

    def _chosen(self, topic: str, partition: int) -> int:
        self._from_bytes[topic] = self._accumulator.appended_bytes(topic, partition)
        return partition

    def _choose_uniformly(self, topic: str, info: TopicInfo, old: int | None) -> int:
        """Java's built-in partitioner without load statistics: any partition with a
        leader (any partition while none has one), the one it leaves included."""
        available = info.available_partition_ids
        pool = available if available else range(len(info.partitions))
        return self._chosen(topic, pool[self._rng.randrange(len(pool))])

    def _choose_by_load(self, topic: str, info: TopicInfo, old: int | None) -> int:
        """Rules 2 and 3: weighted by queue length among the available partitions whose
        broker is not out; uniformly when that gives every one the same weight."""
        now = self._clock()
        load = self._loads.get(topic)
        if load is None or load.info is not info or now >= load.until:
            load = self._loads[topic] = self._load(topic, info, now + _LOAD_SERVES_S)
        if load.candidates is None:
            return self._choose_uniformly(topic, info, old)
        draw = self._rng.randrange(load.cumulative[-1])
        return self._chosen(topic, load.candidates[bisect.bisect_right(load.cumulative, draw)])

    def _load(self, topic: str, info: TopicInfo, until: float) -> _Load:
        """The topic's partitions to draw from and their cumulative weights: a draw in
        [0, total) lands on candidate i with probability weight(i) / total, weight(i) =
        longest queue + 1 - its queue (Java's example: queues 0, 3, 1 weigh 4, 1, 3)."""
        candidates: Sequence[int] = info.available_partition_ids
        keys = self._queue_keys(topic, info)
        availability = self._availability
        if availability is not None:
            partitions = info.partitions
            kept = [not availability.unavailable(partitions[p].leader) for p in candidates]
            if not all(kept):
                candidates = list(itertools.compress(candidates, kept))
                keys = list(itertools.compress(keys, kept))
        excluded = len(candidates) < len(info.available_partition_ids)
        # At most once a millisecond per topic; but with many topics each switch may be
        # the first in its millisecond: the keys are made once, not per pass.
        queue = self._accumulator.queues.get
        lengths = [len(queue(key, ())) for key in keys]
        longest = max(lengths, default=0)
        if not candidates or len(info.partitions) < 2 or (not excluded and min(lengths) == longest):
            return _Load(info, until, None, [])
        cumulative = list(itertools.accumulate(longest + 1 - length for length in lengths))
        return _Load(info, until, list(candidates), cumulative)

    def _queue_keys(self, topic: str, info: TopicInfo) -> list[tuple[str, int]]:
        """The accumulator's keys of the topic's partitions with a leader (made once per
        metadata snapshot of the topic)."""
        cached = self._keys.get(topic)
        if cached is None or cached[0] is not info:
            cached = self._keys[topic] = (info, [(topic, p) for p in info.available_partition_ids])
        return cached[1]


_LOAD_SERVES_S = 0.001
"""How long a topic's weights serve before they are computed again (Java's serve until
its sender's next turn): with a switch at every batch, a topic of 1,000 partitions would
otherwise pay a pass over them all per batch (~0.3 ms)."""


class _Load(NamedTuple):
    info: TopicInfo
    """The metadata they were computed from: a refresh (a leader moved) computes anew."""
    until: float
    """Until when they serve (the clock's seconds)."""
    candidates: list[int] | None
    """The partitions to draw from; None: uniformly among those with a leader."""
    cumulative: list[int]
