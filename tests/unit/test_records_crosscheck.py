"""Cross-implementation checks: our batches read by other clients, theirs read by us.

Readers and writers we did not write: kafka-python's ``kafka.record.default_records``
(pure Python; its snappy codec needs the ``python-snappy`` package) and aiokafka's
``aiokafka.record.default_records``, both its C extension and its pure-Python fallback
(its codecs come from ``cramjam``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from aiokafka.record import default_records as aiokafka_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    # kafka-python's package import uses importlib.resources.read_text, deprecated on
    # Python 3.11; the suite turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record import default_records as kafka_python_records

from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.records import RecordBatchBuilder, decode_batches

Header = tuple[str, bytes | None]
Record = tuple[int, bytes | None, bytes | None, list[Header]]

CODECS = list(CompressionType)
SETTINGS = settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
BASE_TS = 1_700_000_000_000

READERS: dict[str, Callable[[bytes], Any]] = {
    "kafka-python": kafka_python_records.DefaultRecordBatch,
    "aiokafka": aiokafka_records.DefaultRecordBatch,
    "aiokafka-py": aiokafka_records._DefaultRecordBatchPy,
}
BUILDERS: dict[str, Callable[..., Any]] = {
    "kafka-python": kafka_python_records.DefaultRecordBatchBuilder,
    "aiokafka": aiokafka_records.DefaultRecordBatchBuilder,
    "aiokafka-py": aiokafka_records._DefaultRecordBatchBuilderPy,
}

records_strategy = st.lists(
    st.tuples(
        st.integers(-50_000, 50_000),
        st.none() | st.binary(max_size=40),
        st.none() | st.binary(max_size=300),
        st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)), max_size=3),
    ),
    min_size=1,
    max_size=25,
)
producer_state = st.one_of(
    st.just((-1, -1, -1, False)),
    st.tuples(
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**15 - 1),
        st.integers(0, 2**31 - 1),
        st.booleans(),
    ),
)
# The other builders send a batch uncompressed when compression does not shrink it, so
# every generated batch ends with a compressible record to keep the codec in play.
COMPRESSIBLE: Record = (0, b"pad", b"compressible " * 200, [("pad", b"z" * 50)])


def _as_bytes(data: Any) -> bytes | None:
    return None if data is None else bytes(data)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("codec", CODECS)
@given(records=records_strategy, state=producer_state)
@SETTINGS
def test_our_batches_read_by_other_clients(
    codec: CompressionType,
    reader: str,
    records: list[Record],
    state: tuple[int, int, int, bool],
) -> None:
    records = [*records, COMPRESSIBLE]
    producer_id, epoch, sequence, transactional = state
    builder = RecordBatchBuilder(batch_size=1 << 20, compression=codec)
    for ts, key, value, headers in records:
        assert builder.try_append(BASE_TS + ts, key, value, headers) is not None
    blob = builder.build(
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        is_transactional=transactional,
    )

    batch = READERS[reader](blob)
    assert batch.validate_crc()
    assert batch.compression_type == codec
    assert batch.base_offset == 0
    assert batch.producer_id == producer_id
    assert batch.producer_epoch == epoch
    assert batch.base_sequence == sequence
    assert bool(batch.is_transactional) is transactional
    decoded = list(batch)
    assert len(decoded) == len(records)
    for offset, (record, (ts, key, value, headers)) in enumerate(
        zip(decoded, records, strict=True)
    ):
        assert record.offset == offset
        assert record.timestamp == BASE_TS + ts
        assert _as_bytes(record.key) == key
        assert _as_bytes(record.value) == value
        assert [(k, _as_bytes(v)) for k, v in record.headers] == headers


def _their_batch(
    builder_name: str, codec: CompressionType, records: Sequence[Record], state: tuple[int, ...]
) -> bytes:
    producer_id, epoch, sequence, transactional = state
    builder = BUILDERS[builder_name](
        2, int(codec), int(transactional), producer_id, epoch, sequence, 1 << 20
    )
    for offset, (ts, key, value, headers) in enumerate(records):
        assert builder.append(offset, BASE_TS + ts, key, value, headers) is not None
    return bytes(builder.build())


@pytest.mark.parametrize("builder_name", BUILDERS)
@pytest.mark.parametrize("codec", CODECS)
@given(records=records_strategy, state=producer_state)
@SETTINGS
def test_other_clients_batches_read_by_us(
    codec: CompressionType,
    builder_name: str,
    records: list[Record],
    state: tuple[int, int, int, bool],
) -> None:
    records = [*records, COMPRESSIBLE]
    blob = _their_batch(builder_name, codec, records, state)

    (batch,) = decode_batches(blob)
    producer_id, epoch, sequence, transactional = state
    assert batch.compression is codec
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (
        producer_id,
        epoch,
        sequence,
    )
    assert batch.is_transactional is transactional
    assert batch.last_offset_delta == len(records) - 1
    assert batch.max_timestamp == BASE_TS + max(r[0] for r in records)
    assert len(batch.records) == len(records)
    for offset, (record, (ts, key, value, headers)) in enumerate(
        zip(batch.records, records, strict=True)
    ):
        assert record.offset == offset
        assert record.timestamp == BASE_TS + ts
        assert record.key == key
        assert record.value == value
        assert record.headers == tuple(headers)


@pytest.mark.parametrize("codec", CODECS)
def test_same_records_decode_the_same_from_every_writer(codec: CompressionType) -> None:
    records: list[Record] = [
        (0, b"key", b"value", [("trace", b"abc"), ("nil", None)]),
        (-3, None, b"", []),
        (9, b"", None, [("\u00e9t\u00e9", b"\x00\xff")]),
        COMPRESSIBLE,
    ]
    state = (1000, 3, 77, True)
    ours = RecordBatchBuilder(batch_size=1 << 20, compression=codec)
    for ts, key, value, headers in records:
        ours.try_append(BASE_TS + ts, key, value, headers)
    ours_blob = ours.build(
        producer_id=1000, producer_epoch=3, base_sequence=77, is_transactional=True
    )
    (expected,) = decode_batches(ours_blob)
    for name in BUILDERS:
        (theirs,) = decode_batches(_their_batch(name, codec, records, state))
        # The CRC and partitionLeaderEpoch (-1 from Java and us, 0 from these two)
        # may differ; every other field and record must not.
        assert theirs.records == expected.records, name
        for field in ("attributes", "last_offset_delta", "base_timestamp", "max_timestamp"):
            assert getattr(theirs, field) == getattr(expected, field), (name, field)
