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

from asyncproducer._types import Header
from asyncproducer._value import Value
from asyncproducer.errors import CorruptRecordError, UnsupportedCompressionTypeError
from asyncproducer.protocol._varint import decode_varint, size_of_varint
from asyncproducer.protocol.compression import (
    CompressionType,
    compress,
    compressed_size_bound,
    decompress,
    validate_level,
)
from asyncproducer.protocol.crc import crc32c
from asyncproducer.protocol.encoding import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    LOG_OVERHEAD,
    MAGIC,
    MAX_RECORD_OVERHEAD,
    TRANSACTIONAL_MASK,
    encode_records,
    headers_size,
    record_size,
    seal_batch,
    store_crc,
)
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE as BATCH_HEADER_SIZE

_HEADER = struct.Struct(">qiibIhiqqqhii")
_UINT32 = struct.Struct(">I")
_PRODUCER_STATE = struct.Struct(">qhi")  # producerId, producerEpoch, baseSequence

_MAGIC_OFFSET = 16
_PRODUCER_ID_OFFSET = 43
_NO_TIMESTAMP = -1

_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_MASK = 0x08
_CONTROL_MASK = 0x20

BARE_RECORD_OVERHEAD = MAX_RECORD_OVERHEAD + 5 + 5 + 1
"""With no headers, ``record_size_upper_bound`` is at most this plus the key's and value's
lengths (two length varints of at most 5 bytes, a header count of 1): a bound the send
path can add up without a call."""


# --------------------------------------------------------------------------- encoding


@functools.lru_cache(maxsize=128)
def max_records_size(codec: CompressionType, batch_size: int) -> int:
    """Largest uncompressed records size whose worst-case batch fits in batch_size."""
    budget = batch_size - BATCH_HEADER_SIZE
    if codec is CompressionType.NONE:
        return budget
    # compressed_size_bound is monotonic and >= its input: binary search once per
    # (codec, batch_size) so that appending compares one integer.
    low, high = -1, budget
    while low < high:
        mid = (low + high + 1) // 2
        if compressed_size_bound(codec, mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


class RecordBatchBuilder:
    """Collects records for one v2 batch; ``build()`` encodes them.

    ``try_append`` measures each record exactly (nothing is encoded twice) and keeps it;
    ``build()`` encodes all of them in one pass (:func:`encoding.encode_records`),
    compresses them if a codec is set, and fills in the header and the CRC.

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
        "_built_size",
        "_codec",
        "_headers",
        "_keys",
        "_level",
        "_max_records_size",
        "_max_ts",
        "_records_size",
        "_timestamps",
        "_values",
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
        self._timestamps: list[int] = []
        self._keys: list[bytes | None] = []
        self._values: list[bytes | None] = []
        self._headers: list[Sequence[Header]] = []
        self._records_size = 0
        self._base_ts = base_timestamp
        self._max_ts = _NO_TIMESTAMP
        self._max_records_size = max_records_size(self._codec, batch_size)
        self._built_size = -1

    @property
    def record_count(self) -> int:
        """Records appended so far."""
        return len(self._timestamps)

    @property
    def estimated_size(self) -> int:
        """An upper bound on ``len(build())`` (exact without compression); O(1)."""
        if self._built_size >= 0:
            return self._built_size
        return BATCH_HEADER_SIZE + compressed_size_bound(self._codec, self._records_size)

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
        """Add the record to the open batch and return its offset delta (0, 1, ...).

        Returns None, keeping nothing, when the batch already holds records and this one
        would push it past ``batch_size``, or when the batch was built. The first record
        is always accepted, however large (Java's rule).
        """
        if self._built_size >= 0:
            return None
        count = len(self._timestamps)
        if self._base_ts is None:
            self._base_ts = timestamp_ms
        size = record_size(timestamp_ms - self._base_ts, count, key, value, headers)
        if self._records_size + size > self._max_records_size and count:
            return None
        self._records_size += size
        self._timestamps.append(timestamp_ms)
        self._keys.append(key)
        self._values.append(value)
        self._headers.append(headers)
        if timestamp_ms > self._max_ts or not count:
            self._max_ts = timestamp_ms
        return count

    def build(
        self,
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        is_transactional: bool = False,
    ) -> bytes:
        """Encode and compress the records, fill in the header and CRC, return the batch.

        May be called once; the batch accepts no records afterwards.
        """
        if self._built_size >= 0:
            raise RuntimeError("build() was already called on this RecordBatchBuilder")
        if not self._timestamps:
            raise RuntimeError("cannot build a record batch without records")
        if is_transactional and producer_id < 0:
            raise ValueError("a transactional batch needs a producer id (got -1)")
        assert self._base_ts is not None
        records = encode_records(
            self._base_ts, self._timestamps, self._keys, self._values, self._headers
        )
        if self._codec is not CompressionType.NONE:
            records = compress(self._codec, records, self._level)
        batch = seal_batch(
            records,
            count=len(self._timestamps),
            base_timestamp=self._base_ts,
            max_timestamp=self._max_ts,
            compression=self._codec,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            is_transactional=is_transactional,
        )
        self._built_size = len(batch)
        # Release the records; the batch lives on in `batch`.
        self._keys, self._values, self._headers = [], [], []
        return batch


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
        attributes = int.from_bytes(buf[ATTRIBUTES_OFFSET : ATTRIBUTES_OFFSET + 2], "big")
        if is_transactional:
            attributes |= TRANSACTIONAL_MASK
        else:
            attributes &= ~TRANSACTIONAL_MASK
        buf[ATTRIBUTES_OFFSET : ATTRIBUTES_OFFSET + 2] = attributes.to_bytes(2, "big")
    store_crc(buf)
    return bytes(buf)


def _check_single_batch(buf: bytearray) -> None:
    if len(buf) < BATCH_HEADER_SIZE:
        raise CorruptRecordError(
            f"batch at byte 0: truncated ({len(buf)} bytes, a batch header needs 61)"
        )
    if buf[_MAGIC_OFFSET] != MAGIC:
        raise CorruptRecordError(f"batch at byte 0: magic {buf[_MAGIC_OFFSET]}, expected 2")
    declared = int.from_bytes(buf[8:12], "big", signed=True) + LOG_OVERHEAD
    if declared != len(buf):
        raise CorruptRecordError(
            f"batch at byte 0: batchLength says {declared} bytes in all, got {len(buf)}"
        )
    stored = _UINT32.unpack_from(buf, CRC_OFFSET)[0]
    with memoryview(buf) as view, view[ATTRIBUTES_OFFSET:] as covered:
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
    body = MAX_RECORD_OVERHEAD - 5  # the length prefix is added below
    body += _field_size(key) + _field_size(value)
    body += headers_size(headers) if headers else 1
    return size_of_varint(body) + body


def _field_size(data: bytes | None) -> int:
    return 1 if data is None else size_of_varint(len(data)) + len(data)


# --------------------------------------------------------------------------- decoding


class DecodedRecord(Value):
    """One record of a decoded batch, with absolute offset and timestamp."""

    __slots__ = ("attributes", "headers", "key", "offset", "timestamp", "value")
    _fields = ("offset", "timestamp", "key", "value", "headers", "attributes")

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    attributes: int

    def __init__(
        self,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: tuple[tuple[str, bytes | None], ...],
        attributes: int,
    ) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
        self.attributes = attributes


class DecodedBatch(Value):
    """A decoded v2 batch: its header fields and its records."""

    __slots__ = (
        "attributes",
        "base_offset",
        "base_sequence",
        "base_timestamp",
        "compression",
        "crc",
        "is_control",
        "is_transactional",
        "last_offset_delta",
        "magic",
        "max_timestamp",
        "partition_leader_epoch",
        "producer_epoch",
        "producer_id",
        "records",
        "timestamp_type",
    )
    _fields = (
        "base_offset",
        "partition_leader_epoch",
        "magic",
        "crc",
        "attributes",
        "compression",
        "timestamp_type",
        "is_transactional",
        "is_control",
        "last_offset_delta",
        "base_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "records",
    )

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

    def __init__(
        self,
        *,
        base_offset: int,
        partition_leader_epoch: int,
        magic: int,
        crc: int,
        attributes: int,
        compression: CompressionType,
        timestamp_type: int,
        is_transactional: bool,
        is_control: bool,
        last_offset_delta: int,
        base_timestamp: int,
        max_timestamp: int,
        producer_id: int,
        producer_epoch: int,
        base_sequence: int,
        records: tuple[DecodedRecord, ...],
    ) -> None:
        self.base_offset = base_offset
        self.partition_leader_epoch = partition_leader_epoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.compression = compression
        self.timestamp_type = timestamp_type
        self.is_transactional = is_transactional
        self.is_control = is_control
        self.last_offset_delta = last_offset_delta
        self.base_timestamp = base_timestamp
        self.max_timestamp = max_timestamp
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.records = records


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
    if remaining > _MAGIC_OFFSET and blob[start + _MAGIC_OFFSET] != MAGIC:
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
    end = start + LOG_OVERHEAD + length
    if length < BATCH_HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptRecordError(f"{where}: batchLength {length} is shorter than the header")
    if end > len(blob):
        raise CorruptRecordError(
            f"{where}: truncated (batchLength says {length + LOG_OVERHEAD} bytes, "
            f"{remaining} remain)"
        )
    if verify_crc:
        computed = crc32c(memoryview(blob)[start + ATTRIBUTES_OFFSET : end])
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
        is_transactional=bool(attributes & TRANSACTIONAL_MASK),
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
