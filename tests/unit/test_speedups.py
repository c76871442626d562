"""The C record encoder (``asyncproducer._speedups``) against its Python reference
(``encoding.encode_pending_py``), our decoder and kafka-python's; its errors on bad input.

The C module is optional at install time (no compiler: the Python encoder is used), so
most tests here skip without it; ``test_the_compiled_encoder_is_in_use`` does not, so that
a build that silently fell back does not pass unnoticed where a compiler exists.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable
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

from asyncproducer.protocol import encoding
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import encode_pending_py, seal_batch
from asyncproducer.protocol.records import decode_batches

speedups: ModuleType | None
try:
    from asyncproducer import _speedups as speedups
except ImportError:
    speedups = None

needs_c = pytest.mark.skipif(speedups is None, reason="asyncproducer._speedups did not build")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

Encode = Callable[[int, Any], tuple[bytes, tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def c_encode() -> Encode:
    assert speedups is not None
    return speedups.encode_pending  # type: ignore[no-any-return]


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
    st.just(()),  # the common case, twice as likely
    st.lists(header, min_size=1, max_size=6),
    st.lists(header, min_size=1, max_size=6).map(tuple),
)


@st.composite
def batches(draw: st.DrawFn, min_size: int = 0, max_size: int = 300) -> tuple[int, list[Any]]:
    """(base_timestamp, pending): timestamps whose deltas from the base are small,
    negative, zero, or as large as int64 allows (base and timestamps within int64).

    Up to 25 distinct records, repeated in turn up to the drawn count: a batch of 300
    records fits in hypothesis's data budget, and its offset deltas still cross the
    varint sizes (1 byte up to 63, 2 from 64)."""
    base = draw(st.one_of(st.just(0), st.integers(0, 2**41), st.integers(INT64_MIN, INT64_MAX)))
    low, high = max(INT64_MIN, INT64_MIN - base), min(INT64_MAX, INT64_MAX - base)
    delta = st.one_of(
        st.integers(max(low, -1000), min(high, 5000)),
        st.just(0),
        st.integers(low, high),
        st.sampled_from([low, high]),
    )
    count = draw(st.integers(min_size, max_size) | st.just(max_size))
    distinct = draw(st.lists(st.tuples(delta, data, data, headers), min_size=1, max_size=25))
    records = [distinct[i % len(distinct)] for i in range(count)]
    pending = [
        (base + d, k, v, h, -1 if k is None else len(k), -1 if v is None else len(v))
        for d, k, v, h in records
    ]
    return base, pending


@needs_c
@given(batches())
@SETTINGS
def test_c_encoder_matches_the_python_one(batch: tuple[int, list[Any]]) -> None:
    base, pending = batch
    expected = encode_pending_py(base, pending)
    result = c_encode()(base, pending)
    assert result == expected
    assert type(result[0]) is bytes
    assert all(type(column) is tuple for column in result[1:])
    assert c_encode()(base, tuple(pending)) == expected  # a tuple of records too
    assert c_encode()(base, [list(record) for record in pending]) == expected


@needs_c
@given(batches(min_size=1, max_size=40))
@settings(SETTINGS, max_examples=40)
def test_c_encoded_batches_decode_with_ours_and_kafka_python(
    batch: tuple[int, list[Any]],
) -> None:
    base, pending = batch
    records, timestamps, key_sizes, value_sizes = c_encode()(base, pending)
    blob = seal_batch(
        records,
        count=len(pending),
        base_timestamp=base,
        max_timestamp=max(timestamps),
        compression=CompressionType.NONE,
        producer_id=7,
        producer_epoch=1,
        base_sequence=100,
    )
    expected = [(ts, key, value, [tuple(h) for h in hs]) for ts, key, value, hs, _, _ in pending]
    assert list(timestamps) == [p[0] for p in pending]
    assert list(key_sizes) == [p[4] for p in pending]
    assert list(value_sizes) == [p[5] for p in pending]

    (ours,) = decode_batches(blob)
    assert ours.base_timestamp == base
    assert [r.offset for r in ours.records] == list(range(len(pending)))
    assert [(r.timestamp, r.key, r.value, list(r.headers)) for r in ours.records] == expected

    theirs = DefaultRecordBatch(blob)
    assert theirs.validate_crc()
    assert (theirs.producer_id, theirs.base_sequence) == (7, 100)
    decoded = list(theirs)
    assert [r.offset for r in decoded] == list(range(len(pending)))
    assert [
        (
            r.timestamp,
            _as_bytes(r.key),
            _as_bytes(r.value),
            [(k, _as_bytes(v)) for k, v in r.headers],
        )
        for r in decoded
    ] == expected


def _as_bytes(data: Any) -> bytes | None:
    return None if data is None else bytes(data)


@needs_c
def test_edge_cases_match() -> None:
    pending: list[Any] = [
        (5, None, None, (), -1, -1),
        (5, b"", b"", [], 0, 0),
        (
            4,
            b"k" * 20_000,
            b"v" * 70_000,
            [("", b""), ("\u00e9t\u00e9 \U0001f600", None)],
            20_000,
            70_000,
        ),
        (INT64_MAX, b"k", None, None, 1, -1),  # None headers: no headers, as in Python
        (5 - 2**62, None, b"x", (["list", b"pair"],), -1, 1),
    ]
    assert c_encode()(5, pending) == encode_pending_py(5, pending)
    for base, timestamp in [(INT64_MIN, -1), (0, INT64_MIN), (-1, INT64_MAX - 1)]:
        extreme = [(timestamp, None, None, (), -1, -1)]  # a delta of INT64_MAX or INT64_MIN
        assert c_encode()(base, extreme) == encode_pending_py(base, extreme)
    assert c_encode()(0, []) == encode_pending_py(0, []) == (b"", (), (), ())


def _record(**fields: Any) -> tuple[Any, ...]:
    record: dict[str, Any] = dict(
        timestamp=1000, key=b"k", value=b"v", headers=(), key_size=1, value_size=1
    )
    record.update(fields)
    return tuple(record.values())


# (base_timestamp, pending, the exception, whether the Python encoder raises it too)
BAD_INPUT: dict[str, tuple[Any, Any, type[BaseException], bool]] = {
    "base not int": ("0", [_record()], TypeError, True),
    "base out of int64": (2**63, [_record(timestamp=2**63)], ValueError, False),
    "pending not a sequence": (0, 5, TypeError, True),
    "pending a generator": (0, (r for r in [_record()]), TypeError, False),
    "record not a tuple": (0, [5], TypeError, True),
    "record of 4 items": (0, [_record()[:4]], ValueError, True),
    "record of 7 items": (0, [(*_record(), 0)], ValueError, True),
    "timestamp str": (0, [_record(timestamp="1")], TypeError, True),
    "timestamp None": (0, [_record(timestamp=None)], TypeError, True),
    "timestamp float": (0, [_record(timestamp=1.5)], TypeError, True),
    "timestamp out of int64": (0, [_record(timestamp=2**63)], ValueError, True),
    "timestamp below int64": (0, [_record(timestamp=-(2**63) - 1)], ValueError, True),
    "delta out of int64": (-1, [_record(timestamp=INT64_MAX)], ValueError, True),
    "delta below int64": (1, [_record(timestamp=INT64_MIN)], ValueError, True),
    "key str": (0, [_record(key="k")], TypeError, True),
    "key int": (0, [_record(key=1)], TypeError, True),
    "key bytearray": (0, [_record(key=bytearray(b"k"))], TypeError, False),
    "value str": (0, [_record(value="v")], TypeError, True),
    "value memoryview": (0, [_record(value=memoryview(b"v"))], TypeError, False),
    "headers int": (0, [_record(headers=5)], TypeError, True),
    "headers str": (0, [_record(headers="ab")], TypeError, False),
    "headers dict": (0, [_record(headers={"k": b"v"})], TypeError, False),
    "header not a pair": (0, [_record(headers=[5])], TypeError, True),
    "header of 1 item": (0, [_record(headers=[("k",)])], ValueError, True),
    "header of 3 items": (0, [_record(headers=[("k", b"v", b"w")])], ValueError, True),
    "header key bytes": (0, [_record(headers=[(b"k", b"v")])], TypeError, False),
    "header key None": (0, [_record(headers=[(None, b"v")])], TypeError, False),
    "header value str": (0, [_record(headers=[("k", "v")])], TypeError, True),
    "header value int": (0, [_record(headers=[("k", 5)])], TypeError, True),
    "header key lone surrogate": (
        0,
        [_record(headers=[("\ud800", b"v")])],
        UnicodeEncodeError,
        True,
    ),
    "key_size str": (0, [_record(key_size="1")], TypeError, False),
    "value_size None": (0, [_record(value_size=None)], TypeError, False),
    "second record bad": (0, [_record(), _record(key="k")], TypeError, True),
}


@needs_c
@pytest.mark.parametrize(
    ("base", "pending", "error", "python_too"), BAD_INPUT.values(), ids=list(BAD_INPUT)
)
def test_bad_input_raises(
    base: Any, pending: Any, error: type[BaseException], python_too: bool
) -> None:
    """The C encoder checks exact types (tuple or list, bytes, str, int) and never runs
    Python code; the Python one is looser (any iterable, any bytes-like object), and
    where it rejects an input it raises the same exception type, except for a header key
    that is not str (AttributeError from ``.encode``)."""
    with pytest.raises(error) as caught:
        c_encode()(base, pending)
    assert type(caught.value) is error
    assert str(caught.value)
    if python_too:
        with pytest.raises(error):
            encode_pending_py(base, pending)


@needs_c
@pytest.mark.parametrize("args", [(), (0,), (0, [], 1)])
def test_wrong_argument_count(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match="takes 2 arguments"):
        c_encode()(*args)


@needs_c
def test_a_finalizer_that_changes_the_list_does_not_crash_it() -> None:
    """A garbage collection during the encoder's allocations may run a finalizer that
    changes ``pending``; the encoder then raises RuntimeError or encodes what is there,
    never reads freed memory (run this file under PYTHONMALLOC=debug to see it)."""
    records = [_record(key=b"%d" % i * 50) for i in range(50)]
    expected = encode_pending_py(0, records), encode_pending_py(0, [])
    pending: list[Any] = []

    class Clearer:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            pending.clear()

    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        for _ in range(20):
            pending[:] = records
            Clearer()
            try:
                result = c_encode()(0, pending)
            except RuntimeError as exc:
                result = exc
            assert result in expected or "changed size" in str(result)
    finally:
        gc.set_threshold(*threshold)
        gc.collect()


def test_without_the_extension_encoding_falls_back_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A private copy of the encoding module, loaded where ``_speedups`` cannot be
    imported (as after an install without a compiler)."""
    monkeypatch.setitem(sys.modules, "asyncproducer._speedups", None)  # import fails
    spec = importlib.util.find_spec("asyncproducer.protocol.encoding")
    assert spec is not None
    assert spec.loader is not None
    fallback = importlib.util.module_from_spec(spec)  # not put in sys.modules
    spec.loader.exec_module(fallback)
    assert fallback.SPEEDUPS is False
    assert fallback.encode_pending is fallback.encode_pending_py
    assert fallback.encode_pending(1, [_record()]) == encode_pending_py(1, [_record()])


def test_the_compiled_encoder_is_in_use() -> None:
    """``encoding.encode_pending`` is the C one. Fails where ``asyncproducer._speedups``
    did not build, so that a silent fallback (a setup.py or compiler problem) is noticed:
    CI has a C compiler. On a machine without one, set ``ASYNCPRODUCER_PURE_PYTHON_OK=1``
    to accept the pure-Python encoder (this test then skips)."""
    if speedups is None:
        if os.environ.get("ASYNCPRODUCER_PURE_PYTHON_OK") == "1":
            pytest.skip("no asyncproducer._speedups: ASYNCPRODUCER_PURE_PYTHON_OK=1 accepts it")
        pytest.fail(
            "asyncproducer._speedups is not built: reinstall (pip install -e .) with a C "
            "compiler and the Python headers, or set ASYNCPRODUCER_PURE_PYTHON_OK=1"
        )
    assert encoding.SPEEDUPS is True
    assert encoding.encode_pending is speedups.encode_pending
    assert encoding.encode_pending is not encode_pending_py
