"""The C appender (``asyncproducer._speedups.Appender``): ``send()``'s shortcut for a
record that needs no Python code. It appends where ``RecordStager.stage`` and the
accumulator would, or declines (None) having changed nothing: every case it declines is
here, with the state compared before and after.

tests/fake/test_fast_path.py runs it inside a producer; this file drives it directly,
with a stand-in for the metadata manager (its snapshot and the partition counts it keeps
current) and real ``ProducerBatch`` queues.
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import random
import sys
import time
from collections import deque
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncproducer import _staging
from asyncproducer._batch import ProducerBatch, _fill_sinks
from asyncproducer._cluster import ClusterSnapshot, PartitionMetadata, TopicInfo
from asyncproducer._metadata import MetadataManager
from asyncproducer._native import speedups
from asyncproducer._send_path import SendPath
from asyncproducer._staging import _BARE_BATCH_BOUND, RecordStager
from asyncproducer._types import ProducerRecord, RecordMetadata
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import InvalidTopicError
from asyncproducer.partitioners import DefaultPartitioner, partition_for_key
from asyncproducer.protocol import batch_records
from asyncproducer.protocol.batch_records import PyBatchRecords
from asyncproducer.protocol.records import decode_batches

if _staging.Appender is None:
    pytest.skip(
        "no C appender: asyncproducer._speedups did not build (or ASYNCPRODUCER_NO_SPEEDUPS=1)",
        allow_module_level=True,
    )
Appender: Any = _staging.Appender
fill_sinks: Any = speedups.fill_sinks  # type: ignore[union-attr]
CBatchRecords: Any = batch_records.BatchRecords  # the C one, which ProducerBatch subclasses

Queues = dict[tuple[str, int], deque[ProducerBatch]]


def topic_info(name: str, partitions: int, error_code: int = 0) -> TopicInfo:
    return TopicInfo(
        name,
        tuple(PartitionMetadata(name, i, 1, 0, (1,), (1,)) for i in range(partitions)),
        error_code=error_code,
    )


def cluster(**partitions: int) -> ClusterSnapshot:
    """A snapshot of topics with these partition counts."""
    return ClusterSnapshot(topics={name: topic_info(name, n) for name, n in partitions.items()})


class Metadata(MetadataManager):
    """What the stager reads of the MetadataManager: its snapshot, and the partition
    counts it keeps current (the appender's input), with the manager's own setter; no
    connection pool, no refreshes."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:  # not the manager's: no I/O
        self.partition_counts: dict[str, int] = {}
        self.snapshot = snapshot


class Future:
    """A stand-in for a record's future."""


class Setup:
    """Topic ``t`` of 4 partitions, sticky partition 1, an open batch in each partition."""

    def __init__(
        self,
        *,
        partitions: int = 4,
        batch_size: int = 16_384,
        size_limit: int = 1 << 20,
        hash_keys: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metadata = Metadata(cluster(t=partitions))
        self.sticky: dict[str, int] = {"t": 1}
        self.queues: Queues = {
            ("t", p): deque([ProducerBatch("t", p, 0, 0.0, batch_size=batch_size)])
            for p in range(partitions)
        }
        self.appender = Appender(
            **_arguments(
                partition_counts=self.metadata.partition_counts,
                sticky=self.sticky,
                queues=self.queues,
                clock=clock,
                size_limit=size_limit,
                hash_keys=hash_keys,
            )
        )

    def append(self, **fields: Any) -> Any:
        record: dict[str, Any] = {
            "topic": "t",
            "value": b"v",
            "key": None,
            "partition": None,
            "timestamp_ms": 1000,
            "headers": None,
            "future": Future(),
        }
        record.update(fields)
        return self.appender.append(*record.values())

    def batch(self, partition: int) -> ProducerBatch:
        return self.queues["t", partition][-1]

    def state(self) -> Any:
        """Everything the appender could change."""
        return (
            dict(self.sticky),
            {where: [id(b) for b in queue] for where, queue in self.queues.items()},
            [
                (
                    b.record_count,
                    b.records_size,
                    b.record_capacity,
                    b.full,
                    b.base_timestamp,
                    b.max_timestamp,
                    [id(f) for f in b.futures],
                    getattr(b, "reserved", None),
                )
                for queue in self.queues.values()
                for b in queue
            ],
        )


def stager(metadata: Metadata, **config: Any) -> RecordStager:
    """The Python path the appender must agree with."""
    return RecordStager(
        ProducerConfig.from_kwargs("localhost:9092", **config), cast(MetadataManager, metadata)
    )


# ----------------------------------------------------------------------- appends


@pytest.mark.parametrize("headers", [None, (), []])
def test_a_keyless_record_goes_to_the_sticky_partition(headers: Any) -> None:
    setup = Setup()
    future = Future()
    batch = setup.append(value=b"hello", headers=headers, future=future, timestamp_ms=1234)
    assert batch is setup.batch(1)
    assert batch.record_count == 1
    assert batch.futures == [future]
    assert (batch.base_timestamp, batch.max_timestamp) == (1234, 1234)
    assert all(setup.batch(p).record_count == 0 for p in (0, 2, 3))
    assert setup.sticky == {"t": 1}
    second = setup.append(value=None, future=None, timestamp_ms=1200)
    assert second is batch
    assert batch.futures == [future, None]
    assert (batch.base_timestamp, batch.max_timestamp) == (1234, 1234)
    assert batch.close() == _python_batch(1, [(1234, None, b"hello"), (1200, None, None)])


def _python_batch(partition: int, records: list[tuple[int, bytes | None, bytes | None]]) -> bytes:
    """The same records appended by the Python path's ProducerBatch.try_append."""
    batch = ProducerBatch("t", partition, 0, 0.0, batch_size=16_384)
    for timestamp, key, value in records:
        assert batch.try_append(None, (timestamp, key, value, ()))
    return batch.close()


@given(st.binary(max_size=64), st.integers(1, 64))
@settings(max_examples=150, deadline=None)
def test_a_keyed_record_goes_to_its_keys_partition(key: bytes, partitions: int) -> None:
    """murmur2 of the key, as Java, DefaultPartitioner and RecordStager.stage choose."""
    setup = Setup(partitions=partitions)
    batch = setup.append(key=key)
    expected = partition_for_key(key, partitions)
    assert batch is setup.batch(expected)
    assert batch.record_count == 1
    chosen = DefaultPartitioner().partition("t", key, key, b"v", b"v", setup.metadata.snapshot)
    staged = stager(setup.metadata).stage("t", b"v", key, None, 1000, None)
    assert staged is not None
    assert chosen == staged[0] == expected


def test_an_explicit_partition_wins_over_key_and_sticky() -> None:
    setup = Setup()
    key = next(b"k%d" % i for i in range(100) if partition_for_key(b"k%d" % i, 4) != 3)
    assert setup.append(partition=3, key=key) is setup.batch(3)
    assert setup.append(partition=3) is setup.batch(3)
    assert setup.append(partition=0) is setup.batch(0)
    assert [setup.batch(p).record_count for p in range(4)] == [1, 0, 0, 2]


@pytest.mark.parametrize("timestamp", [0, 1, 1_700_000_000_000, 2**63 - 1])
def test_an_explicit_timestamp_is_kept(timestamp: int) -> None:
    setup = Setup()
    batch = setup.append(timestamp_ms=timestamp)
    assert (batch.base_timestamp, batch.max_timestamp) == (timestamp, timestamp)
    records = batch.finish()
    assert type(records) in (bytes, bytearray)  # see test_batch_records: nearly full, uncopied
    assert len(records) == batch.records_size
    (metadata,) = batch.metadata(RecordMetadata, "t", 1, 0, -1)
    assert type(metadata) is RecordMetadata
    assert metadata == RecordMetadata("t", 1, 0, timestamp, -1, 1)


def test_no_timestamp_is_now_in_milliseconds() -> None:
    setup = Setup()
    before = int(time.time() * 1000)
    batch = setup.append(timestamp_ms=None)
    after = int(time.time() * 1000)
    assert before <= batch.base_timestamp <= after
    # int(clock() * 1000), as RecordStager.stage computes it.
    fixed = Setup(clock=lambda: 1_700_000_000.1237)
    assert fixed.append(timestamp_ms=None).base_timestamp == int(1_700_000_000.1237 * 1000)
    whole = Setup(clock=lambda: 12)
    assert whole.append(timestamp_ms=None).base_timestamp == 12_000


def test_timestamps_follow_the_clock_within_and_across_milliseconds() -> None:
    """The appender keeps the last millisecond's int for the records of that
    millisecond: each record still gets the clock's own."""
    readings = iter([1.0001, 1.0004, 1.0021, 1.0009, 1.0009])
    setup = Setup(clock=lambda: next(readings))
    for _ in range(5):
        assert setup.append(timestamp_ms=None) is setup.batch(1)
    (decoded,) = decode_batches(setup.batch(1).close())
    assert [r.timestamp for r in decoded.records] == [1000, 1000, 1002, 1000, 1000]


@pytest.mark.parametrize("reading", [float("nan"), float("inf"), -float("inf")])
def test_a_clock_reading_no_int_can_hold_raises_as_the_python_path(reading: float) -> None:
    setup = Setup(clock=lambda: reading)
    before = setup.state()
    with pytest.raises((ValueError, OverflowError)) as raised:
        setup.append(timestamp_ms=None)
    with pytest.raises(type(raised.value)):
        int(reading * 1000)  # RecordStager.stage's computation
    assert setup.state() == before


def test_a_clock_reading_beyond_int64_declines() -> None:
    """A timestamp the record format cannot hold: the Python path names it."""
    setup = Setup(clock=lambda: 1e20)
    before = setup.state()
    assert setup.append(timestamp_ms=None) is None
    assert setup.state() == before


def test_a_queue_replaced_under_its_key_is_the_one_appended_to() -> None:
    """The appender reuses its last (topic, partition) key, never the queue found with
    it: a queue the accumulator replaces (cleared and made anew) is looked up again."""
    setup = Setup()
    first = setup.batch(1)
    assert setup.append() is first
    replacement = ProducerBatch("t", 1, 0, 0.0, batch_size=16_384)
    setup.queues["t", 1] = deque([replacement])
    assert setup.append() is replacement
    setup.sticky["t"] = 2
    assert setup.append() is setup.batch(2)
    assert setup.append(partition=1) is replacement
    assert (first.record_count, replacement.record_count) == (1, 2)


def test_hash_keys_false_sends_a_keyed_record_to_the_sticky_partition() -> None:
    """partitioner_ignore_keys: as keyless (the sticky partition), as RecordStager."""
    setup = Setup(hash_keys=False)
    key = next(b"k%d" % i for i in range(100) if partition_for_key(b"k%d" % i, 4) != 1)
    assert setup.append(key=key) is setup.batch(1)
    python = stager(setup.metadata, partitioner_ignore_keys=True)
    assert isinstance(python.partitioner, DefaultPartitioner)
    python.partitioner.sticky.partitions["t"] = 1
    staged = python.stage("t", b"v", key, None, 1000, None)
    assert staged is not None
    assert staged[0] == 1
    setup.sticky.clear()  # no sticky partition yet: the partitioner chooses one
    before = setup.state()
    assert setup.append(key=key) is None
    assert setup.state() == before


def test_the_record_size_limit_is_inclusive() -> None:
    """A batch of this record alone: the bound plus the key's and value's lengths (-1
    for None), as RecordStager.stage measures it; equal to size_limit still goes."""
    limit = _BARE_BATCH_BOUND + 100
    setup = Setup(size_limit=limit)
    assert setup.append(key=b"k" * 50, value=b"v" * 50) is not None
    assert setup.append(key=None, value=b"v" * 101) is not None
    before = setup.state()
    assert setup.append(key=b"k" * 50, value=b"v" * 51) is None
    assert setup.append(key=None, value=b"v" * 102) is None
    assert setup.state() == before


# ----------------------------------------------------------------------- declines


class BytesSubclass(bytes):
    pass


class StrSubclass(str):
    __slots__ = ()


def _full(setup: Setup) -> None:
    setup.batch(1).append(None, 1, None, b"x", ())
    setup.batch(1)._encode_records()


def _at_capacity(setup: Setup) -> None:
    batch = ProducerBatch("t", 1, 0, 0.0, batch_size=16_384, charge=lambda n: True)
    assert batch.try_append(None, (1, None, b"x", ()))
    assert batch.record_count == batch.record_capacity == 1
    setup.queues["t", 1].append(batch)


def _no_room(setup: Setup) -> None:
    batch = ProducerBatch("t", 1, 0, 0.0, batch_size=200)
    assert batch.try_append(None, (1, None, b"x" * 120, ()))
    setup.queues["t", 1].append(batch)


def _snapshot(snapshot: ClusterSnapshot) -> Callable[[Setup], None]:
    def change(setup: Setup) -> None:
        setup.metadata.snapshot = snapshot

    return change


def _count(count: Any) -> Callable[[Setup], None]:
    """A partition count Python would never hand over: the appender declines it."""

    def change(setup: Setup) -> None:
        setup.metadata.partition_counts["t"] = count

    return change


def _set(where: str, value: Any) -> Callable[[Setup], None]:
    def change(setup: Setup) -> None:
        if where == "sticky":
            setup.sticky["t"] = value
        else:
            setup.queues["t", 1].append(value)

    return change


def _nothing(setup: Setup) -> None:
    pass


# id: (send() fields, a change to the setup first)
DECLINES: dict[str, tuple[dict[str, Any], Callable[[Setup], None]]] = {
    "value str": ({"value": "v"}, _nothing),
    "value bytearray": ({"value": bytearray(b"v")}, _nothing),
    "value bytes subclass": ({"value": BytesSubclass(b"v")}, _nothing),
    "value memoryview": ({"value": memoryview(b"v")}, _nothing),
    "value int": ({"value": 5}, _nothing),
    "key str": ({"key": "k"}, _nothing),
    "key bytearray": ({"key": bytearray(b"k")}, _nothing),
    "key bytes subclass": ({"key": BytesSubclass(b"k")}, _nothing),
    "headers list": ({"headers": [("h", b"x")]}, _nothing),
    "headers tuple": ({"headers": (("h", None),)}, _nothing),
    "headers str": ({"headers": "ab"}, _nothing),
    "headers empty dict": ({"headers": {}}, _nothing),
    "topic unknown": ({"topic": "nope"}, _nothing),
    "topic not a str": ({"topic": 5}, _nothing),
    "topic unhashable": ({"topic": ["t"]}, _nothing),
    "topic a str subclass": ({"topic": StrSubclass("t")}, _nothing),
    "topic in error": ({}, _snapshot(ClusterSnapshot(topics={"t": topic_info("t", 4, 3)}))),
    "topic without partitions": ({}, _snapshot(cluster(t=0))),
    "partition count 0": ({}, _count(0)),
    "partition count negative": ({}, _count(-4)),
    "partition count a float": ({}, _count(4.0)),
    "partition count a bool": ({}, _count(True)),
    "partition count a str": ({}, _count("4")),
    "partition count huge": ({}, _count(2**70)),
    "no sticky partition": ({}, lambda setup: setup.sticky.clear()),
    "sticky partition out of range": ({}, _set("sticky", 4)),
    "sticky partition negative": ({}, _set("sticky", -1)),
    "sticky partition bool": ({}, _set("sticky", True)),
    "sticky partition str": ({}, _set("sticky", "1")),
    "partition out of range": ({"partition": 4}, _nothing),
    "partition negative": ({"partition": -1}, _nothing),
    "partition huge": ({"partition": 2**70}, _nothing),
    "partition bool": ({"partition": True}, _nothing),
    "partition float": ({"partition": 1.0}, _nothing),
    "partition str": ({"partition": "1"}, _nothing),
    "timestamp negative": ({"timestamp_ms": -1}, _nothing),
    "timestamp int64 min": ({"timestamp_ms": -(2**63)}, _nothing),
    "timestamp above int64": ({"timestamp_ms": 2**63}, _nothing),
    "timestamp huge": ({"timestamp_ms": 2**100}, _nothing),
    "timestamp float": ({"timestamp_ms": 1000.0}, _nothing),
    "timestamp bool": ({"timestamp_ms": True}, _nothing),
    "timestamp str": ({"timestamp_ms": "1000"}, _nothing),
    "record too large": ({"value": b"v" * (1 << 20)}, _nothing),
    "no queue": ({}, lambda setup: setup.queues.__delitem__(("t", 1))),
    "empty queue": ({}, lambda setup: setup.queues["t", 1].clear()),
    "last batch full": ({}, _full),
    "last batch at record_capacity": ({}, _at_capacity),
    "record does not fit the last batch": ({"value": b"v" * 20}, _no_room),
    "last batch not a records_type": ({}, _set("queue", PyBatchRecords(1 << 20, 10))),
    "last batch a plain BatchRecords": ({}, _set("queue", CBatchRecords(1 << 20, 10))),
}


@pytest.mark.parametrize(("fields", "change"), DECLINES.values(), ids=list(DECLINES))
def test_declines_changing_nothing(fields: dict[str, Any], change: Callable[[Setup], None]) -> None:
    setup = Setup()
    # Records already in every batch: the decline must not touch them either.
    for p in range(4):
        assert setup.append(partition=p, key=b"k", timestamp_ms=500 + p) is setup.batch(p)
    change(setup)
    before = setup.state()
    future = Future()
    refs = sys.getrefcount(future)
    assert setup.append(future=future, **fields) is None
    assert setup.state() == before
    assert sys.getrefcount(future) == refs
    # Still usable: a record it takes still goes.
    setup.metadata.snapshot = cluster(t=4)
    assert setup.append(partition=0) is setup.batch(0)


def test_errors_the_python_path_raises_too() -> None:
    """Not declines: what RecordStager.stage raises as well (and nothing changed)."""
    setup = Setup()
    before = setup.state()
    # An unhashable topic: the appender declines (DECLINES), the stager names the problem.
    with pytest.raises(InvalidTopicError, match="a topic name is a str, got list"):
        stager(setup.metadata).stage(["t"], b"v", None, None, 1000, None)  # type: ignore[arg-type]
    assert setup.state() == before


# ----------------------------------------------------------------------- snapshots


def test_a_new_snapshot_takes_effect_on_the_next_call() -> None:
    """The partition counts follow the snapshot (the manager updates the one dict the
    appender holds): a topic that shrinks, goes, fails or comes back."""
    setup = Setup(partitions=8)
    setup.sticky["t"] = 5
    key = next(b"k%d" % i for i in range(100) if partition_for_key(b"k%d" % i, 8) >= 4)
    topic = "t"
    assert setup.append(topic=topic) is setup.batch(5)
    assert setup.append(topic=topic, partition=6) is setup.batch(6)
    assert setup.append(topic=topic, key=key) is setup.batch(partition_for_key(key, 8))

    setup.metadata.snapshot = cluster(t=4)  # shrank: partitions 4-7 are gone
    before = setup.state()
    assert setup.append(topic=topic) is None  # sticky 5: stale
    assert setup.append(topic=topic, partition=6) is None
    assert setup.state() == before
    assert setup.append(topic=topic, key=key) is setup.batch(partition_for_key(key, 4))
    assert setup.append(topic=topic, partition=3) is setup.batch(3)

    setup.metadata.snapshot = cluster(other=8)  # the topic is gone
    before = setup.state()
    declined: list[dict[str, Any]] = [{}, {"partition": 0}, {"key": key}]
    for fields in declined:
        assert setup.append(topic=topic, **fields) is None
    assert setup.state() == before

    setup.metadata.snapshot = ClusterSnapshot(topics={"t": topic_info("t", 8, error_code=5)})
    assert setup.append(topic=topic, partition=0) is None
    setup.metadata.snapshot = cluster(t=8)  # back, in a new snapshot
    assert setup.append(topic=topic, partition=6) is setup.batch(6)
    setup.metadata.snapshot = cluster(t=8)  # equal, not the same object
    assert setup.append(topic=topic, partition=7) is setup.batch(7)


def test_topics_are_told_apart() -> None:
    setup = Setup(partitions=8)
    setup.metadata.snapshot = cluster(t=8, small=2)
    setup.queues["small", 1] = deque([ProducerBatch("small", 1, 0, 0.0, batch_size=16_384)])
    for _ in range(3):
        assert setup.append(topic="small", partition=5) is None
        assert setup.append(topic="t", partition=5) is setup.batch(5)
        assert setup.append(topic="small", partition=1) is setup.queues["small", 1][-1]
        # An equal topic str that is another object.
        assert setup.append(topic="".join(["sm", "all"]), partition=5) is None
    assert setup.batch(5).record_count == 3
    assert setup.queues["small", 1][-1].record_count == 3


# ----------------------------------------------------------------------- same bytes


record_fields = st.tuples(
    st.none() | st.binary(max_size=30),  # key
    st.none() | st.binary(max_size=60),  # value
    st.none() | st.integers(0, 3),  # partition
    st.integers(0, 2**50),  # timestamp
)


@given(st.lists(record_fields, min_size=1, max_size=60), st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_batches_hold_what_the_python_path_builds(
    records: list[tuple[bytes | None, bytes | None, int | None, int]], sticky: int
) -> None:
    """The same records, through the appender (RecordStager.appender, on the stager's
    sticky partitions) and through RecordStager.stage + ProducerBatch.try_append: the
    same partitions, the same batch bytes, decoding to the records."""
    metadata = Metadata(cluster(t=4))
    python = stager(metadata)
    assert isinstance(python.partitioner, DefaultPartitioner)
    python.partitioner.sticky.partitions["t"] = sticky

    def queues() -> Queues:
        return {
            ("t", p): deque([ProducerBatch("t", p, 0, 0.0, batch_size=1 << 20)]) for p in range(4)
        }

    fast, slow = queues(), queues()
    appender = python.appender(fast)
    assert appender is not None
    expected: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {p: [] for p in range(4)}
    for key, value, partition, timestamp in records:
        batch = appender.append("t", value, key, partition, timestamp, None, None)
        assert batch is not None
        staged = python.stage("t", value, key, partition, timestamp, None)
        assert staged is not None
        assert batch is fast["t", staged[0]][-1]
        assert slow["t", staged[0]][-1].try_append(None, staged[2])
        expected[staged[0]].append((timestamp, key, value))
    for p in range(4):
        if not expected[p]:
            continue
        ours = fast["t", p][-1].close()
        assert ours == slow["t", p][-1].close()
        (decoded,) = decode_batches(ours)
        assert [(r.timestamp, r.key, r.value, r.headers) for r in decoded.records] == [
            (*record, ()) for record in expected[p]
        ]


# ----------------------------------------------------------------------- construction


def _arguments(**changes: Any) -> dict[str, Any]:
    """The appender's inputs, as RecordStager.appender hands them over."""
    arguments: dict[str, Any] = {
        "partition_counts": {"t": 1},
        "sticky": {},
        "queues": {},
        "clock": time.time,
        "records_type": ProducerBatch,
        "size_limit": 1 << 20,
        "bare_bound": _BARE_BATCH_BOUND,
        "hash_keys": True,
        "add_hooks": ProducerBatch.add_hooks,
        "parameters": _staging.SEND_PARAMETERS,
        "record_type": ProducerRecord,
    }
    arguments.update(changes)
    return arguments


WRONG_ARGUMENTS: dict[str, dict[str, Any]] = {
    "partition_counts a mapping proxy": {"partition_counts": MappingProxyType({"t": 1})},
    "partition_counts the snapshot": {"partition_counts": cluster(t=1)},
    "sticky not a dict": {"sticky": MappingProxyType({})},
    "sticky None": {"sticky": None},
    "queues a list": {"queues": []},
    "records_type not a type": {"records_type": ProducerBatch("t", 0, 0, 0.0, batch_size=1)},
    "records_type the Python records": {"records_type": PyBatchRecords},
    "records_type object": {"records_type": object},
    "records_type int": {"records_type": int},
    "size_limit str": {"size_limit": "1"},
    "size_limit float": {"size_limit": 1.0},
    "bare_bound None": {"bare_bound": None},
    "parameters a list": {"parameters": list(_staging.SEND_PARAMETERS)},
    "parameters not str": {"parameters": tuple(range(7))},
    "record_type not a type": {"record_type": ProducerRecord("t")},
}


@pytest.mark.parametrize("changes", WRONG_ARGUMENTS.values(), ids=list(WRONG_ARGUMENTS))
def test_wrong_constructor_arguments_raise_type_error(changes: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Appender(**_arguments(**changes))


@pytest.mark.parametrize("count", [6, 8])
def test_parameters_name_send_s_seven(count: int) -> None:
    parameters = (_staging.SEND_PARAMETERS * 2)[:count]
    with pytest.raises(ValueError, match="send\\(\\)'s 7 parameters"):
        Appender(**_arguments(parameters=parameters))


def test_the_inputs_match_what_python_decides() -> None:
    """What the appender is handed is Python's own: send()'s parameters are
    SendPath.send's, a ProducerRecord's fields are its first six, and the producer's
    stager hands over the manager's live partition counts."""
    signature = inspect.signature(SendPath.send)
    assert tuple(signature.parameters)[1:] == _staging.SEND_PARAMETERS
    fields = tuple(field.name for field in dataclasses.fields(ProducerRecord))
    assert fields == _staging.SEND_PARAMETERS[:6]
    metadata = Metadata(cluster(t=3))
    assert metadata.partition_counts == {"t": 3}
    python = stager(metadata)
    queues: Queues = {("t", 0): deque([ProducerBatch("t", 0, 0, 0.0, batch_size=1 << 20)])}
    appender = python.appender(queues)
    assert appender.append("t", b"v", None, 0, 1000, None, None) is queues["t", 0][-1]
    metadata.snapshot = cluster(t=3, other=2)  # the same dict, updated in place
    queues["other", 1] = deque([ProducerBatch("other", 1, 0, 0.0, batch_size=1 << 20)])
    assert appender.append("other", b"v", None, 1, 1000, None, None) is queues["other", 1][-1]


def test_constructor_takes_keywords_only_and_every_one() -> None:
    assert Appender(**_arguments()) is not None
    # A subclass of BatchRecords other than ProducerBatch is fine.
    assert Appender(**_arguments(records_type=CBatchRecords)) is not None
    with pytest.raises(TypeError):
        Appender(*_arguments().values())
    for name in _arguments():
        arguments = _arguments()
        del arguments[name]
        with pytest.raises(TypeError):
            Appender(**arguments)


@pytest.mark.parametrize("count", [0, 6, 8])
def test_append_takes_seven_arguments(count: int) -> None:
    setup = Setup()
    before = setup.state()
    with pytest.raises(TypeError, match="takes 7 arguments"):
        setup.appender.append(*["t", b"v", None, None, 1000, None, None, None][:count])
    assert setup.state() == before


def test_an_appender_never_initialized_declines() -> None:
    appender = Appender.__new__(Appender)
    assert appender.append("t", b"v", None, None, 1000, None, None) is None


# ----------------------------------------------------------------------- references


def test_no_reference_leaks_in_appends_and_declines() -> None:
    setup = Setup(batch_size=1 << 20, size_limit=_BARE_BATCH_BOUND + 1000)
    topic, key, value, future = "t", b"key", b"value", Future()
    setup.append(topic=topic)  # the cache now holds the topic
    objects = (topic, key, value, future, setup.metadata.snapshot)
    refs = [sys.getrefcount(o) for o in objects]
    big = b"v" * 2000
    for _ in range(3000):
        assert setup.append(topic=topic, key=key, value=value, future=None) is not None
        assert setup.append(topic=topic, value=value, timestamp_ms=None, future=None)
        assert setup.append(topic=topic, key=key, partition=4, future=future) is None
        assert setup.append(topic=topic, key=key, value=big, future=future) is None
        assert setup.append(topic=topic, key=key, timestamp_ms=-1, future=future) is None
    assert [sys.getrefcount(o) for o in objects] == refs
    del setup.queues["t", 1]  # (it held the topic too)
    refs = [sys.getrefcount(o) for o in objects]
    for _ in range(1000):
        assert setup.append(topic=topic, value=value, future=future) is None
    assert [sys.getrefcount(o) for o in objects] == refs


def test_an_appender_in_a_reference_cycle_is_collected() -> None:
    died = [False]

    class Finalized:
        def __del__(self) -> None:
            died[0] = True

    setup = Setup()
    setup.sticky["cycle"] = (setup.appender, Finalized())  # type: ignore[assignment]  # sticky -> appender -> sticky
    setup.queues["t", 0][-1].futures.append(setup.appender)  # and through the queues
    del setup
    gc.collect()
    assert died[0]


# ----------------------------------------------------------------------- append_each


class RecordSubclass(ProducerRecord):
    __slots__ = ()


def each(setup: Setup, records: Any) -> tuple[Any, list[Any], dict[Any, None]]:
    """append_each over ``records``: what it returned, the results, the batches."""
    results: list[Any] = []
    batches: dict[Any, None] = {}
    outcome = setup.appender.append_each(iter(records), results, batches)
    return outcome, results, batches


def sinks(batch: ProducerBatch) -> list[tuple[int, int, int]]:
    """(first, slot, count) of each of its sinks."""
    return [(first, slot, count) for first, _, slot, count in batch.sinks or ()]


def test_append_each_takes_tuples_and_records_in_runs_with_a_sink_each() -> None:
    setup = Setup()
    records = [
        ("t", b"a"),  # sticky partition 1
        ("t", b"b", None, 1, 1000, ()),
        ProducerRecord("t", b"c", partition=2, timestamp_ms=1000),
        ("t", b"d", None, 2),
        ("t", b"e", None, 1, None),
    ]
    outcome, results, batches = each(setup, records)
    assert outcome is None
    assert results == [None] * 5
    assert list(batches) == [setup.batch(1), setup.batch(2)]
    assert [b.record_count for b in (setup.batch(1), setup.batch(2))] == [3, 2]
    # Runs: slots 0-1 in partition 1, 2-3 in partition 2, 4 in partition 1 again.
    assert sinks(setup.batch(1)) == [(0, 0, 2), (2, 4, 1)]
    assert sinks(setup.batch(2)) == [(0, 2, 2)]
    assert all(future is None for future in setup.batch(1).futures)
    assert all(s[1] is results for s in setup.batch(1).sinks or ())


@pytest.mark.parametrize(
    "declined",
    [
        None,
        b"not a record",
        ("t",),
        ("t", b"v", None, None, None, None, "a 7th"),
        ["t", b"v"],
        RecordSubclass("t", b"v"),
        ("t", "a str value"),
        ("t", b"v", None, 9),  # no such partition
        ("nope", b"v"),  # unknown topic
        ("t", b"v", None, None, -1),
    ],
    ids=repr,
)
def test_append_each_hands_back_the_first_record_it_does_not_take(declined: Any) -> None:
    setup = Setup()
    records = iter([("t", b"first"), ("t", b"second", None, 3), declined, ("t", b"after")])
    results: list[Any] = []
    batches: dict[Any, None] = {}
    outcome = setup.appender.append_each(records, results, batches)
    assert type(outcome) is tuple
    assert len(outcome) == 1
    assert outcome[0] is declined
    assert results == [None, None]  # no slot for the one handed back
    assert list(batches) == [setup.batch(1), setup.batch(3)]
    assert sinks(setup.batch(1)) == [(0, 0, 1)]
    assert sinks(setup.batch(3)) == [(0, 1, 1)]
    assert next(records) == ("t", b"after")  # the iterator is just past it


def test_append_each_hands_back_a_record_its_full_batch_cannot_take() -> None:
    setup = Setup(batch_size=200)
    outcome, results, _ = each(setup, [("t", b"x" * 60)] * 5)
    assert outcome == (("t", b"x" * 60),)
    assert len(results) == setup.batch(1).record_count
    assert sinks(setup.batch(1)) == [(0, 0, len(results))]


def test_append_each_with_nothing_to_append() -> None:
    setup = Setup()
    before = setup.state()
    assert each(setup, []) == (None, [], {})
    assert setup.state() == before


def test_when_the_iterator_raises_the_records_appended_still_have_their_sink() -> None:
    def records() -> Any:
        yield ("t", b"a")
        yield ("t", b"b")
        raise RuntimeError("the caller's generator broke")

    setup = Setup()
    results: list[Any] = []
    batches: dict[Any, None] = {}
    with pytest.raises(RuntimeError, match="generator broke"):
        setup.appender.append_each(records(), results, batches)
    assert results == [None, None]
    assert sinks(setup.batch(1)) == [(0, 0, 2)]
    assert list(batches) == [setup.batch(1)]


def test_a_record_whose_field_cannot_be_read_is_handed_back() -> None:
    """The Python path fails it alone (InvalidProducerRecordError): it does not end the
    call (issue 16)."""
    setup = Setup()
    broken = ProducerRecord("t", b"v")
    del broken.headers  # a slots field left unset: reading it raises AttributeError
    results: list[Any] = []
    records = iter([("t", b"a"), broken, ("t", b"after")])
    outcome = setup.appender.append_each(records, results, {})
    assert outcome == (broken,)
    assert results == [None]
    assert sinks(setup.batch(1)) == [(0, 0, 1)]
    assert next(records) == ("t", b"after")


def test_a_record_that_fails_to_append_takes_no_slot() -> None:
    """What raised goes through, and the results hold exactly the records appended:
    send_batch() reports them on SendBatchAbortedError."""
    calls = 0

    def clock() -> float:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the clock broke")
        return 1.0

    setup = Setup(clock=clock)
    results: list[Any] = []
    records = [("t", b"a"), ("t", b"b"), ("t", b"c"), ("t", b"d")]
    with pytest.raises(RuntimeError, match="clock broke"):
        setup.appender.append_each(iter(records), results, {})
    assert results == [None, None]
    assert sinks(setup.batch(1)) == [(0, 0, 2)]
    assert setup.batch(1).record_count == 2


@pytest.mark.parametrize(
    "args",
    [
        (),
        (iter([]), []),
        (iter([]), [], {}, ProducerRecord),  # the record type is the appender's
        ([("t", b"v")], [], {}),  # a list, not an iterator
        (iter([]), (), {}),
        (iter([]), [], []),
    ],
)
def test_append_each_argument_errors(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match="append_each"):
        Setup().appender.append_each(*args)


def test_no_reference_leaks_in_append_each() -> None:
    setup = Setup(batch_size=1 << 20)
    topic, value = "t", b"value"
    record = ProducerRecord(topic, value, partition=2)
    setup.appender.append_each(iter([(topic, value)]), [], {})
    objects = (topic, value, record, setup.metadata.snapshot)
    refs = [sys.getrefcount(o) for o in objects]
    for _ in range(500):
        results: list[Any] = []
        batches: dict[Any, None] = {}
        records = [(topic, value), record, (topic, value, None, 3), None, (topic, value)]
        outcome = setup.appender.append_each(iter(records), results, batches)
        assert outcome == (None,)
        del outcome, results, batches, records
        for queue in setup.queues.values():
            queue[-1].sinks = None
    assert [sys.getrefcount(o) for o in objects] == refs


def test_fill_sinks_reports_as_the_python_loop_does() -> None:
    rng = random.Random(3)
    for _ in range(200):
        outcomes = [object() for _ in range(rng.randrange(1, 40))]
        c_lists = [[None] * 50 for _ in range(3)]
        py_lists = [[None] * 50 for _ in range(3)]
        c_sinks, py_sinks, first = [], [], 0
        while first < len(outcomes) and rng.random() < 0.9:
            count = rng.randrange(0, len(outcomes) - first + 1)
            which, slot = rng.randrange(3), rng.randrange(0, 50 - count + 1)
            c_sinks.append((first, c_lists[which], slot, count))
            py_sinks.append((first, py_lists[which], slot, count))
            first += count
        assert fill_sinks(c_sinks, outcomes) == _fill_sinks(py_sinks, outcomes) == first
        assert c_lists == py_lists


@pytest.mark.parametrize(
    ("sinks", "error"),
    [
        ([(0, [None], 0)], TypeError),  # three fields
        ([[0, [None], 0, 1]], TypeError),  # a list, not a tuple
        ([(0, (None,), 0, 1)], TypeError),  # results not a list
        ([(0, [None], "0", 1)], TypeError),
        ([(-1, [None], 0, 1)], ValueError),
        ([(2, [None], 0, 1)], IndexError),  # beyond the outcomes
        ([(0, [None], 1, 1)], IndexError),  # beyond the results
    ],
)
def test_fill_sinks_refuses_a_malformed_sink(sinks: list[Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        fill_sinks(sinks, ["a", "b"])
