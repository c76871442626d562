from __future__ import annotations

import random
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncproducer import partitioners
from asyncproducer._cluster import ClusterSnapshot, PartitionMetadata, TopicInfo
from asyncproducer.errors import UnknownTopicOrPartitionError
from asyncproducer.partitioners import (
    DefaultPartitioner,
    RoundRobinPartitioner,
    StickyPartitionCache,
    UniformStickyPartitioner,
    murmur2,
    partition_for_key,
    resolve_partitioner,
    to_positive,
)

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources.read_text, deprecated on
    # Python 3.11; the suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2


def cluster(leaders: Mapping[str, Sequence[int]]) -> ClusterSnapshot:
    """A snapshot whose topic ``t`` has ``len(leaders[t])`` partitions, partition ``i`` led by
    ``leaders[t][i]`` (-1: no leader)."""
    topics = {
        name: TopicInfo(
            name,
            tuple(
                PartitionMetadata(name, i, leader, 0, (max(leader, 0),), (max(leader, 0),))
                for i, leader in enumerate(ids)
            ),
        )
        for name, ids in leaders.items()
    }
    return ClusterSnapshot(topics=topics)


def with_leaders(snapshot: ClusterSnapshot, topic: str, leaders: Sequence[int]) -> ClusterSnapshot:
    """``snapshot`` after a metadata refresh that changed ``topic``'s leaders."""
    return snapshot.merged_with(cluster({topic: leaders}), [topic])


# --------------------------------------------------------------------------- murmur2

# Java's expected values, from apache/kafka
# clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), JAVA_MURMUR2)
def test_murmur2_matches_java(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@given(st.binary(max_size=300))
def test_murmur2_agrees_with_kafka_python(data: bytes) -> None:
    ours = murmur2(data)
    assert -(2**31) <= ours < 2**31
    # kafka-python returns the same 32 bits as an unsigned int.
    assert ours & 0xFFFFFFFF == kafka_python_murmur2(data)


@given(st.binary(max_size=64), st.integers(1, 10_000))
def test_partition_for_key_is_java_formula(data: bytes, partitions: int) -> None:
    """For bytes the C extension's murmur2 (where it built), for any other buffer the
    Python one: both Java's partition."""
    expected = to_positive(murmur2(data)) % partitions
    assert partition_for_key(data, partitions) == expected
    assert partition_for_key(bytearray(data), partitions) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "expected"), JAVA_MURMUR2)
def test_murmur2_portable_word_reader(
    monkeypatch: pytest.MonkeyPatch, data: bytes, expected: int
) -> None:
    # The struct-based reader used on big-endian machines must agree with the fast one.
    monkeypatch.setattr(partitioners, "_NATIVE_WORDS", False)
    assert murmur2(data) == expected


def test_murmur2_edges() -> None:
    assert murmur2(b"") & 0xFFFFFFFF == kafka_python_murmur2(b"")
    # Every tail length 0..3 after whole words, and bytes with the high bit set (Java's
    # signed bytes are masked with 0xff).
    for n in range(9):
        data = bytes(range(0xF8, 0xF8 + n))
        assert murmur2(data) & 0xFFFFFFFF == kafka_python_murmur2(data)
    assert murmur2(bytearray(b"foobar")) == -790332482  # type: ignore[arg-type]
    assert murmur2(memoryview(b"foobar")) == -790332482  # type: ignore[arg-type]


def test_to_positive() -> None:
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-(2**31)) == 0
    assert to_positive(5) == 5
    assert to_positive(-973932308) == -973932308 & 0x7FFFFFFF


# --------------------------------------------------------------------------- sticky


def test_sticky_partition_stays_until_next_partition() -> None:
    snapshot = cluster({"t": [1, 2, 3, 1, 2, 3]})
    cache = StickyPartitionCache(rng=random.Random(1))
    first = cache.partition("t", snapshot)
    assert all(cache.partition("t", snapshot) == first for _ in range(100))
    moved = cache.next_partition("t", snapshot, first)
    assert moved != first
    assert cache.partition("t", snapshot) == moved


def test_next_partition_always_differs_when_several_are_available() -> None:
    snapshot = cluster({"t": [1, 1]})
    cache = StickyPartitionCache(rng=random.Random(7))
    current = cache.partition("t", snapshot)
    for _ in range(50):
        new = cache.next_partition("t", snapshot, current)
        assert new != current
        current = new


def test_next_partition_is_uniform_over_the_other_available_partitions() -> None:
    snapshot = cluster({"t": [1, 1, 1, 1]})
    cache = StickyPartitionCache(rng=random.Random(3))
    seen: Counter[int] = Counter()
    for _ in range(4000):
        cache._sticky["t"] = 0  # force the same starting point each time
        seen[cache.next_partition("t", snapshot, 0)] += 1
    assert set(seen) == {1, 2, 3}
    assert all(900 < count < 1770 for count in seen.values()), seen


def test_stale_next_partition_does_not_move_it_again() -> None:
    snapshot = cluster({"t": [1, 1, 1]})
    cache = StickyPartitionCache(rng=random.Random(2))
    first = cache.partition("t", snapshot)
    second = cache.next_partition("t", snapshot, first)
    # A second new-batch signal for the partition the topic already left: no move (Java's
    # compare-and-set).
    assert cache.next_partition("t", snapshot, first) == second
    assert cache.partition("t", snapshot) == second


def test_sticky_picks_only_partitions_with_a_leader() -> None:
    snapshot = cluster({"t": [-1, 1, -1, 2, -1]})
    cache = StickyPartitionCache(rng=random.Random(5))
    current = cache.partition("t", snapshot)
    chosen = {current}
    for _ in range(50):
        current = cache.next_partition("t", snapshot, current)
        chosen.add(current)
    assert chosen == {1, 3}


def test_sticky_with_one_available_partition_keeps_it() -> None:
    snapshot = cluster({"t": [-1, -1, 4]})
    cache = StickyPartitionCache()
    assert cache.partition("t", snapshot) == 2
    assert cache.next_partition("t", snapshot, 2) == 2


def test_sticky_single_partition_topic() -> None:
    snapshot = cluster({"t": [1]})
    cache = StickyPartitionCache()
    assert cache.partition("t", snapshot) == 0
    assert cache.next_partition("t", snapshot, 0) == 0


def test_sticky_without_any_leader_picks_among_all_partitions() -> None:
    snapshot = cluster({"t": [-1, -1, -1]})
    cache = StickyPartitionCache(rng=random.Random(9))
    current = cache.partition("t", snapshot)
    chosen = {current}
    for _ in range(60):
        current = cache.next_partition("t", snapshot, current)
        chosen.add(current)
    assert chosen == {0, 1, 2}


def test_sticky_follows_leader_changes_after_a_refresh() -> None:
    snapshot = cluster({"t": [1, 1, 1, 1]})
    cache = StickyPartitionCache(rng=random.Random(4))
    current = cache.partition("t", snapshot)
    refreshed = with_leaders(snapshot, "t", [-1, -1, 1, -1])
    assert cache.next_partition("t", refreshed, current) == 2


def test_sticky_topics_are_independent() -> None:
    snapshot = cluster({"a": [1] * 8, "b": [1] * 8})
    cache = StickyPartitionCache(rng=random.Random(8))
    a = cache.partition("a", snapshot)
    b = cache.partition("b", snapshot)
    cache.next_partition("a", snapshot, a)
    assert cache.partition("b", snapshot) == b


def test_unknown_topic_raises_a_retriable_metadata_error() -> None:
    snapshot = cluster({"t": [1]})
    with pytest.raises(UnknownTopicOrPartitionError, match="'missing'") as info:
        StickyPartitionCache().partition("missing", snapshot)
    assert info.value.retriable
    with pytest.raises(UnknownTopicOrPartitionError):
        DefaultPartitioner().partition("missing", None, b"k", None, b"v", snapshot)
    with pytest.raises(UnknownTopicOrPartitionError):
        RoundRobinPartitioner().partition("missing", None, None, None, b"v", snapshot)


# --------------------------------------------------------------------------- default


def test_default_partitioner_hashes_keys_over_all_partitions() -> None:
    # Partitions without a leader still count: a key's partition must not move.
    snapshot = cluster({"t": [1, -1, 2, -1, 3, -1, 1]})
    partitioner = DefaultPartitioner()
    for key in (b"21", b"foobar", b"customer-42", b""):
        expected = to_positive(murmur2(key)) % 7
        assert partitioner.partition("t", object(), key, None, b"v", snapshot) == expected


def test_default_partitioner_keys_ignore_new_batches() -> None:
    snapshot = cluster({"t": [1] * 5})
    partitioner = DefaultPartitioner(rng=random.Random(0))
    keyed = partitioner.partition("t", "k", b"k", None, None, snapshot)
    partitioner.on_new_batch("t", snapshot, keyed)
    assert partitioner.partition("t", "k", b"k", None, None, snapshot) == keyed


def test_default_partitioner_keyless_is_sticky_until_on_new_batch() -> None:
    snapshot = cluster({"t": [1] * 5})
    partitioner = DefaultPartitioner(rng=random.Random(0))
    first = partitioner.partition("t", None, None, "v", b"v", snapshot)
    assert partitioner.partition("t", None, None, "v", b"v", snapshot) == first
    partitioner.on_new_batch("t", snapshot, first)
    second = partitioner.partition("t", None, None, "v", b"v", snapshot)
    assert second != first
    assert partitioner.partition("t", None, None, "v", b"v", snapshot) == second


def test_uniform_sticky_ignores_keys() -> None:
    snapshot = cluster({"t": [1] * 10})
    partitioner = UniformStickyPartitioner(rng=random.Random(0))
    first = partitioner.partition("t", "a", b"a", None, None, snapshot)
    assert {partitioner.partition("t", k, k.encode(), None, None, snapshot) for k in "bcdefg"} == {
        first
    }
    partitioner.on_new_batch("t", snapshot, first)
    assert partitioner.partition("t", "a", b"a", None, None, snapshot) != first


# --------------------------------------------------------------------------- round robin


def test_round_robin_cycles_over_available_partitions() -> None:
    snapshot = cluster({"t": [1, -1, 2, 3, -1]})
    partitioner = RoundRobinPartitioner()
    got = [partitioner.partition("t", b"same", b"same", None, None, snapshot) for _ in range(7)]
    assert got == [0, 2, 3, 0, 2, 3, 0]


def test_round_robin_uses_all_partitions_when_none_available() -> None:
    snapshot = cluster({"t": [-1, -1, -1]})
    partitioner = RoundRobinPartitioner()
    assert [partitioner.partition("t", None, None, None, None, snapshot) for _ in range(4)] == [
        0,
        1,
        2,
        0,
    ]


def test_round_robin_counters_are_per_topic() -> None:
    snapshot = cluster({"a": [1, 1, 1], "b": [1, 1, 1]})
    partitioner = RoundRobinPartitioner()
    calls = [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("b", 1)]
    for topic, expected in calls:
        assert partitioner.partition(topic, None, None, None, None, snapshot) == expected


def test_round_robin_repeats_the_partition_after_on_new_batch() -> None:
    snapshot = cluster({"t": [1, 1, 1, 1]})
    partitioner = RoundRobinPartitioner()
    got = []
    for _ in range(8):
        partition = partitioner.partition("t", None, None, None, None, snapshot)
        # The producer opens a new batch for every record here: on_new_batch, then ask again.
        partitioner.on_new_batch("t", snapshot, partition)
        got.append(partitioner.partition("t", None, None, None, None, snapshot))
    assert got == [0, 1, 2, 3, 0, 1, 2, 3]  # no partition skipped (KAFKA-9965)


def test_round_robin_follows_a_refresh() -> None:
    snapshot = cluster({"t": [1, 1, 1]})
    partitioner = RoundRobinPartitioner()
    assert partitioner.partition("t", None, None, None, None, snapshot) == 0
    refreshed = with_leaders(snapshot, "t", [1, -1, 1])
    assert [partitioner.partition("t", None, None, None, None, refreshed) for _ in range(3)] == [
        2,
        0,
        2,
    ]


# --------------------------------------------------------------------------- resolution


class ConstantPartitioner:
    def partition(
        self,
        topic: str,
        key: object,
        key_bytes: bytes | None,
        value: object,
        value_bytes: bytes | None,
        cluster: ClusterSnapshot,
    ) -> int:
        return 0


def test_resolve_none_gives_a_fresh_default_partitioner() -> None:
    first = resolve_partitioner(None)
    assert isinstance(first, DefaultPartitioner)
    assert resolve_partitioner(None) is not first


def test_resolve_instantiates_a_class() -> None:
    assert isinstance(resolve_partitioner(RoundRobinPartitioner), RoundRobinPartitioner)
    assert isinstance(resolve_partitioner(ConstantPartitioner), ConstantPartitioner)


def test_resolve_keeps_an_instance() -> None:
    custom = ConstantPartitioner()
    assert resolve_partitioner(custom) is custom
    sticky = UniformStickyPartitioner()
    assert resolve_partitioner(sticky) is sticky


@pytest.mark.parametrize("spec", ["default", b"x", str, 3, object(), lambda *args: 0, int])
def test_resolve_rejects_anything_else(spec: object) -> None:
    with pytest.raises(TypeError, match=r"partition\(topic, key, key_bytes"):
        resolve_partitioner(spec)
