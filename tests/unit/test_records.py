"""Record batch v2: varints, round trips, corruption, the batch size rule."""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Sequence

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncproducer.errors import CorruptRecordError, UnsupportedCompressionTypeError
from asyncproducer.protocol._varint import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    decode_varint,
    encode_varint,
    size_of_varint,
    unzigzag,
    zigzag,
)
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import record_size
from asyncproducer.protocol.records import (
    BARE_RECORD_OVERHEAD,
    BATCH_HEADER_SIZE,
    DecodedBatch,
    RecordBatchBuilder,
    decode_batches,
    record_size_upper_bound,
    rewrite_producer_state,
)

Header = tuple[str, bytes | None]
Record = tuple[int, bytes | None, bytes | None, list[Header]]

CODECS = list(CompressionType)
SETTINGS = settings(deadline=None, max_examples=75, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- varints

KNOWN_ENCODINGS = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (-65, "8101"),
    (INT32_MAX, "feffffff0f"),
    (INT32_MIN, "ffffffff0f"),
    (INT64_MAX, "feffffffffffffffff01"),
    (INT64_MIN, "ffffffffffffffffff01"),
]


@pytest.mark.parametrize(("value", "hex_bytes"), KNOWN_ENCODINGS)
def test_varint_known_encodings(value: int, hex_bytes: str) -> None:
    encoded = encode_varint(value)
    assert encoded.hex() == hex_bytes
    assert size_of_varint(value) == len(encoded)
    assert decode_varint(encoded + b"\xaa", 0) == (value, len(encoded))
    assert unzigzag(zigzag(value)) == value


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 1 << 70])
def test_varint_rejects_values_beyond_int64(value: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        encode_varint(value)


@given(st.integers(INT64_MIN, INT64_MAX))
@settings(deadline=None, max_examples=300)
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == size_of_varint(value) <= 10
    assert decode_varint(b"\x00" + encoded, 1) == (value, 1 + len(encoded))


def test_varint_decode_limits() -> None:
    assert decode_varint(encode_varint(INT32_MIN), 0, 5) == (INT32_MIN, 5)
    with pytest.raises(ValueError, match="longer than 5"):
        decode_varint(encode_varint(1 << 40), 0, 5)
    with pytest.raises(ValueError, match="out of range"):
        decode_varint(b"\xff\xff\xff\xff\x7f", 0, 5)  # 35 bits in 5 bytes
    with pytest.raises(ValueError, match="longer than 10"):
        decode_varint(b"\xff" * 11, 0)
    with pytest.raises(ValueError, match="data ends"):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(ValueError, match="data ends"):
        decode_varint(b"", 0)


# --------------------------------------------------------------------------- helpers

header_keys = st.text(max_size=12)  # includes non-ASCII and the empty key
header_values = st.none() | st.binary(max_size=20)
records_strategy = st.lists(
    st.tuples(
        st.integers(-100_000, 100_000),  # timestamp offset from the first: negative deltas too
        st.none() | st.binary(max_size=40),
        st.none() | st.binary(max_size=200),
        st.lists(st.tuples(header_keys, header_values), max_size=3),
    ),
    min_size=1,
    max_size=30,
)
producer_state = st.tuples(
    st.integers(0, 2**63 - 1),
    st.integers(0, 2**15 - 1),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)


def build_batch(
    records: Sequence[Record],
    codec: CompressionType,
    base_ts: int = 1_700_000_000_000,
    **producer: int | bool,
) -> bytes:
    builder = RecordBatchBuilder(batch_size=1 << 30, compression=codec)
    for index, (ts, key, value, headers) in enumerate(records):
        assert builder.try_append(base_ts + ts, key, value, headers) == index
    assert builder.record_count == len(records)
    assert builder.max_timestamp == base_ts + max(r[0] for r in records)
    estimate = builder.estimated_size
    batch = builder.build(**producer)  # type: ignore[arg-type]
    assert len(batch) <= estimate
    return batch


def assert_records(batch: DecodedBatch, records: Sequence[Record], base_ts: int) -> None:
    assert len(batch.records) == len(records)
    for index, (decoded, (ts, key, value, headers)) in enumerate(
        zip(batch.records, records, strict=True)
    ):
        assert decoded.offset == index
        assert decoded.timestamp == base_ts + ts
        assert decoded.key == key
        assert decoded.value == value
        assert decoded.headers == tuple(headers)
        assert decoded.attributes == 0


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", CODECS)
@given(records=records_strategy, state=producer_state)
@SETTINGS
def test_round_trip(
    codec: CompressionType, records: list[Record], state: tuple[int, int, int, bool]
) -> None:
    producer_id, epoch, sequence, transactional = state
    base_ts = 1_700_000_000_000
    blob = build_batch(
        records,
        codec,
        base_ts,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        is_transactional=transactional,
    )
    (batch,) = decode_batches(blob)
    assert batch.compression is codec
    assert batch.magic == 2
    assert batch.base_offset == 0
    assert batch.partition_leader_epoch == -1
    assert batch.producer_id == producer_id
    assert batch.producer_epoch == epoch
    assert batch.base_sequence == sequence
    assert batch.is_transactional is transactional
    assert batch.is_control is False
    assert batch.timestamp_type == 0
    assert batch.last_offset_delta == len(records) - 1
    assert batch.base_timestamp == base_ts + records[0][0]
    assert batch.max_timestamp == base_ts + max(r[0] for r in records)
    assert batch.crc == crc32c.crc32c(blob[21:])
    assert_records(batch, records, base_ts)


def test_defaults_are_a_non_idempotent_batch() -> None:
    (batch,) = decode_batches(build_batch([(0, b"k", b"v", [])], CompressionType.NONE))
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (-1, -1, -1)
    assert batch.is_transactional is False
    assert batch.attributes == 0


def test_explicit_base_timestamp_allows_negative_first_delta() -> None:
    builder = RecordBatchBuilder(batch_size=1000, base_timestamp=5_000)
    builder.try_append(4_000, None, b"a")
    builder.try_append(6_000, None, b"b")
    (batch,) = decode_batches(builder.build())
    assert batch.base_timestamp == 5_000
    assert [r.timestamp for r in batch.records] == [4_000, 6_000]
    assert batch.max_timestamp == 6_000


def test_several_batches_in_one_blob() -> None:
    first = build_batch([(0, b"a", b"1", [])], CompressionType.NONE)
    second = build_batch([(0, b"b", b"2", []), (1, b"c", b"3", [])], CompressionType.ZSTD)
    batches = decode_batches(first + second)
    assert [len(b.records) for b in batches] == [1, 2]
    assert [r.key for b in batches for r in b.records] == [b"a", b"b", b"c"]
    assert decode_batches(b"") == []


def test_log_append_time_batches_use_the_batch_timestamp() -> None:
    blob = bytearray(build_batch([(0, None, b"a", []), (7, None, b"b", [])], CompressionType.NONE))
    blob[22] |= 0x08  # timestampType = LogAppendTime (low byte of the attributes)
    struct.pack_into(">q", blob, 35, 99)  # maxTimestamp, as the broker sets it
    struct.pack_into(">I", blob, 17, crc32c.crc32c(bytes(blob[21:])))
    (batch,) = decode_batches(blob)
    assert batch.timestamp_type == 1
    assert [r.timestamp for r in batch.records] == [99, 99]


def test_build_only_once_and_closed_afterwards() -> None:
    builder = RecordBatchBuilder(batch_size=1000)
    with pytest.raises(RuntimeError, match="without records"):
        builder.build()
    assert builder.max_timestamp == -1
    assert builder.try_append(1, None, b"x") == 0
    size = len(builder.build())
    assert builder.estimated_size == size
    with pytest.raises(RuntimeError, match="already"):
        builder.build()
    assert builder.try_append(2, None, b"y") is None


def test_transactional_needs_a_producer_id() -> None:
    builder = RecordBatchBuilder(batch_size=1000)
    builder.try_append(1, None, b"x")
    with pytest.raises(ValueError, match="producer id"):
        builder.build(is_transactional=True)


def test_invalid_construction() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RecordBatchBuilder(batch_size=-1)
    with pytest.raises(ValueError, match="gzip"):
        RecordBatchBuilder(batch_size=100, compression=CompressionType.GZIP, compression_level=42)
    with pytest.raises(UnsupportedCompressionTypeError):
        RecordBatchBuilder(batch_size=100, compression=6)  # type: ignore[arg-type]


def test_header_keys_must_be_str() -> None:
    builder = RecordBatchBuilder(batch_size=1000)
    with pytest.raises(TypeError, match="header keys must be str"):
        builder.try_append(1, None, b"x", [(b"key", b"v")])  # type: ignore[list-item]
    assert builder.record_count == 0


# --------------------------------------------------------------------------- corruption


def _sample_batch(codec: CompressionType = CompressionType.NONE) -> bytes:
    records: list[Record] = [(0, b"key", b"value" * 20, [("h", b"v")]), (5, None, None, [])]
    return build_batch(records, codec, producer_id=7, producer_epoch=1, base_sequence=0)


@pytest.mark.parametrize("codec", CODECS)
def test_crc_mismatch(codec: CompressionType) -> None:
    blob = bytearray(_sample_batch(codec))
    blob[-3] ^= 0x01
    with pytest.raises(CorruptRecordError, match=r"batch at byte 0: CRC mismatch \(stored 0x"):
        decode_batches(blob)


def test_verify_crc_false_skips_the_check() -> None:
    blob = bytearray(_sample_batch())
    blob[17] ^= 0xFF  # the CRC field itself
    with pytest.raises(CorruptRecordError, match="CRC"):
        decode_batches(blob)
    assert len(decode_batches(blob, verify_crc=False)[0].records) == 2


def test_error_names_the_position_of_the_bad_batch() -> None:
    good = _sample_batch()
    bad = bytearray(good)
    bad[-1] ^= 0x01
    with pytest.raises(CorruptRecordError, match=f"batch at byte {len(good)}: CRC"):
        decode_batches(good + bytes(bad))


@pytest.mark.parametrize("codec", CODECS)
def test_truncated(codec: CompressionType) -> None:
    blob = _sample_batch(codec)
    for cut in sorted({1, 11, 12, 16, 17, 30, 60, 61, 62, len(blob) // 2, len(blob) - 1}):
        with pytest.raises(CorruptRecordError, match="truncated"):
            decode_batches(blob[:cut])


def test_trailing_garbage() -> None:
    blob = _sample_batch()
    with pytest.raises(CorruptRecordError, match=f"batch at byte {len(blob)}"):
        decode_batches(blob + b"\x00" * 5)


def test_wrong_magic() -> None:
    blob = bytearray(_sample_batch())
    blob[16] = 1
    with pytest.raises(CorruptRecordError, match="magic 1"):
        decode_batches(blob)


def _reseal(blob: bytearray) -> bytes:
    struct.pack_into(">I", blob, 17, crc32c.crc32c(bytes(blob[21:])))
    return bytes(blob)


@pytest.mark.parametrize("count", [1, 3, 1000])
def test_record_count_mismatch(count: int) -> None:
    blob = bytearray(_sample_batch())
    struct.pack_into(">i", blob, 57, count)
    with pytest.raises(CorruptRecordError, match="record count mismatch"):
        decode_batches(_reseal(blob))


def test_record_length_mismatch() -> None:
    blob = bytearray(_sample_batch())
    blob[61] += 2  # first record's length varint (zigzag: +1)
    with pytest.raises(CorruptRecordError, match="record 0 at byte"):
        decode_batches(_reseal(blob))


def test_unknown_codec_in_attributes() -> None:
    blob = bytearray(_sample_batch())
    blob[22] = (blob[22] & ~0x07) | 0x06
    with pytest.raises(UnsupportedCompressionTypeError, match="6"):
        decode_batches(_reseal(blob))


def test_undecompressable_payload() -> None:
    blob = bytearray(_sample_batch())
    blob[22] |= CompressionType.GZIP
    with pytest.raises(CorruptRecordError, match="gzip records do not decompress"):
        decode_batches(_reseal(blob))


# --------------------------------------------------------------------------- size rule

payload = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.integers(0, 3000).map(lambda n: random.Random(n).randbytes(n)),  # incompressible
    st.integers(0, 3000).map(lambda n: b"z" * n),  # very compressible
)


@pytest.mark.parametrize("codec", CODECS)
@given(
    batch_size=st.integers(0, 6000),
    records=st.lists(
        st.tuples(payload, payload, st.lists(st.tuples(header_keys, header_values), max_size=2)),
        min_size=1,
        max_size=40,
    ),
)
@SETTINGS
def test_batch_never_exceeds_batch_size_unless_single_record(
    codec: CompressionType, batch_size: int, records: list[tuple[bytes, bytes, list[Header]]]
) -> None:
    builder = RecordBatchBuilder(batch_size=batch_size, compression=codec)
    for index, (key, value, headers) in enumerate(records):
        before = (builder.record_count, builder.estimated_size, builder.max_timestamp)
        offset = builder.try_append(1000 + index, key, value, headers)
        if offset is None:
            assert index > 0  # the first record is always accepted
            after = (builder.record_count, builder.estimated_size, builder.max_timestamp)
            assert after == before  # a rejected record leaves no trace
            break
        assert offset == index
    estimate = builder.estimated_size
    batch = builder.build()
    assert len(batch) <= estimate
    if builder.record_count > 1:
        assert len(batch) <= batch_size
    if codec is CompressionType.NONE:
        assert len(batch) == estimate
    assert len(decode_batches(batch)[0].records) == builder.record_count


def test_first_record_always_fits() -> None:
    builder = RecordBatchBuilder(batch_size=10)
    assert builder.try_append(1, None, b"x" * 1000) == 0
    assert builder.try_append(1, None, b"") is None
    assert len(builder.build()) > 1000


def test_uncompressed_batch_fills_exactly_to_batch_size() -> None:
    record = record_size_upper_bound(None, b"v" * 100, ())
    builder = RecordBatchBuilder(batch_size=10_000)
    while builder.try_append(0, None, b"v" * 100) is not None:
        pass
    size = len(builder.build())
    assert 10_000 - record < size <= 10_000


# --------------------------------------------------------------------------- producer state


@pytest.mark.parametrize("codec", CODECS)
def test_rewrite_producer_state(codec: CompressionType) -> None:
    blob = _sample_batch(codec)
    rewritten = rewrite_producer_state(
        blob, producer_id=123456789, producer_epoch=9, base_sequence=42
    )
    (batch,) = decode_batches(rewritten)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (123456789, 9, 42)
    assert batch.is_transactional is False
    assert batch.compression is codec
    assert [r.value for r in batch.records] == [b"value" * 20, None]
    assert len(rewritten) == len(blob)
    assert rewritten[21:43] == blob[21:43]
    assert rewritten[61:] == blob[61:]


def test_rewrite_transactional_flag() -> None:
    blob = _sample_batch()
    on = rewrite_producer_state(
        bytearray(blob), producer_id=1, producer_epoch=0, base_sequence=0, is_transactional=True
    )
    assert decode_batches(on)[0].is_transactional is True
    kept = rewrite_producer_state(on, producer_id=1, producer_epoch=1, base_sequence=5)
    assert decode_batches(kept)[0].is_transactional is True
    off = rewrite_producer_state(
        kept, producer_id=1, producer_epoch=1, base_sequence=5, is_transactional=False
    )
    assert decode_batches(off)[0].is_transactional is False
    assert decode_batches(off)[0].attributes == 0


def test_rewrite_rejects_corrupt_input() -> None:
    blob = bytearray(_sample_batch())
    rewrite = functools.partial(
        rewrite_producer_state, producer_id=1, producer_epoch=0, base_sequence=0
    )
    with pytest.raises(CorruptRecordError, match="truncated"):
        rewrite(blob[:40])
    with pytest.raises(CorruptRecordError, match="batchLength"):
        rewrite(blob + b"\x00")
    blob[16] = 1
    with pytest.raises(CorruptRecordError, match="magic 1"):
        rewrite(blob)
    blob[16] = 2
    blob[-1] ^= 1
    with pytest.raises(CorruptRecordError, match="CRC mismatch"):
        rewrite(blob)


# --------------------------------------------------------------------------- size bound


@given(
    key=st.none() | st.binary(max_size=300),
    value=st.none() | st.binary(max_size=3000),
    headers=st.lists(st.tuples(header_keys, header_values), max_size=4),
    delta=st.sampled_from([0, 1, -1, 63, 64, 10**6, -(10**9), 2**62]),
    offset=st.sampled_from([0, 63, 64, 2047, 2048, 100_000]),
)
@SETTINGS
def test_record_size_upper_bound(
    key: bytes | None, value: bytes | None, headers: list[Header], delta: int, offset: int
) -> None:
    actual = record_size(delta, offset, key, value, headers)  # exact: test_encoding.py
    bound = record_size_upper_bound(key, value, headers)
    assert actual <= bound
    assert bound - actual <= 16  # and not wildly pessimistic


@given(
    key=st.none() | st.binary(max_size=300),
    value=st.none() | st.binary(max_size=300_000),
)
@SETTINGS
def test_bare_record_overhead_bounds_a_record_without_headers(
    key: bytes | None, value: bytes | None
) -> None:
    # As the producer adds it up: -1 for a None key or value.
    sizes = sum(-1 if data is None else len(data) for data in (key, value))
    assert record_size_upper_bound(key, value, ()) <= BARE_RECORD_OVERHEAD + sizes


def test_batch_header_size() -> None:
    assert BATCH_HEADER_SIZE == 61
