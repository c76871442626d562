"""The records of a batch being filled: the C ``BatchRecords`` (``asyncproducer._speedups``)
against its Python reference (``PyBatchRecords``), our decoder and kafka-python's; the C
one's errors, subclassing, garbage collection and memory; ``metadata()``, the records'
``RecordMetadata``. (The C ``murmur2`` is tested in test_murmur2.py.)

The C module is optional at install time (no compiler: the Python records are used), so
the tests of the C one skip without it; ``test_the_compiled_records_are_in_use`` does
not, so that a build that silently fell back does not pass unnoticed where a compiler
exists.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import time
import tracemalloc
import warnings
import weakref
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources.read_text, deprecated on
    # Python 3.11; the suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record.default_records import DefaultRecordBatch

from asyncproducer import _native
from asyncproducer._batch import ProducerBatch
from asyncproducer._types import RecordMetadata, TopicPartition
from asyncproducer.protocol import batch_records
from asyncproducer.protocol.batch_records import PyBatchRecords
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import record_size, seal_batch
from asyncproducer.protocol.records import decode_batches
from tests.pure_python import run_without_speedups

speedups: ModuleType | None
try:
    from asyncproducer import _speedups as speedups
except ImportError:
    speedups = None

needs_c = pytest.mark.skipif(speedups is None, reason="asyncproducer._speedups did not build")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

Records = type[PyBatchRecords]


def c_records() -> Records:
    assert speedups is not None
    cls: Records = speedups.BatchRecords
    return cls


@pytest.fixture(params=["python", "c"])
def impl(request: pytest.FixtureRequest) -> Records:
    """Each behaviour test runs on both implementations (the C one where it built)."""
    if request.param == "python":
        return PyBatchRecords
    if speedups is None:
        pytest.skip("asyncproducer._speedups did not build")
    return c_records()


def state(records: PyBatchRecords) -> tuple[Any, ...]:
    """Every attribute a caller reads (futures by identity)."""
    return (
        records.record_count,
        records.records_size,
        records.max_records_size,
        records.record_capacity,
        records.base_timestamp,
        records.max_timestamp,
        records.full,
        [id(future) for future in records.futures],
    )


class Future:
    """A stand-in for a record's future: weak-referenceable, compared by identity."""


def sizes(records: PyBatchRecords) -> list[tuple[int, int, int]]:
    """Per record, (timestamp, key size, value size; -1 for None), through ``metadata()``:
    what ``finish()`` returned besides the records before it returned only them."""
    return [
        (m.timestamp, m.serialized_key_size, m.serialized_value_size)
        for m in records.metadata(RecordMetadata, "t", 0, 0, -1)
    ]


# (base_offset, log_append_time): offsets from 0, from 12345, unknown (acks=0: -1 for
# every record); the records' own timestamps, or the broker's LogAppendTime.
METADATA_CHOICES = [(0, -1), (12345, -1), (-1, -1), (7, 1_700_000_000_123)]


def all_metadata(records: PyBatchRecords) -> tuple[str, list[list[RecordMetadata]]]:
    """``metadata()`` for every choice of METADATA_CHOICES, tagged for the comparison."""
    return (
        "metadata",
        [records.metadata(RecordMetadata, "topic", 3, *choice) for choice in METADATA_CHOICES],
    )


# ----------------------------------------------------------------------- strategies

# Keys and values: None, empty, short, and long ones up to 20 KiB (a repeated byte: cheap
# to generate, and the length prefix is what matters past a few bytes).
data = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(max_size=40),
    st.builds(lambda n, b: bytes((b,)) * n, st.integers(0, 20 * 1024), st.integers(0, 255)),
)
header = st.tuples(st.text(max_size=12), st.none() | st.binary(max_size=30))
headers = st.one_of(
    st.just(()),
    st.just([]),
    st.none(),  # no headers, as an empty sequence
    st.lists(header, min_size=1, max_size=6),
    st.lists(header, min_size=1, max_size=6).map(tuple),
    st.lists(header.map(list), min_size=1, max_size=3),  # [key, value] pairs too
)


@st.composite
def timestamp_ranges(draw: st.DrawFn) -> st.SearchStrategy[int]:
    """Timestamps within a window of at most INT64_MAX: any one minus any other (the
    batch's base: whichever record is appended first) fits in int64."""
    width = draw(st.sampled_from([0, 1000, 2**41, INT64_MAX]))
    low = draw(
        st.one_of(
            st.just(0),
            st.integers(0, 2**41),
            st.integers(INT64_MIN, INT64_MAX - width),
            st.sampled_from([INT64_MIN, INT64_MAX - width]),
        )
    )
    low = min(low, INT64_MAX - width)
    return st.one_of(
        st.integers(low, low + min(width, 5000)),
        st.integers(low, low + width),
        st.sampled_from([low, low + width]),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, list[tuple[Any, ...]]]:
    """(max_records_size, record_capacity, steps): each step appends a record (with a
    future: a fresh object, or None), raises ``record_capacity``, or finishes."""
    max_records_size = draw(
        st.one_of(
            st.integers(-100, 0),  # a batch_size below the batch header: one record each
            st.integers(0, 300),
            st.integers(0, 30_000),
            st.just(16_384 - 61),
            st.just(2**40),
        )
    )
    record_capacity = draw(st.integers(0, 40) | st.just(1 << 62))
    timestamps = draw(timestamp_ranges())
    record = st.tuples(st.just("append"), st.booleans(), timestamps, data, data, headers)
    # Up to 12 distinct records, repeated (long runs fit in hypothesis's data budget):
    # in turn, or in a drawn order.
    distinct = draw(st.lists(record, min_size=1, max_size=12))
    count = draw(st.integers(0, 150) | st.just(150))
    if draw(st.booleans()):
        order = list(range(count))
    else:
        order = draw(st.lists(st.integers(0, 11), min_size=count, max_size=count))
    steps: list[tuple[Any, ...]] = [distinct[i % len(distinct)] for i in order]
    # A few raises of record_capacity, and sometimes a finish() before the end.
    others = st.tuples(st.just("capacity"), st.integers(0, 60)) | st.just(("finish",))
    for position, other in draw(st.lists(st.tuples(st.integers(0, count), others), max_size=4)):
        steps.insert(position, other)
    return max_records_size, record_capacity, steps


def run(
    cls: Records,
    max_records_size: int,
    record_capacity: int,
    steps: list[tuple[Any, ...]],
    futures: list[Any],
) -> Iterator[Any]:
    """Apply ``steps`` to a new ``cls`` (``futures[i]``: step i's future): what each step
    returns or raises, and the state after it."""
    records = cls(max_records_size, record_capacity)
    for step, future in zip(steps, futures, strict=True):
        if step[0] == "append":
            _, _, timestamp, key, value, hs = step
            yield records.append(future, timestamp, key, value, hs)
        elif step[0] == "capacity":
            records.record_capacity = max(records.record_capacity, step[1])
            yield None
        else:
            yield all_metadata(records)
            try:
                yield records.finish()
            except RuntimeError as exc:
                yield repr(exc)
            yield all_metadata(records)
        yield state(records)
    yield all_metadata(records)
    if not records.full:
        yield records.finish()
    yield state(records)
    yield all_metadata(records)
    with pytest.raises(RuntimeError, match="already called"):
        records.finish()
    yield records.append(None, 0, None, None, ())  # finished: nothing more
    yield state(records)
    yield all_metadata(records)


@needs_c
@given(scenarios())
@SETTINGS
def test_c_records_match_the_python_ones(scenario: tuple[int, int, list[Any]]) -> None:
    """Step by step: the same results and attributes, the same finish() output, and the
    same metadata() (before and after each finish(), for every METADATA_CHOICES): equal
    RecordMetadata instances, of that exact type."""
    max_records_size, record_capacity, steps = scenario
    # The same future objects for both (state() compares them by identity).
    futures = [Future() if step[0] == "append" and step[1] else None for step in steps]
    python = run(PyBatchRecords, max_records_size, record_capacity, steps, futures)
    c = run(c_records(), max_records_size, record_capacity, steps, futures)
    compared = 0
    for expected, actual in zip(python, c, strict=True):
        if isinstance(expected, bytes):  # finish(): the same bytes, maybe in its bytearray
            assert type(actual) in (bytes, bytearray)
        elif isinstance(expected, tuple) and expected[0] == "metadata":
            assert actual[0] == "metadata"
            for expected_list, actual_list in zip(expected[1], actual[1], strict=True):
                assert type(actual_list) is list
                assert all(type(item) is RecordMetadata for item in expected_list)
                assert all(type(item) is RecordMetadata for item in actual_list)
                assert actual_list == expected_list
            compared += 1
        assert actual == expected
    assert compared >= 3


def test_futures_are_the_same_objects_in_both(impl: Records) -> None:
    futures = [Future(), None, Future(), 7, "x", None]
    records = impl(1 << 20, 100)
    for i, future in enumerate(futures):
        assert records.append(future, i, None, b"v", ())
    assert len(records.futures) == records.record_count == len(futures)
    assert all(a is b for a, b in zip(records.futures, futures, strict=True))
    records.finish()
    assert all(a is b for a, b in zip(records.futures, futures, strict=True))


@given(scenarios(), st.sampled_from(["python", "c"]))
@settings(SETTINGS, max_examples=60)
def test_finished_records_decode_with_ours_and_kafka_python(
    scenario: tuple[int, int, list[Any]], which: str
) -> None:
    """``finish()`` sealed into a batch reads back, with our decoder and kafka-python's,
    as the records appended (those append accepted), in order; ``records_size`` is the
    encoded length, and each record's exact encoded size adds up to it."""
    if which == "c" and speedups is None:
        return
    cls = PyBatchRecords if which == "python" else c_records()
    max_records_size, record_capacity, steps = scenario
    records = cls(max_records_size, max(record_capacity, 1))
    accepted: list[tuple[Any, ...]] = []
    for step in steps:
        if step[0] != "append":
            continue
        _, _, timestamp, key, value, hs = step
        if records.append(None, timestamp, key, value, hs):
            accepted.append((timestamp, key, value, tuple(tuple(h) for h in hs or ())))
    if not accepted:
        return
    size = records.records_size
    blob = records.finish()
    assert type(blob) in (bytes, bytearray)  # a nearly full C buffer: uncopied
    assert len(blob) == size
    timestamps, key_sizes, value_sizes = (
        list(column) for column in zip(*sizes(records), strict=True)
    )
    base = accepted[0][0]
    assert size == sum(
        record_size(ts - base, i, key, value, hs) for i, (ts, key, value, hs) in enumerate(accepted)
    )
    assert timestamps == [r[0] for r in accepted]
    assert key_sizes == [-1 if r[1] is None else len(r[1]) for r in accepted]
    assert value_sizes == [-1 if r[2] is None else len(r[2]) for r in accepted]
    assert records.base_timestamp == base
    assert records.max_timestamp == max(timestamps)
    sealed = seal_batch(
        blob,
        count=len(accepted),
        base_timestamp=records.base_timestamp,
        max_timestamp=records.max_timestamp,
        compression=CompressionType.NONE,
        producer_id=7,
        producer_epoch=1,
        base_sequence=100,
    )

    (ours,) = decode_batches(sealed)
    assert ours.base_timestamp == base
    assert [r.offset for r in ours.records] == list(range(len(accepted)))
    assert [(r.timestamp, r.key, r.value, r.headers) for r in ours.records] == accepted

    theirs = DefaultRecordBatch(sealed)
    assert theirs.validate_crc()
    assert (theirs.producer_id, theirs.base_sequence) == (7, 100)
    decoded = list(theirs)
    assert [r.offset for r in decoded] == list(range(len(accepted)))
    assert [
        (
            r.timestamp,
            _as_bytes(r.key),
            _as_bytes(r.value),
            tuple((k, _as_bytes(v)) for k, v in r.headers),
        )
        for r in decoded
    ] == accepted


def _as_bytes(data: Any) -> bytes | None:
    return None if data is None else bytes(data)


@needs_c
def test_edge_cases_match() -> None:
    """Extreme deltas (INT64_MAX and INT64_MIN), large fields, non-ASCII header keys."""
    cases: list[list[tuple[Any, ...]]] = [
        [
            (5, None, None, ()),
            (5, b"", b"", []),
            (4, b"k" * 20_000, b"v" * 70_000, [("", b""), ("\u00e9t\u00e9 \U0001f600", None)]),
            (INT64_MAX, b"k", None, None),
            (5 - 2**62, None, b"x", (["list", b"pair"],)),
        ],
        [(INT64_MIN, None, None, ()), (-1, None, None, ())],  # a delta of INT64_MAX
        [(0, None, None, ()), (INT64_MIN, None, None, ())],  # a delta of INT64_MIN
        [(-1, None, None, ()), (INT64_MAX - 1, None, None, ())],
        [(INT64_MAX, None, None, ()), (0, None, None, ()), (-1, None, None, ())],
    ]
    for case in cases:
        python, c = PyBatchRecords(1 << 30, 100), c_records()(1 << 30, 100)
        for record in case:
            assert python.append(None, *record) is c.append(None, *record) is True
            assert state(c) == state(python)
        assert all_metadata(c) == all_metadata(python)
        assert sizes(c) == [
            (ts, -1 if k is None else len(k), -1 if v is None else len(v)) for ts, k, v, _ in case
        ]
        assert c.finish() == python.finish()
        assert all_metadata(c) == all_metadata(python)


# ----------------------------------------------------------------------- the rules


def test_the_first_record_always_fits(impl: Records) -> None:
    for max_records_size in (-61, 0, 10):
        records = impl(max_records_size, 10)
        assert records.append(None, 1, None, b"v" * 1000, ())
        assert records.records_size > 1000
        assert not records.append(None, 1, None, None, ())  # nothing else does
        assert records.record_count == 1


def test_a_record_that_does_not_fit_changes_nothing(impl: Records) -> None:
    records = impl(100, 10)
    assert records.append(Future(), 1000, b"k", b"v" * 50, [("h", b"x")])
    before = state(records)
    left = 100 - records.records_size
    # The second record: timestamp delta -995, offset delta 1, 1-byte key, n-byte value.
    fitting = next(
        n for n in range(left, 0, -1) if record_size(-995, 1, b"k", b"v" * n, ()) == left
    )
    assert not records.append(Future(), 5, b"k", b"v" * (fitting + 1), ())  # 1 byte too many
    assert state(records) == before
    assert records.append(None, 5, b"k", b"v" * fitting, ())  # exactly what is left
    assert records.records_size == 100
    assert (records.base_timestamp, records.max_timestamp) == (1000, 1000)
    assert not records.append(None, 5, None, None, ())
    assert records.record_count == 2


def test_record_capacity_and_raising_it(impl: Records) -> None:
    records = impl(1 << 20, 2)
    assert records.append(None, 1, None, None, ())
    assert records.append(None, 3, None, None, ())
    before = state(records)
    assert not records.append(None, 7, None, None, ())
    assert state(records) == before
    records.record_capacity = 3
    assert records.append(None, 2, None, None, ())
    assert (records.record_count, records.base_timestamp, records.max_timestamp) == (3, 1, 3)
    assert not records.append(None, 9, None, None, ())
    empty = impl(1 << 20, 0)
    assert not empty.append(None, 1, None, None, ())
    assert (empty.record_count, empty.base_timestamp, empty.max_timestamp) == (0, -1, -1)


def test_after_finish(impl: Records) -> None:
    records = impl(1 << 20, 10)
    assert not records.full
    assert records.append(None, 1, b"k", b"v", ())
    blob = records.finish()
    assert records.full
    assert type(blob) is bytes
    assert len(blob) == records.records_size
    assert sizes(records) == [(1, 1, 1)]
    before = state(records)
    assert not records.append(None, 1, None, None, ())
    assert state(records) == before
    with pytest.raises(RuntimeError, match="already called"):
        records.finish()
    assert state(records) == before


def test_finishing_no_records(impl: Records) -> None:
    records = impl(100, 10)
    assert records.metadata(RecordMetadata, "t", 0, 0, -1) == []
    blob = records.finish()
    assert type(blob) is bytes
    assert (blob, sizes(records)) == (b"", [])
    assert state(records) == (0, 0, 100, 10, -1, -1, True, [])


@needs_c
def test_c_finish_hands_over_a_nearly_full_buffer_uncopied() -> None:
    """Filled to within an eighth of its buffer (as a batch sealed for its size is), the
    records are that bytearray itself, trimmed: copying 1 MiB took the event loop ~0.3
    ms. With more room left, a copy of their size, so the slack does not outlive the
    batch. The same bytes as the Python records' either way."""
    value = b"v" * 1000
    for count, kind in ((None, bytearray), (20, bytes)):
        c, python = c_records()(64 * 1024, 1 << 30), PyBatchRecords(64 * 1024, 1 << 30)
        appended = 0
        while (count is None or appended < count) and c.append(None, appended, None, value, ()):
            assert python.append(None, appended, None, value, ())
            appended += 1
        blob = c.finish()
        assert type(blob) is kind
        assert blob == python.finish()
        assert len(blob) == c.records_size
        if count is None:  # full: a 64 KiB buffer, within an eighth
            assert c.records_size > 64 * 1024 - 1024


def test_constructor_arguments(impl: Records) -> None:
    records = impl(max_records_size=5, record_capacity=6)
    assert state(records) == (0, 0, 5, 6, -1, -1, False, [])
    with pytest.raises(TypeError):
        impl()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        impl(1)  # type: ignore[call-arg]


# ----------------------------------------------------------------------- C errors


def _valid() -> dict[str, Any]:
    return {"timestamp": 1000, "key": b"k", "value": b"v", "headers": [("h", b"x")]}


BAD_APPENDS: dict[str, tuple[dict[str, Any], type[BaseException]]] = {
    "timestamp str": ({"timestamp": "1"}, TypeError),
    "timestamp None": ({"timestamp": None}, TypeError),
    "timestamp float": ({"timestamp": 1.0}, TypeError),
    "timestamp above int64": ({"timestamp": 2**63}, ValueError),
    "timestamp below int64": ({"timestamp": -(2**63) - 1}, ValueError),
    "key str": ({"key": "k"}, TypeError),
    "key int": ({"key": 1}, TypeError),
    "key bytearray": ({"key": bytearray(b"k")}, TypeError),
    "value str": ({"value": "v"}, TypeError),
    "value memoryview": ({"value": memoryview(b"v")}, TypeError),
    "headers int": ({"headers": 5}, TypeError),
    "headers str": ({"headers": "ab"}, TypeError),
    "headers dict": ({"headers": {"k": b"v"}}, TypeError),
    "headers generator": ({"headers": (h for h in [("k", b"v")])}, TypeError),
    "header not a pair": ({"headers": [5]}, TypeError),
    "header a str": ({"headers": ["kv"]}, TypeError),
    "header of 1 item": ({"headers": [("k",)]}, ValueError),
    "header of 3 items": ({"headers": [("k", b"v", b"w")]}, ValueError),
    "header key bytes": ({"headers": [(b"k", b"v")]}, TypeError),
    "header key None": ({"headers": [(None, b"v")]}, TypeError),
    "header value str": ({"headers": [("k", "v")]}, TypeError),
    "header value int": ({"headers": [("k", 5)]}, TypeError),
    "header value bytearray": ({"headers": [("k", bytearray(b"v"))]}, TypeError),
    "header key lone surrogate": ({"headers": [("\ud800", b"v")]}, UnicodeEncodeError),
    "second header bad": ({"headers": [("k", b"v"), ("k", 5)]}, TypeError),
}


@needs_c
@pytest.mark.parametrize("records_before", [0, 2])
@pytest.mark.parametrize(("fields", "error"), BAD_APPENDS.values(), ids=list(BAD_APPENDS))
def test_bad_input_raises_and_changes_nothing(
    records_before: int, fields: dict[str, Any], error: type[BaseException]
) -> None:
    """The C records check exact types (tuple or list, bytes, str, int) and raise before
    changing anything; the object is then as usable as before."""
    records = c_records()(1 << 20, 100)
    reference = PyBatchRecords(1 << 20, 100)
    for i in range(records_before):
        assert records.append(Future(), 1000 + i, b"k", b"v", ())
        reference.append(records.futures[-1], 1000 + i, b"k", b"v", ())
    before = state(records)
    record = {**_valid(), **fields}
    with pytest.raises(error) as caught:
        records.append(Future(), *record.values())
    assert type(caught.value) is error
    assert str(caught.value)
    assert state(records) == before
    assert records.append(None, *_valid().values())
    reference.append(None, *_valid().values())
    assert state(records) == state(reference)
    assert all_metadata(records) == all_metadata(reference)
    assert records.finish() == reference.finish()


@needs_c
@pytest.mark.parametrize(
    ("base", "timestamp"),
    [(-1, INT64_MAX), (1, INT64_MIN), (INT64_MIN, 0), (INT64_MAX, -2)],
)
def test_a_delta_outside_int64_raises_value_error(base: int, timestamp: int) -> None:
    records = c_records()(1 << 20, 100)
    assert records.append(None, base, None, None, ())
    before = state(records)
    with pytest.raises(ValueError, match="delta"):
        records.append(None, timestamp, None, None, ())
    assert state(records) == before
    assert records.append(None, base, None, None, ())


@needs_c
@pytest.mark.parametrize("args", [(), (None,), (None, 0, None, None), (None, 0, None, None, (), 1)])
def test_wrong_argument_count(args: tuple[Any, ...]) -> None:
    records = c_records()(1 << 20, 100)
    with pytest.raises(TypeError, match="takes 5 arguments"):
        records.append(*args)
    assert state(records) == (0, 0, 1 << 20, 100, -1, -1, False, [])


@needs_c
def test_c_constructor_errors() -> None:
    cls = c_records()
    bad: list[tuple[Any, Any]] = [("1", 1), (1, None), (1.5, 1)]
    for args in bad:
        with pytest.raises(TypeError):
            cls(*args)
    with pytest.raises(OverflowError):
        cls(2**63, 1)
    records = cls(1, 1)
    # A failed assignment leaves record_capacity as it was (not -1, as a T_PYSSIZET
    # member would on Python 3.11: the batch would then take no more records).
    with pytest.raises(TypeError):
        records.record_capacity = "2"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        records.record_capacity = 2.0  # type: ignore[assignment]
    with pytest.raises(OverflowError):
        records.record_capacity = 2**63
    with pytest.raises(TypeError):
        del records.record_capacity
    assert records.record_capacity == 1
    records.record_capacity = 2**63 - 1
    assert records.record_capacity == 2**63 - 1
    with pytest.raises(AttributeError):  # read-only in C
        records.records_size = 5


# ----------------------------------------------------------------------- metadata()


def _records_for_metadata(impl: Records) -> PyBatchRecords:
    """Three records: a None key, an empty one, a None value; timestamps out of order."""
    records = impl(1 << 20, 100)
    assert records.append(Future(), 1_700_000_000_500, None, b"value", ())
    assert records.append(None, 1_700_000_000_400, b"", b"", [("h", b"x")])
    assert records.append(Future(), 1_700_000_000_600, b"key", None, ())
    return records


# Per record of _records_for_metadata: (timestamp, key size, value size).
RECORDS_FOR_METADATA = [
    (1_700_000_000_500, -1, 5),
    (1_700_000_000_400, 0, 0),
    (1_700_000_000_600, 3, -1),
]


def test_metadata_items_are_real_record_metadata(impl: Records) -> None:
    """What ``ProducerBatch.complete`` hands the futures: instances of the NamedTuple
    (no Python ``__new__`` ran), equal to, hashing as, pickling as, and behaving as ones
    built normally; the same before and after ``finish()``."""
    records = _records_for_metadata(impl)
    topic, partition = "orders", 7
    before = records.metadata(RecordMetadata, topic, partition, 100, -1)
    assert type(before) is list
    assert len(before) == records.record_count == 3
    for i, (item, (timestamp, key_size, value_size)) in enumerate(
        zip(before, RECORDS_FOR_METADATA, strict=True)
    ):
        normal = RecordMetadata(topic, partition, 100 + i, timestamp, key_size, value_size)
        assert type(item) is RecordMetadata
        assert isinstance(item, tuple)
        assert len(item) == 6
        assert item == normal
        assert tuple(item) == (topic, partition, 100 + i, timestamp, key_size, value_size)
        assert repr(item) == repr(normal)
        assert item.topic is topic
        assert item.partition == partition
        assert item.offset == 100 + i
        assert item.timestamp == timestamp
        assert (item.serialized_key_size, item.serialized_value_size) == (key_size, value_size)
        assert item.topic_partition == TopicPartition(topic, partition)
        assert type(item.topic_partition) is TopicPartition
        assert hash(item) == hash(normal)
        assert {normal: "found"}[item] == "found"
        assert item in {normal}
        assert item._asdict() == normal._asdict()
        replaced = item._replace(offset=-5)
        assert type(replaced) is RecordMetadata
        assert replaced == normal._replace(offset=-5)
        assert replaced[:2] == (topic, partition)
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            restored = pickle.loads(pickle.dumps(item, protocol))
            assert type(restored) is RecordMetadata
            assert restored == normal
        # Only the garbage collector's tracking differs, in the C one: see
        # test_c_metadata_of_atoms_is_not_tracked_by_the_garbage_collector.
        assert gc.is_tracked(item) == (gc.is_tracked(normal) and impl is PyBatchRecords)
    # A new list of new items each call; the same values after finish(), and after an
    # append it refused.
    again = records.metadata(RecordMetadata, topic, partition, 100, -1)
    assert again == before
    assert again is not before
    assert all(a is not b for a, b in zip(again, before, strict=True))
    records.finish()
    assert records.metadata(RecordMetadata, topic, partition, 100, -1) == before
    assert not records.append(None, 1, None, None, ())
    assert records.metadata(RecordMetadata, topic, partition, 100, -1) == before


@pytest.mark.parametrize(
    ("base_offset", "log_append_time", "offsets", "timestamps"),
    [
        (0, -1, [0, 1, 2], [t for t, _, _ in RECORDS_FOR_METADATA]),
        (12345, -1, [12345, 12346, 12347], [t for t, _, _ in RECORDS_FOR_METADATA]),
        (-1, -1, [-1, -1, -1], [t for t, _, _ in RECORDS_FOR_METADATA]),
        (-7, -2, [-1, -1, -1], [t for t, _, _ in RECORDS_FOR_METADATA]),  # any < 0
        (7, 1_700_000_000_123, [7, 8, 9], [1_700_000_000_123] * 3),
        (0, 0, [0, 1, 2], [0, 0, 0]),  # 0 is a LogAppendTime
        (-1, 5, [-1, -1, -1], [5, 5, 5]),
        (INT64_MIN, INT64_MIN, [-1, -1, -1], [t for t, _, _ in RECORDS_FOR_METADATA]),
    ],
)
def test_metadata_offsets_and_timestamps(
    impl: Records, base_offset: int, log_append_time: int, offsets: list[int], timestamps: list[int]
) -> None:
    """Offset base_offset + i (-1 for every record if base_offset < 0); the record's own
    timestamp, or log_append_time for every record if it is >= 0."""
    records = _records_for_metadata(impl)
    metadata = records.metadata(RecordMetadata, "t", 2, base_offset, log_append_time)
    assert metadata == [
        RecordMetadata("t", 2, offset, timestamp, key_size, value_size)
        for offset, timestamp, (_, key_size, value_size) in zip(
            offsets, timestamps, RECORDS_FOR_METADATA, strict=True
        )
    ]
    assert all(type(m.offset) is int and type(m.timestamp) is int for m in metadata)


def test_metadata_of_extreme_offsets_and_timestamps(impl: Records) -> None:
    """Offsets past 2**31 (and, as the Python reference's range() gives them, past
    INT64_MAX) and timestamps at both ends of int64 come back exactly."""
    high = [INT64_MAX, INT64_MAX - 1, INT64_MAX - 2**31, INT64_MAX - 2**32 - 1]
    low = [INT64_MIN, INT64_MIN + 1, INT64_MIN + 2**31, -1]  # deltas within int64
    for timestamps in (high, low):
        records = impl(1 << 20, 100)
        for timestamp in timestamps:
            assert records.append(None, timestamp, None, b"v", ())
        for base in (2**31 - 1, 2**31, 2**32 + 5, 2**53 + 1, INT64_MAX - 2, INT64_MAX):
            metadata = records.metadata(RecordMetadata, "t", 0, base, -1)
            assert [m.offset for m in metadata] == [base + i for i in range(4)]
            assert [m.timestamp for m in metadata] == timestamps
        for log_append_time in (2**31, INT64_MAX - 1, INT64_MAX):
            metadata = records.metadata(RecordMetadata, "t", 0, 0, log_append_time)
            assert [m.timestamp for m in metadata] == [log_append_time] * 4
            assert [m.offset for m in metadata] == [0, 1, 2, 3]
        records.finish()
        metadata = records.metadata(RecordMetadata, "t", 0, 2**40, -1)
        assert [(m.offset, m.timestamp) for m in metadata] == [
            (2**40 + i, timestamp) for i, timestamp in enumerate(timestamps)
        ]


def test_metadata_of_records_that_share_timestamps_and_sizes(impl: Records) -> None:
    """Runs of records with the same timestamp and sizes, then different, then the first
    again: each record's own values (the C metadata() reuses one int object for a value
    equal to the previous record's)."""
    fields = [(1_700_000_000_000, 300, 1_000)] * 3 + [(1_700_000_000_001, -1, 2_000)]
    fields += [(1_700_000_000_000, 300, 1_000)] * 2
    records = impl(1 << 20, 100)
    for timestamp, key_size, value_size in fields:
        key = None if key_size < 0 else b"k" * key_size
        assert records.append(None, timestamp, key, b"v" * value_size, ())
    metadata = records.metadata(RecordMetadata, "t", 0, 10, -1)
    assert [(m.timestamp, m.serialized_key_size, m.serialized_value_size) for m in metadata] == (
        fields
    )
    assert [m.offset for m in metadata] == list(range(10, 16))
    if impl is not PyBatchRecords:
        assert metadata[0].timestamp is metadata[2].timestamp
        assert metadata[0].serialized_value_size is metadata[1].serialized_value_size


def test_metadata_of_no_records(impl: Records) -> None:
    """[] for records never appended to, and for records that refused their only append
    (at record_capacity 0): before and after finish()."""
    empty, refused = impl(1 << 20, 10), impl(1 << 20, 0)
    assert not refused.append(None, 5, None, None, ())
    for records in (empty, refused):
        for finish in (False, True):
            if finish:
                assert records.finish() == b""
            for choice in METADATA_CHOICES:
                metadata = records.metadata(RecordMetadata, "t", 0, *choice)
                assert type(metadata) is list
                assert metadata == []
                assert records.metadata(tuple, "t", 0, *choice) == []


class Slotted(tuple[Any, ...]):
    """A tuple subclass without a __dict__."""

    __slots__ = ()


class WithDict(tuple[Any, ...]):
    """A tuple subclass with a __dict__."""


class NoPythonNew(tuple[Any, ...]):
    """Fails if its __new__ or __init__ runs: metadata() builds it as tuple.__new__."""

    __slots__ = ()

    def __new__(cls, *args: Any) -> NoPythonNew:
        raise AssertionError("metadata() ran __new__")

    def __init__(self, *args: Any) -> None:
        raise AssertionError("metadata() ran __init__")


class RecordMetadataSubclass(RecordMetadata):
    __slots__ = ()


@pytest.mark.parametrize(
    "metadata_type", [tuple, Slotted, WithDict, NoPythonNew, RecordMetadataSubclass]
)
def test_metadata_of_other_tuple_types(impl: Records, metadata_type: type[tuple[Any, ...]]) -> None:
    """Any tuple subclass tuple.__new__ builds; a plain tuple gives plain tuples."""
    records = _records_for_metadata(impl)
    metadata = records.metadata(metadata_type, "t", 1, 10, -1)
    assert [type(item) for item in metadata] == [metadata_type] * 3
    assert [tuple(item) for item in metadata] == [
        ("t", 1, 10 + i, timestamp, key_size, value_size)
        for i, (timestamp, key_size, value_size) in enumerate(RECORDS_FOR_METADATA)
    ]
    assert [hash(item) for item in metadata] == [hash(tuple(item)) for item in metadata]
    item: Any = metadata[0]
    if metadata_type is WithDict:
        assert item.__dict__ == {}
        item.extra = 1
    elif metadata_type is RecordMetadataSubclass:
        assert (item.offset, item.topic_partition) == (10, TopicPartition("t", 1))
    else:
        assert not hasattr(item, "__dict__")


@needs_c
@pytest.mark.parametrize(
    ("metadata_type", "topic", "untracked"),
    [
        (RecordMetadata, "t", True),
        (tuple, "t", True),
        (Slotted, "t", True),
        (RecordMetadataSubclass, "t", True),
        (WithDict, "t", False),  # its __dict__ could close a cycle
        (RecordMetadata, ["a topic that is a list"], False),  # so could a tracked item
    ],
)
def test_c_metadata_of_atoms_is_not_tracked_by_the_garbage_collector(
    metadata_type: type[tuple[Any, ...]], topic: Any, untracked: bool
) -> None:
    """Untracked as the collector untracks plain tuples of atoms: a send_batch() holds
    thousands until they are all in, and tracked each would be promoted towards the
    oldest generation, setting off full collections."""
    metadata = _records_for_metadata(c_records()).metadata(metadata_type, topic, 1, 10, -1)
    assert [gc.is_tracked(item) for item in metadata] == [not untracked] * 3
    assert [tuple(item)[2] for item in metadata] == [10, 11, 12]


NOT_TUPLE_TYPES: dict[str, Any] = {
    "an int": 5,
    "a str": "RecordMetadata",
    "None": None,
    "a RecordMetadata instance": RecordMetadata("t", 0, 0, 0, 0, 0),
    "list": list,
    "int": int,
    "object": object,
    "bytes": bytes,
    "type": type,
    # Tuple subclasses with their own layout and tp_new (struct sequences: they hold
    # more items than their length): tuple.__new__ refuses them ("not safe").
    "os.stat_result": os.stat_result,
    "time.struct_time": time.struct_time,
    "sys.version_info's type": type(sys.version_info),
    "sys.flags's type": type(sys.flags),
}


@pytest.mark.parametrize("records_before", [0, 2])
@pytest.mark.parametrize("metadata_type", NOT_TUPLE_TYPES.values(), ids=list(NOT_TUPLE_TYPES))
def test_metadata_type_must_be_a_tuple_type_tuple_new_builds(
    impl: Records, records_before: int, metadata_type: Any
) -> None:
    """TypeError, and the records as they were. The C one checks even without records;
    the Python one calls tuple.__new__ only per record, so it checks nothing then."""
    records = impl(1 << 20, 10)
    for i in range(records_before):
        assert records.append(None, i, None, b"v", ())
    before = state(records)
    if records_before == 0 and impl is PyBatchRecords:
        assert records.metadata(metadata_type, "t", 0, 0, -1) == []
    else:
        with pytest.raises(TypeError) as caught:
            records.metadata(metadata_type, "t", 0, 0, -1)
        assert type(caught.value) is TypeError
        assert str(caught.value)
    assert state(records) == before
    assert sizes(records) == [(i, -1, 1) for i in range(records_before)]


@pytest.mark.parametrize(
    "args",
    [(), (RecordMetadata,), (RecordMetadata, "t", 0, 0), (RecordMetadata, "t", 0, 0, -1, 1)],
    ids=["0", "1", "4", "6"],
)
def test_metadata_wrong_argument_count(impl: Records, args: tuple[Any, ...]) -> None:
    records = _records_for_metadata(impl)
    method: Any = records.metadata
    with pytest.raises(TypeError, match=None if impl is PyBatchRecords else "takes 5 arguments"):
        method(*args)
    if impl is not PyBatchRecords:  # C: positional only
        with pytest.raises(TypeError):
            method(RecordMetadata, "t", 0, 0, log_append_time=-1)
    assert sizes(records) == RECORDS_FOR_METADATA


BAD_NUMBERS: dict[str, tuple[Any, type[BaseException]]] = {
    "str": ("0", TypeError),
    "float": (0.0, TypeError),
    "None": (None, TypeError),
    "bytes": (b"\x00", TypeError),
    "2**63": (2**63, ValueError),
    "2**64": (2**64, ValueError),
    "below int64": (INT64_MIN - 1, ValueError),
    "-(2**64)": (-(2**64), ValueError),
}


@needs_c
@pytest.mark.parametrize("records_before", [0, 3])
@pytest.mark.parametrize("which", ["base_offset", "log_append_time"])
@pytest.mark.parametrize(("value", "error"), BAD_NUMBERS.values(), ids=list(BAD_NUMBERS))
def test_metadata_bad_offset_or_time(
    records_before: int, which: str, value: Any, error: type[BaseException]
) -> None:
    """The C one takes int64 ints only (the Python one, whatever range() and >= take)."""
    records = c_records()(1 << 20, 10)
    for i in range(records_before):
        assert records.append(None, i, b"k", None, ())
    numbers: dict[str, Any] = {"base_offset": 0, "log_append_time": -1, which: value}
    with pytest.raises(error, match=which) as caught:
        records.metadata(RecordMetadata, "t", 0, *numbers.values())
    assert type(caught.value) is error
    assert sizes(records) == [(i, 1, -1) for i in range(records_before)]


@needs_c
def test_metadata_does_not_leak_references() -> None:
    """The topic, the partition, the LogAppendTime and the type: each item holds one
    reference to each while it lives, none once it is gone; errors take none either."""
    records = c_records()(1 << 20, 1000)
    for i in range(140):
        assert records.append(None, 1_700_000_000_000 + i, b"k" if i % 2 else None, b"v" * i, ())
    topic = "".join(["top", "ic"])  # not interned: only ours
    partition = int("1234567")  # not a cached small int
    base_offset = int("4000000000")  # past 2**31
    log_append_time = int("1700000000999")
    objects: tuple[Any, ...] = (topic, partition, base_offset, log_append_time, RecordMetadata)
    refs = [sys.getrefcount(o) for o in objects]
    held = records.metadata(RecordMetadata, topic, partition, base_offset, log_append_time)
    holding = [sys.getrefcount(o) for o in objects]
    # The offsets are new ints; instances of a heap type hold it.
    assert [now - then for now, then in zip(holding, refs, strict=True)] == [140, 140, 0, 140, 140]
    del held
    assert [sys.getrefcount(o) for o in objects] == refs
    errors = 0
    for _ in range(300):
        for offset, time_ in ((base_offset, -1), (-1, log_append_time), (0, log_append_time)):
            records.metadata(RecordMetadata, topic, partition, offset, time_)
            records.metadata(tuple, topic, partition, offset, time_)
            records.metadata(Slotted, topic, partition, offset, time_)
        bad_types: tuple[Any, ...] = (list, os.stat_result, 5)
        for bad_type in bad_types:
            try:
                records.metadata(bad_type, topic, partition, base_offset, log_append_time)
            except TypeError:
                errors += 1
        try:
            records.metadata(RecordMetadata, topic, partition, base_offset, 2**64)
        except ValueError:
            errors += 1
    assert errors == 300 * 4
    del offset, time_
    assert [sys.getrefcount(o) for o in objects] == refs


@needs_c
def test_metadata_memory_is_released() -> None:
    """2,000 calls of 140 records: every item, int and list is freed (tracemalloc traces
    what the C code allocates through Python's allocators)."""
    records = c_records()(1 << 20, 1000)
    for i in range(140):
        assert records.append(None, 1_700_000_000_000 + i, None, b"v", ())

    def call(times: int) -> None:
        for n in range(times):
            # New offset and timestamp ints (past the small-int cache) in every call.
            records.metadata(RecordMetadata, "t", 0, 1000 + n, -1 if n % 2 else 1000 + n)

    call(50)  # warm up the allocators
    tracemalloc.start()
    try:
        call(100)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call(2000)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024
    assert peak - before < 1024 * 1024  # one call's items at a time


@needs_c
def test_metadata_while_a_finalizer_appends_to_the_batch() -> None:
    """Building the items allocates objects the garbage collector tracks, so a
    collection, and the Python code it runs (here a gc callback; a finalizer could do the
    same), may happen mid-call and append to this very batch, moving its per-record
    infos: the C one gives the records there were once it had checked its arguments
    (checking the type allocates too), each as it was appended."""
    records = c_records()(1 << 20, 1 << 20)
    for i in range(140):
        assert records.append(None, i, None, b"v", ())
    appended = [0]

    def append_more(phase: str, info: dict[str, Any]) -> None:
        for _ in range(5 if phase == "start" and appended[0] < 400 else 0):
            assert records.append(None, 10_000 + appended[0], b"k", None, ())
            appended[0] += 1

    thresholds = gc.get_threshold()
    gc.callbacks.append(append_more)
    gc.set_threshold(1)
    try:
        metadata = records.metadata(RecordMetadata, "t", 0, 0, -1)
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(append_more)
    assert records.record_count == 140 + appended[0]
    assert records.record_count > 256  # past the infos' capacity at 140 records: moved
    assert 140 <= len(metadata) < records.record_count
    expected = [(i, i, -1, 1) for i in range(140)]
    expected += [(140 + n, 10_000 + n, 1, -1) for n in range(appended[0])]
    assert [
        (m.offset, m.timestamp, m.serialized_key_size, m.serialized_value_size) for m in metadata
    ] == expected[: len(metadata)]
    assert metadata == records.metadata(RecordMetadata, "t", 0, 0, -1)[: len(metadata)]


# ----------------------------------------------------------------------- subclasses, GC


class Finalized:
    """Sets ``flag[0]`` when it dies."""

    def __init__(self, flag: list[bool]) -> None:
        self.flag = flag

    def __del__(self) -> None:
        self.flag[0] = True


def _subclass() -> Any:
    class Sub(c_records()):  # type: ignore[misc]
        __slots__ = ("__weakref__", "cycle", "finalizer", "tag")

        def __init__(self, tag: str, *, size: int, capacity: int) -> None:
            super().__init__(size, capacity)
            self.tag = tag
            self.cycle: Any = None
            self.finalizer: Any = None

    return Sub


@needs_c
def test_a_subclass_with_slots_and_its_own_init() -> None:
    sub = _subclass()("t", size=1 << 20, capacity=3)
    assert isinstance(sub, c_records())
    assert sub.tag == "t"  # type: ignore[attr-defined]
    assert state(sub) == (0, 0, 1 << 20, 3, -1, -1, False, [])
    assert sub.append(None, 5, b"k", b"v", [("h", None)])
    reference = PyBatchRecords(1 << 20, 3)
    reference.append(None, 5, b"k", b"v", [("h", None)])
    assert sub.finish() == reference.finish()
    # ProducerBatch's __init__ passes the records' limits on.
    batch = ProducerBatch("t", 0, 0, 0.0, batch_size=16_384, charge=lambda n: False)
    assert (batch.max_records_size, batch.record_capacity) == (16_384 - 61, 1)
    assert batch.try_append(None, (5, b"k", b"v", ()))
    assert not batch.try_append(None, (5, b"k", b"v", ()))  # at capacity, not charged more
    assert batch.full


@needs_c
def test_a_subclass_in_a_reference_cycle_is_collected_with_its_futures() -> None:
    sub = _subclass()("t", size=1 << 20, capacity=10)
    future = Future()
    future.owner = sub  # type: ignore[attr-defined]  # through the futures list
    assert sub.append(future, 1, None, b"v", ())
    sub.cycle = sub  # through a slot
    flag = [False]
    sub.finalizer = Finalized(flag)
    assert gc.is_tracked(sub)
    assert sub.futures in gc.get_referents(sub)
    assert type(sub) in gc.get_referents(sub)
    dead_sub, dead_future = weakref.ref(sub), weakref.ref(future)
    del sub, future
    gc.collect()
    assert dead_sub() is None
    assert dead_future() is None
    assert flag[0]


@needs_c
def test_a_subclass_with_a_dict_in_a_reference_cycle_is_collected() -> None:
    class WithDict(c_records()):  # type: ignore[misc]
        pass

    records = WithDict(1 << 20, 10)
    flag = [False]
    records.cycle = records
    records.finalizer = Finalized(flag)
    future = Future()
    future.owner = records  # type: ignore[attr-defined]
    assert records.append(future, 1, None, None, ())
    dead_records, dead_future = weakref.ref(records), weakref.ref(future)
    del records, future
    gc.collect()
    assert dead_records() is None
    assert dead_future() is None
    assert flag[0]


@needs_c
def test_producer_batch_in_a_reference_cycle_is_collected() -> None:
    """ProducerBatch has no __weakref__: a finalizer in one of its slots tells."""
    batch = ProducerBatch("t", 0, 0, 0.0, batch_size=16_384)
    future = Future()
    future.batch = batch  # type: ignore[attr-defined]
    assert batch.try_append(future, (5, None, b"v", ()))
    flag = [False]
    batch.done_callbacks = [Finalized(flag).__del__, batch.close]
    dead_future = weakref.ref(future)
    del batch, future
    gc.collect()
    assert flag[0]
    assert dead_future() is None


@pytest.mark.parametrize("subclass", [False, True])
@pytest.mark.parametrize("finish", [False, True])
def test_futures_are_released_when_the_records_die(
    impl: Records, finish: bool, subclass: bool
) -> None:
    """By reference counting alone (no cycle): the futures, and the type (a heap type,
    which each instance holds)."""
    cls = _subclass_plain(impl) if subclass else impl
    type_refs = sys.getrefcount(cls)
    futures = [Future() for _ in range(100)]
    dead = [weakref.ref(future) for future in futures]
    records = cls(1 << 20, 1000)
    for i, future in enumerate(futures):
        assert records.append(future, i, None, b"v", ())
    if finish:
        records.finish()
    assert sys.getrefcount(cls) == type_refs + 1
    del futures, future, records
    assert all(ref() is None for ref in dead)
    assert sys.getrefcount(cls) == type_refs


def _subclass_plain(base: Records) -> Records:
    class Plain(base):  # type: ignore[valid-type,misc]
        __slots__ = ("extra",)

    cls: Records = Plain
    return cls


@needs_c
def test_many_batches_do_not_leak() -> None:
    """Append and finish (or drop unfinished) many batches: the shared future, key and
    value keep their reference counts, and the memory is released (tracemalloc traces
    the C buffers: PyMem)."""
    cls = c_records()
    future, key, value = Future(), b"k" * 10, b"v" * 100
    refs = sys.getrefcount(future), sys.getrefcount(key), sys.getrefcount(value)

    def fill(batches: int) -> None:
        for n in range(batches):
            records = cls(16_384, 1 << 30)
            while records.append(future, n, key, value, ()):
                pass
            if n % 2:
                records.finish()

    fill(10)  # warm up the allocators
    tracemalloc.start()
    try:
        fill(100)
        before = tracemalloc.get_traced_memory()[0]
        fill(1400)  # ~200k records
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024
    assert (sys.getrefcount(future), sys.getrefcount(key), sys.getrefcount(value)) == refs


# ----------------------------------------------------------------------- which is used


def test_the_compiled_records_are_in_use() -> None:
    """``batch_records.BatchRecords`` is the C one, and ``ProducerBatch`` is built on it.
    Fails where ``asyncproducer._speedups`` did not build, so that a silent fallback (a
    setup.py or compiler problem) is noticed: CI has a C compiler. On a machine without
    one, set ``ASYNCPRODUCER_PURE_PYTHON_OK=1`` to accept the pure-Python records (this
    test then skips)."""
    if _native.speedups is None:
        if os.environ.get("ASYNCPRODUCER_PURE_PYTHON_OK") == "1":
            pytest.skip("no asyncproducer._speedups: ASYNCPRODUCER_PURE_PYTHON_OK=1 accepts it")
        pytest.fail(
            "asyncproducer._speedups is not built (or ASYNCPRODUCER_NO_SPEEDUPS=1 is set): "
            "reinstall (pip install -e .) with a C compiler and the Python headers, or set "
            "ASYNCPRODUCER_PURE_PYTHON_OK=1"
        )
    assert speedups is not None
    assert batch_records.SPEEDUPS is True
    assert batch_records.BatchRecords is speedups.BatchRecords
    assert speedups.BatchRecords in ProducerBatch.__mro__
    assert PyBatchRecords not in ProducerBatch.__mro__


def test_without_the_extension_everything_falls_back_to_python() -> None:
    """``ASYNCPRODUCER_NO_SPEEDUPS=1``, in a fresh interpreter: what an install without a
    C compiler runs."""
    run_without_speedups(
        """
        from asyncproducer import _native, _staging
        from asyncproducer._batch import ProducerBatch
        from asyncproducer._types import RecordMetadata
        from asyncproducer.protocol import batch_records

        assert _native.speedups is None
        assert batch_records.SPEEDUPS is False
        assert batch_records.BatchRecords is batch_records.PyBatchRecords
        assert batch_records.PyBatchRecords in ProducerBatch.__mro__
        assert _staging.Appender is None
        batch = ProducerBatch("t", 0, 0, 0.0, batch_size=100)
        assert batch.try_append(None, (1, b"k", b"v", ()))
        assert batch.metadata(RecordMetadata, "t", 0, 5, -1) == [
            RecordMetadata("t", 0, 5, 1, 1, 1)
        ]
        print("ok")
        """
    )
