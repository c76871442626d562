"""Choosing a partition for a record that ``send()`` got without one.

The built-in partitioners follow the Java producer (``org.apache.kafka.clients.producer``):

* :class:`DefaultPartitioner`: a keyed record goes to ``murmur2(key) % partitions`` over
  *all* the topic's partitions, so a key keeps its partition while a leader is away;
  a keyless record goes to the topic's sticky partition (KIP-480).
* :class:`UniformStickyPartitioner`: every record goes to the sticky partition, keys ignored.
* :class:`RoundRobinPartitioner`: records take turns over the partitions that have a leader.

Sticky partitioning (KIP-480): keyless records for a topic stick to one partition until the
producer has to open a new batch for it; the producer then calls ``on_new_batch`` and asks
again, and a different available partition is chosen at random. Batches fill up, so fewer,
larger requests go out than with per-record random choice.

This runs for every record that has no explicit partition, so the common cases cost one or
two dict lookups; anything proportional to the number of partitions is done once per
metadata refresh (see :class:`_AvailablePartitions`).
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast

from asyncproducer._cluster import ClusterSnapshot, TopicInfo
from asyncproducer._native import speedups
from asyncproducer.errors import UnknownTopicOrPartitionError

__all__ = [
    "DefaultPartitioner",
    "Partitioner",
    "RoundRobinPartitioner",
    "StickyPartitionCache",
    "UniformStickyPartitioner",
    "murmur2",
    "partition_for_key",
    "resolve_partitioner",
    "to_positive",
]

# --------------------------------------------------------------------------- murmur2

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


# Reinterpreting the buffer as 32-bit words is the fastest way to read them in CPython (no
# per-word slice or tuple), but it reads native byte order: only valid on little-endian.
_NATIVE_WORDS = sys.byteorder == "little" and struct.calcsize("I") == 4


def _murmur2_u32(data: bytes) -> int:
    """Java's ``Utils.murmur2`` computed on unsigned 32-bit values (Python ints are unbounded,
    so every multiplication is masked back to 32 bits; ``>>`` on a non-negative value is
    Java's ``>>>``)."""
    m = _M
    mask = _MASK32
    length = len(data)
    h = _SEED ^ length
    end = length & ~3
    if end:
        view = memoryview(data)[:end]
        words: Iterable[int] = (
            view.cast("I") if _NATIVE_WORDS else (w for (w,) in struct.iter_unpack("<I", view))
        )
        for k in words:
            k = (k * m) & mask
            k ^= k >> 24
            h = ((h * m) & mask) ^ ((k * m) & mask)
    rest = length & 3
    if rest:
        # Java's switch falls through: 3 mixes in bytes 2, 1 and 0; 2 mixes 1 and 0.
        if rest == 3:
            h ^= data[end + 2] << 16
        if rest >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def murmur2(data: bytes) -> int:
    """The 32-bit MurmurHash2 of ``data``, bit for bit as Java's ``Utils.murmur2`` (seed
    ``0x9747b28c``), returned as a signed int32 like Java's ``int``."""
    h = _murmur2_u32(data)
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


def to_positive(n: int) -> int:
    """Java's ``Utils.toPositive``: clear the sign bit (not ``abs``, which overflows for
    ``Integer.MIN_VALUE`` in Java and would give other partitions than Java's)."""
    return n & 0x7FFF_FFFF


_C_MURMUR2 = speedups.murmur2 if speedups is not None else None
"""The C extension's murmur2, where it built: _murmur2_u32 for bytes, ~10 times faster."""


def partition_for_key(key_bytes: bytes, num_partitions: int) -> int:
    """The partition Java's producer picks for a serialized key among ``num_partitions``."""
    if _C_MURMUR2 is not None and type(key_bytes) is bytes:
        h: int = _C_MURMUR2(key_bytes)
    else:
        h = _murmur2_u32(key_bytes)
    # to_positive(murmur2(k)) == unsigned hash with the top bit cleared: skip the signed step.
    return (h & 0x7FFF_FFFF) % num_partitions


# --------------------------------------------------------------------------- protocol


class Partitioner(Protocol):
    """What a custom partitioner implements (Java's ``Partitioner``).

    Only :meth:`partition` is required. The producer also calls, when present:

    * ``on_new_batch(topic, cluster, prev_partition) -> None``: the record just placed on
      ``prev_partition`` needs a new batch there; ``partition()`` is then called again for
      the same record (Java's ``abortOnNewBatch`` flow). Sticky partitioners move on here.
    * ``configure(configs: Mapping[str, Any]) -> None`` once, with the producer's config.
    * ``close() -> None`` when the producer closes.

    ``partition`` runs in the event loop for every record without an explicit partition:
    it must not block, and should not allocate or scan more than it has to.
    """

    def partition(
        self,
        topic: str,
        key: object,
        key_bytes: bytes | None,
        value: object,
        value_bytes: bytes | None,
        cluster: ClusterSnapshot,
    ) -> int: ...


def _topic_info(topic: str, cluster: ClusterSnapshot) -> TopicInfo:
    info = cluster.topics.get(topic)
    if info is None or not info.partitions:
        # The producer waits for a topic's metadata before partitioning; reaching this means
        # the snapshot lost the topic (deleted, or not authorized). Retriable after a refresh.
        raise UnknownTopicOrPartitionError(
            f"no partitions known for topic {topic!r}; refresh metadata and retry"
        )
    return info


# --------------------------------------------------------------------------- sticky


class StickyPartitionCache:
    """KIP-480: keyless records stick to one partition until the producer starts a new batch
    for it; then a different available partition is chosen at random.

    Java's ``StickyPartitionCache``, minus its concurrency: the producer calls it from one
    event loop. ``rng`` is for tests; by default a private ``random.Random``.
    """

    __slots__ = ("_rng", "_sticky", "chooser", "current")

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._sticky: dict[str, int] = {}
        self._rng = rng if rng is not None else random.Random()
        self.current: Callable[[str], int | None] = self._sticky.get
        """The topic's sticky partition, None before the first choice (a C-level lookup,
        for the producer's hot path)."""
        self.chooser: Callable[[str, TopicInfo, int | None], int] = self._choose
        """``chooser(topic, info, old)``: the topic's next sticky partition (``old`` the
        one it leaves, None for the first). KIP-480's, uniform and never ``old``; the
        producer's default partitioner puts Java's built-in one here (``_sticky_switch``)."""

    @property
    def rng(self) -> random.Random:
        """Where its random choices come from (``rng=``, for tests; the producer's
        default partitioner draws from it too)."""
        return self._rng

    @property
    def partitions(self) -> dict[str, int]:
        """The sticky partition of each topic that has one. Read it only: the producer's
        C appender reads it per record (see ``_staging``)."""
        return self._sticky

    def partition(self, topic: str, cluster: ClusterSnapshot) -> int:
        """The topic's sticky partition, choosing one on first use."""
        sticky = self._sticky.get(topic)
        if sticky is None:
            return self.next_partition(topic, cluster, -1)
        return sticky

    def next_partition(self, topic: str, cluster: ClusterSnapshot, prev_partition: int) -> int:
        """Move the topic's sticky partition away from ``prev_partition`` and return the new one.

        Only moves when ``prev_partition`` is still the sticky partition (or none is set):
        a stale call for a partition the topic already left must not move it again, as in
        Java, where this check is a compare-and-set between threads.
        """
        old = self._sticky.get(topic)
        if old is not None and old != prev_partition:
            return old
        new = self.chooser(topic, _topic_info(topic, cluster), old)
        self._sticky[topic] = new
        return new

    def _choose(self, topic: str, info: TopicInfo, old: int | None) -> int:
        available = info.available_partition_ids
        count = len(available)
        if count == 0:
            # No leader anywhere right now: pick any partition; the record waits in the
            # accumulator until a leader appears (or delivery_timeout_ms runs out), as in Java.
            return self._rng.randrange(len(info.partitions))
        if count == 1:
            return available[0]
        index = self._rng.randrange(count)
        if available[index] == old:
            # Java redraws until it differs; drawing uniformly among the other count - 1
            # positions gives the same distribution in at most two draws.
            index = (index + 1 + self._rng.randrange(count - 1)) % count
        return available[index]


# --------------------------------------------------------------------------- built-ins


class DefaultPartitioner:
    """Keyed records: ``murmur2(key_bytes)`` over all partitions, as Java (so keys map to
    the same partitions in every Kafka client that follows Java). Keyless records: sticky.

    As the producer's partitioner (``partitioner=None``, or this class exactly), its
    sticky partitions move as Java's built-in partitioner's (KIP-794: after
    ``batch_size`` bytes, weighted by queue length; see ``_sticky_switch`` and
    docs/concepts/partitioners.md). Used on its own, ``on_new_batch`` moves them as
    KIP-480 did: at every new batch.
    """

    __slots__ = ("_sticky",)

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._sticky = StickyPartitionCache(rng=rng)

    @property
    def sticky(self) -> StickyPartitionCache:
        """The keyless records' sticky partitions."""
        return self._sticky

    def partition(
        self,
        topic: str,
        key: object,
        key_bytes: bytes | None,
        value: object,
        value_bytes: bytes | None,
        cluster: ClusterSnapshot,
    ) -> int:
        if key_bytes is None:
            return self._sticky.partition(topic, cluster)
        # All partitions, not only those with a leader: a key must not change partition
        # while a leader is briefly unavailable (ordering per key).
        return partition_for_key(key_bytes, len(_topic_info(topic, cluster).partitions))

    def on_new_batch(self, topic: str, cluster: ClusterSnapshot, prev_partition: int) -> None:
        self._sticky.next_partition(topic, cluster, prev_partition)

    def configure(self, configs: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class UniformStickyPartitioner(DefaultPartitioner):
    """Every record goes to the topic's sticky partition, which moves to a uniformly
    chosen other partition at every new batch (KIP-480); keys are ignored. Java's
    deprecated ``UniformStickyPartitioner``; the default partitioner with
    ``partitioner_ignore_keys=True`` is Java's ``partitioner.ignore.keys=true``
    (adaptive, KIP-794)."""

    __slots__ = ()

    def partition(
        self,
        topic: str,
        key: object,
        key_bytes: bytes | None,
        value: object,
        value_bytes: bytes | None,
        cluster: ClusterSnapshot,
    ) -> int:
        return self._sticky.partition(topic, cluster)


class RoundRobinPartitioner:
    """Records take turns over the topic's partitions that have a leader (over all of them
    while none has), one counter per topic, keys ignored: Java's ``RoundRobinPartitioner``.

    ``on_new_batch`` makes the next ``partition()`` call for the topic return the same
    partition again: the producer asks twice for a record that opened a new batch, and
    counting both calls would skip every other partition (KAFKA-9965, fixed in Java by
    KAFKA-17632 the same way).
    """

    __slots__ = ("_counters", "_repeat")

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._repeat: dict[str, int] = {}

    def partition(
        self,
        topic: str,
        key: object,
        key_bytes: bytes | None,
        value: object,
        value_bytes: bytes | None,
        cluster: ClusterSnapshot,
    ) -> int:
        if self._repeat:  # almost always empty: one truth test, no lookup
            repeat = self._repeat.pop(topic, None)
            if repeat is not None:
                return repeat
        info = _topic_info(topic, cluster)
        turn = self._counters.get(topic, 0)
        self._counters[topic] = turn + 1
        available = info.available_partition_ids
        if available:
            return available[turn % len(available)]
        return turn % len(info.partitions)

    def on_new_batch(self, topic: str, cluster: ClusterSnapshot, prev_partition: int) -> None:
        self._repeat[topic] = prev_partition

    def configure(self, configs: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- resolution

_TEXT = (str, bytes, bytearray)
_ALLOWED = (
    "None (DefaultPartitioner), a partitioner class to instantiate (DefaultPartitioner, "
    "UniformStickyPartitioner, RoundRobinPartitioner or your own), or an instance with a "
    "partition(topic, key, key_bytes, value, value_bytes, cluster) method"
)


def _has_partition_method(obj: object) -> bool:
    # str, bytes and bytearray have a partition() method of their own (str.partition).
    if isinstance(obj, _TEXT) or (isinstance(obj, type) and issubclass(obj, _TEXT)):
        return False
    return callable(getattr(obj, "partition", None))


def resolve_partitioner(spec: object) -> Partitioner:
    """The partitioner for the ``partitioner`` setting: ``None`` gives a
    :class:`DefaultPartitioner`; a class is instantiated without arguments (Java's
    ``partitioner.class``); an instance is used as is."""
    if spec is None:
        return DefaultPartitioner()
    if isinstance(spec, type):
        if not _has_partition_method(spec):
            raise TypeError(
                f"partitioner class {spec.__qualname__} has no partition() method; "
                f"expected {_ALLOWED}"
            )
        instance: object = spec()
        return cast(Partitioner, instance)
    if _has_partition_method(spec):
        return cast(Partitioner, spec)
    raise TypeError(f"partitioner must be {_ALLOWED}; got {spec!r} ({type(spec).__qualname__})")
