"""Record batch v2 (magic 2): the encoder the producer's hot path uses, and a decoder.

Layout (Kafka protocol guide, "Record Batch"; big-endian)::

    offset  size  field
         0     8  baseOffset            (0 from a producer; the broker assigns offsets)
         8     4  batchLength           (bytes after this field)
        12     4  partitionLeaderEpoch  (-1 from a producer, as Java writes)
        16     1  magic = 2
        17     4  crc                   (CRC-32C of bytes 21..end)
        21     2  attributes            (bits 0-2 codec, 3 timestampType, 4 transactional,
                                         5 control, 6 hasDeleteHorizonMs)
        23     4  lastOffsetDelta
        27     8  baseTimestamp
        35     8  maxTimestamp
        43     8  producerId
        51     2  producerEpoch
        53     4  baseSequence
        57     4  recordCount
        61     -  records (one compressed blob when a codec is set)

Each record is ``length varint, attributes int8, timestampDelta varlong, offsetDelta
varint, key, value, headers`` with zigzag varints and -1 lengths for null.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from crc32c import crc32c

from asyncproducer._types import Header
from asyncproducer.errors import CorruptRecordError, UnsupportedCompressionTypeError
from asyncproducer.protocol._varint import decode_varint, encode_varint, size_of_varint
from asyncproducer.protocol.compression import (
    CompressionType,
    compress,
    compressed_size_bound,
    decompress,
    validate_level,
)

_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_SIZE: int = _HEADER.size  # 61
_UINT32 = struct.Struct(">I")
_PRODUCER_STATE = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence

_LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes batchLength does not count
_MAGIC_OFFSET = 16
_CRC_OFFSET = 17
_ATTRIBUTES_OFFSET = 21
_PRODUCER_ID_OFFSET = 43
_MAGIC = 2
_NO_PARTITION_LEADER_EPOCH = -1
_NO_TIMESTAMP = -1

_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_MASK = 0x08
_TRANSACTIONAL_MASK = 0x10
_CONTROL_MASK = 0x20

# Encodings of the non-negative values most fields hold (lengths, offset and timestamp
# deltas, counts): a tuple lookup is several times faster than encoding, and ~90 KB is a
# fair price for the hot path.
_SMALL_LIMIT = 2048
_SMALL_VARINT: tuple[bytes, ...] = tuple(encode_varint(n) for n in range(_SMALL_LIMIT))
_NULL_LENGTH = b"\x01"  # zigzag(-1)
_NO_HEADERS = b"\x00"
# Per record: length (varint, 5) + attributes (1) + timestampDelta (varlong, 10)
# + offsetDelta (varint, 5), as Java's DefaultRecord.MAX_RECORD_OVERHEAD.
_MAX_RECORD_OVERHEAD = 21
BARE_RECORD_OVERHEAD = _MAX_RECORD_OVERHEAD + 5 + 5 + 1
"""With no headers, ``record_size_upper_bound`` is at most this plus the key's and value's
lengths (two length varints of at most 5 bytes, a header count of 1): a bound the send
path can add up without a call."""


# --------------------------------------------------------------------------- encoding


@functools.lru_cache(maxsize=128)
def _max_records_size(codec: CompressionType, batch_size: int) -> int:
    """Largest uncompressed records size whose worst-case batch fits in batch_size."""
    budget = batch_size - BATCH_HEADER_SIZE
    if codec is CompressionType.NONE:
        return budget
    # compressed_size_bound is monotonic and >= its input: binary search once per
    # (codec, batch_size) so that try_append compares one integer.
    low, high = -1, budget
    while low < high:
        mid = (low + high + 1) // 2
        if compressed_size_bound(codec, mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _encode_headers(headers: Sequence[Header]) -> bytes:
    small, limit = _SMALL_VARINT, _SMALL_LIMIT
    count = len(headers)
    parts = [small[count] if count < limit else encode_varint(count)]
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"header keys must be str, got {type(name).__name__}: {name!r}")
        raw = name.encode("utf-8")
        size = len(raw)
        parts += (small[size] if size < limit else encode_varint(size), raw)
        if value is None:
            parts.append(_NULL_LENGTH)
        else:
            size = len(value)
            parts += (small[size] if size < limit else encode_varint(size), value)
    return b"".join(parts)


class RecordBatchBuilder:
    """Encodes records into one v2 batch as they are appended.

    Each record is encoded once, straight into a growing buffer that already reserves the
    batch header; ``build()`` compresses the records (if a codec is set), fills in the
    header and the CRC.

    **Size rule:** a built batch never exceeds ``batch_size`` unless it holds a single
    record that is larger on its own (the first record is always accepted, as in Java).
    With a codec the check uses the *uncompressed* record bytes plus the codec's
    worst-case expansion (see :func:`compressed_size_bound`), so the rule holds even for
    incompressible data. This is more conservative than Java, which estimates the batch's
    compressed size from an observed compression ratio and may overshoot ``batch_size``;
    in exchange a compressed batch is usually well below ``batch_size``.
    """

    __slots__ = (
        "_base_ts",
        "_buf",
        "_built_size",
        "_codec",
        "_count",
        "_level",
        "_max_buf_size",
        "_max_ts",
    )

    def __init__(
        self,
        *,
        batch_size: int,
        compression: CompressionType = CompressionType.NONE,
        compression_level: int | None = None,
        base_timestamp: int | None = None,
    ) -> None:
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        validate_level(compression, compression_level)  # also rejects unknown codecs
        self._codec = CompressionType(compression)
        self._level = compression_level
        self._buf = bytearray(BATCH_HEADER_SIZE)
        self._count = 0
        self._base_ts = base_timestamp
        self._max_ts = _NO_TIMESTAMP
        self._max_buf_size = BATCH_HEADER_SIZE + _max_records_size(self._codec, batch_size)
        self._built_size = -1

    @property
    def record_count(self) -> int:
        """Records appended so far."""
        return self._count

    @property
    def estimated_size(self) -> int:
        """An upper bound on ``len(build())`` (exact without compression); O(1)."""
        if self._built_size >= 0:
            return self._built_size
        records = len(self._buf) - BATCH_HEADER_SIZE
        return BATCH_HEADER_SIZE + compressed_size_bound(self._codec, records)

    @property
    def max_timestamp(self) -> int:
        """The largest timestamp appended so far, -1 before the first record."""
        return self._max_ts

    def try_append(
        self,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header] = (),
    ) -> int | None:
        """Encode the record into the open batch and return its offset delta (0, 1, ...).

        Returns None, encoding nothing, when the batch already holds records and this one
        would push it past ``batch_size``, or when the batch was built. The first record
        is always accepted, however large (Java's rule).
        """
        count = self._count
        base_ts = self._base_ts
        if base_ts is None:
            base_ts = self._base_ts = timestamp_ms
        delta = timestamp_ms - base_ts
        # Every field's encoding is computed before anything is written, so that a
        # rejected record leaves the buffer untouched and nothing is encoded twice.
        ts_field = _SMALL_VARINT[delta] if 0 <= delta < _SMALL_LIMIT else encode_varint(delta)
        offset_field = _SMALL_VARINT[count] if count < _SMALL_LIMIT else encode_varint(count)
        if key is None:
            key_size = 0
            key_field = _NULL_LENGTH
        else:
            key_size = len(key)
            key_field = (
                _SMALL_VARINT[key_size] if key_size < _SMALL_LIMIT else encode_varint(key_size)
            )
        if value is None:
            value_size = 0
            value_field = _NULL_LENGTH
        else:
            value_size = len(value)
            value_field = (
                _SMALL_VARINT[value_size]
                if value_size < _SMALL_LIMIT
                else encode_varint(value_size)
            )
        headers_field = _encode_headers(headers) if headers else _NO_HEADERS
        body_size = (
            1  # attributes
            + len(ts_field)
            + len(offset_field)
            + len(key_field)
            + key_size
            + len(value_field)
            + value_size
            + len(headers_field)
        )
        length_field = (
            _SMALL_VARINT[body_size] if body_size < _SMALL_LIMIT else encode_varint(body_size)
        )
        buf = self._buf
        if len(buf) + len(length_field) + body_size > self._max_buf_size and count:
            return None
        buf += length_field
        buf.append(0)  # record attributes: unused, always 0
        buf += ts_field
        buf += offset_field
        buf += key_field
        if key:
            buf += key
        buf += value_field
        if value:
            buf += value
        buf += headers_field
        if timestamp_ms > self._max_ts or not count:
            self._max_ts = timestamp_ms
        self._count = count + 1
        return count

    def build(
        self,
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        is_transactional: bool = False,
    ) -> bytes:
        """Compress the records, fill in the header and CRC, and return the batch.

        May be called once; the batch accepts no records afterwards.
        """
        if self._built_size >= 0:
            raise RuntimeError("build() was already called on this RecordBatchBuilder")
        if not self._count:
            raise RuntimeError("cannot build a record batch without records")
        if is_transactional and producer_id < 0:
            raise ValueError("a transactional batch needs a producer id (got -1)")
        buf = self._buf
        if self._codec is not CompressionType.NONE:
            self._compress_records(buf)
        attributes = self._codec | (_TRANSACTIONAL_MASK if is_transactional else 0)
        try:
            _HEADER.pack_into(
                buf, 0,
                0, len(buf) - _LOG_OVERHEAD, _NO_PARTITION_LEADER_EPOCH, _MAGIC, 0,
                attributes, self._count - 1, self._base_ts, self._max_ts,
                producer_id, producer_epoch, base_sequence, self._count,
            )  # fmt: skip
        except struct.error as exc:
            raise ValueError(f"a batch header field is out of range: {exc}") from None
        _store_crc(buf)
        batch = bytes(buf)
        self._built_size = len(batch)
        self._max_buf_size = -1  # later try_append calls find no room
        self._buf = bytearray()  # release the buffer; the batch lives on in `batch`
        return batch

    def _compress_records(self, buf: bytearray) -> None:
        # A memoryview pins the bytearray's size, so release it before resizing.
        with memoryview(buf) as view, view[BATCH_HEADER_SIZE:] as records:
            compressed = compress(self._codec, records, self._level)
        buf[BATCH_HEADER_SIZE:] = compressed


def _store_crc(buf: bytearray) -> None:
    with memoryview(buf) as view, view[_ATTRIBUTES_OFFSET:] as covered:
        crc = crc32c(covered)
    _UINT32.pack_into(buf, _CRC_OFFSET, crc)


def rewrite_producer_state(
    batch: bytes | bytearray,
    *,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    is_transactional: bool | None = None,
) -> bytes:
    """Return the batch with new idempotence fields and a recomputed CRC.

    For retries after an epoch bump or sequence reset. ``is_transactional`` None keeps
    the flag as it is. The old CRC is checked first, so a batch damaged in memory is not
    re-sealed as valid. Raises CorruptRecordError if ``batch`` is not one v2 batch.
    """
    buf = bytearray(batch)
    _check_single_batch(buf)
    _PRODUCER_STATE.pack_into(buf, _PRODUCER_ID_OFFSET, producer_id, producer_epoch, base_sequence)
    if is_transactional is not None:
        attributes = int.from_bytes(buf[_ATTRIBUTES_OFFSET : _ATTRIBUTES_OFFSET + 2], "big")
        if is_transactional:
            attributes |= _TRANSACTIONAL_MASK
        else:
            attributes &= ~_TRANSACTIONAL_MASK
        buf[_ATTRIBUTES_OFFSET : _ATTRIBUTES_OFFSET + 2] = attributes.to_bytes(2, "big")
    _store_crc(buf)
    return bytes(buf)


def _check_single_batch(buf: bytearray) -> None:
    if len(buf) < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"batch at byte 0: truncated ({len(buf)} bytes, a batch header needs 61)"
        )
    if buf[_MAGIC_OFFSET] != _MAGIC:
        raise CorruptRecordError(f"batch at byte 0: magic {buf[_MAGIC_OFFSET]}, expected 2")
    declared = int.from_bytes(buf[8:12], "big", signed=True) + _LOG_OVERHEAD
    if declared != len(buf):
        raise CorruptRecordError(
            f"batch at byte 0: batchLength says {declared} bytes in all, got {len(buf)}"
        )
    stored = _UINT32.unpack_from(buf, _CRC_OFFSET)[0]
    with memoryview(buf) as view, view[_ATTRIBUTES_OFFSET:] as covered:
        computed = crc32c(covered)
    if stored != computed:
        raise CorruptRecordError(
            f"batch at byte 0: CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})"
        )


def record_size_upper_bound(
    key: bytes | None, value: bytes | None, headers: Sequence[Header]
) -> int:
    """Bytes one record can take in a batch (uncompressed), without encoding it.

    Holds for any timestamp and offset delta. Add BATCH_HEADER_SIZE for the size of a
    batch holding only this record, as Java's ``estimateSizeInBytesUpperBound`` does.
    """
    body = _MAX_RECORD_OVERHEAD - 5  # the length prefix is added below
    body += _field_size(key) + _field_size(value) + size_of_varint(len(headers))
    for name, header_value in headers:
        raw_size = len(name.encode("utf-8"))
        body += size_of_varint(raw_size) + raw_size + _field_size(header_value)
    return size_of_varint(body) + body


def _field_size(data: bytes | None) -> int:
    return 1 if data is None else size_of_varint(len(data)) + len(data)


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    """One record of a decoded batch, with absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    attributes: int


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """A decoded v2 batch: its header fields and its records."""

    base_offset: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    compression: CompressionType
    timestamp_type: int
    is_transactional: bool
    is_control: bool
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: tuple[DecodedRecord, ...]


def decode_batches(
    data: bytes | bytearray | memoryview, *, verify_crc: bool = True
) -> list[DecodedBatch]:
    """Decode every batch in a records blob (e.g. a Produce request's records field).

    The blob must consist of whole v2 batches. Raises CorruptRecordError naming the byte
    position and the fault (bad CRC, wrong magic, truncated, record count mismatch,
    trailing bytes), and UnsupportedCompressionTypeError for an unknown codec id.
    """
    blob = bytes(data)
    batches = []
    pos = 0
    while pos < len(blob):
        batch, pos = _decode_batch(blob, pos, verify_crc)
        batches.append(batch)
    return batches


def _decode_batch(blob: bytes, start: int, verify_crc: bool) -> tuple[DecodedBatch, int]:
    remaining = len(blob) - start
    where = f"batch at byte {start}"
    if remaining > _MAGIC_OFFSET and blob[start + _MAGIC_OFFSET] != _MAGIC:
        raise CorruptRecordError(
            f"{where}: magic {blob[start + _MAGIC_OFFSET]}, only magic 2 is supported"
        )
    if remaining < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"{where}: truncated or trailing garbage ({remaining} bytes left, "
            f"a batch header needs {BATCH_HEADER_SIZE})"
        )
    fields = _HEADER.unpack_from(blob, start)
    (base_offset, length, leader_epoch, magic, crc, attributes, last_delta,
     base_ts, max_ts, producer_id, producer_epoch, base_sequence, count) = fields  # fmt: skip
    end = start + _LOG_OVERHEAD + length
    if length < BATCH_HEADER_SIZE - _LOG_OVERHEAD:
        raise CorruptRecordError(f"{where}: batchLength {length} is shorter than the header")
    if end > len(blob):
        raise CorruptRecordError(
            f"{where}: truncated (batchLength says {length + _LOG_OVERHEAD} bytes, "
            f"{remaining} remain)"
        )
    if verify_crc:
        computed = crc32c(memoryview(blob)[start + _ATTRIBUTES_OFFSET : end])
        if computed != crc:
            raise CorruptRecordError(
                f"{where}: CRC mismatch (stored 0x{crc:08x}, computed 0x{computed:08x})"
            )
    codec = _codec_of(attributes, where)
    payload = blob[start + BATCH_HEADER_SIZE : end]
    if codec is not CompressionType.NONE:
        try:
            payload = decompress(codec, payload)
        except CorruptRecordError as exc:
            raise CorruptRecordError(
                f"{where}: {codec.name.lower()} records do not decompress"
            ) from exc
    timestamp_type = 1 if attributes & _TIMESTAMP_TYPE_MASK else 0
    records = _decode_records(
        payload, count, base_offset,
        # With LogAppendTime every record's timestamp is the batch's, as Java reads it.
        base_ts, max_ts if timestamp_type else None,
        f"{where}{' (decompressed records)' if codec else ''}",
    )  # fmt: skip
    batch = DecodedBatch(
        base_offset=base_offset,
        partition_leader_epoch=leader_epoch,
        magic=magic,
        crc=crc,
        attributes=attributes,
        compression=codec,
        timestamp_type=timestamp_type,
        is_transactional=bool(attributes & _TRANSACTIONAL_MASK),
        is_control=bool(attributes & _CONTROL_MASK),
        last_offset_delta=last_delta,
        base_timestamp=base_ts,
        max_timestamp=max_ts,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        records=records,
    )
    return batch, end


def _codec_of(attributes: int, where: str) -> CompressionType:
    codec_id = attributes & _COMPRESSION_MASK
    try:
        return CompressionType(codec_id)
    except ValueError:
        raise UnsupportedCompressionTypeError(
            f"{where}: unknown compression type id {codec_id}"
        ) from None


def _decode_records(
    data: bytes,
    count: int,
    base_offset: int,
    base_ts: int,
    log_append_ts: int | None,
    where: str,
) -> tuple[DecodedRecord, ...]:
    if count < 0:
        raise CorruptRecordError(f"{where}: negative record count {count}")
    records = []
    pos = 0
    for index in range(count):
        if pos >= len(data):
            raise CorruptRecordError(
                f"{where}: record count mismatch (header says {count}, found {index})"
            )
        try:
            record, pos = _decode_record(data, pos, base_offset, base_ts, log_append_ts)
        except ValueError as exc:
            raise CorruptRecordError(f"{where}: record {index} at byte {pos}: {exc}") from None
        records.append(record)
    if pos != len(data):
        raise CorruptRecordError(
            f"{where}: record count mismatch (header says {count}, "
            f"{len(data) - pos} bytes follow the last record)"
        )
    return tuple(records)


def _decode_record(
    data: bytes, pos: int, base_offset: int, base_ts: int, log_append_ts: int | None
) -> tuple[DecodedRecord, int]:
    """Decode the record at ``pos``; ValueError describes any fault."""
    length, pos = decode_varint(data, pos, 5)
    end = pos + length
    if length < 1 or end > len(data):
        raise ValueError(f"length {length} does not fit in the {len(data) - pos} bytes left")
    attributes = data[pos]
    ts_delta, pos = decode_varint(data, pos + 1, 10)
    offset_delta, pos = decode_varint(data, pos, 5)
    key, pos = _read_bytes(data, pos, end, "key")
    value, pos = _read_bytes(data, pos, end, "value")
    header_count, pos = decode_varint(data, pos, 5)
    if header_count < 0:
        raise ValueError(f"negative header count {header_count}")
    headers = []
    for _ in range(header_count):
        name, pos = _read_bytes(data, pos, end, "header key")
        if name is None:
            raise ValueError("null header key")
        header_value, pos = _read_bytes(data, pos, end, "header value")
        try:
            headers.append((name.decode("utf-8"), header_value))
        except UnicodeDecodeError as exc:
            raise ValueError(f"header key is not UTF-8: {exc}") from None
    if pos != end:
        raise ValueError(f"length says {length} bytes, the fields take {length + pos - end}")
    timestamp = base_ts + ts_delta if log_append_ts is None else log_append_ts
    record = DecodedRecord(
        base_offset + offset_delta, timestamp, key, value, tuple(headers), attributes
    )
    return record, end


def _read_bytes(data: bytes, pos: int, end: int, what: str) -> tuple[bytes | None, int]:
    size, pos = decode_varint(data, pos, 5)
    if size < 0:
        if size != -1:
            raise ValueError(f"{what} length {size}")
        return None, pos
    if pos + size > end:
        raise ValueError(f"{what} length {size} runs past the record's end")
    return data[pos : pos + size], pos + size
