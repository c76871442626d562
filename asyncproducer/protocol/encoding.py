"""Record batch v2 encoding: record sizes without encoding, the records of a batch encoded
in one pass, and the sealed batch (compression, header, CRC).

:func:`record_size` measures a record exactly from a few table lookups, without encoding
it; :func:`encode_records` encodes many records at once with ``map``/``zip`` pipelines
that run in C, which costs about half of encoding them one by one in Python. The
producer's batches use both where the C extension did not build
(``batch_records.PyBatchRecords``); its C twin writes the same bytes as each record is
appended. ``tests/unit/test_encoding.py`` checks them against the decoder and the sizes."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import chain, repeat
from operator import sub
from typing import cast

from asyncproducer._types import Header
from asyncproducer.protocol._varint import encode_varint, size_of_varint
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.crc import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_SIZE: int = _HEADER.size  # 61
_UINT32 = struct.Struct(">I")
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes batchLength does not count
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAGIC = 2
TRANSACTIONAL_MASK = 0x10
_NO_PARTITION_LEADER_EPOCH = -1

SMALL_LIMIT = 2048
"""Lengths, deltas and counts below this are looked up, not computed."""
VARINT_SIZE = bytes(size_of_varint(n) for n in range(SMALL_LIMIT))
"""``VARINT_SIZE[n]``: bytes of the zigzag varint of ``n`` (0 <= n < SMALL_LIMIT)."""


class _VarintTable(dict[int, bytes]):
    """Zigzag varint encodings by value: a dict so that ``map(table.__getitem__, ...)``
    stays in C for the common small values; others are encoded on demand."""

    def __missing__(self, value: int) -> bytes:
        return encode_varint(value)


_VARINTS = _VarintTable((n, encode_varint(n)) for n in range(SMALL_LIMIT))
_varint = _VARINTS.__getitem__
_NULL = b"\x01"  # zigzag(-1): a null key or value
_ZERO = b"\x00"  # record attributes, and a header count of 0
_EMPTY = b""

# Per record, at most: length (varint, 5) + attributes (1) + timestampDelta (varlong, 10)
# + offsetDelta (varint, 5), as Java's DefaultRecord.MAX_RECORD_OVERHEAD.
MAX_RECORD_OVERHEAD = 21


def headers_size(headers: Sequence[Header]) -> int:
    """Bytes the headers field takes (count and every header), without encoding it.

    Raises TypeError for a header key that is not str (it is measured in UTF-8)."""
    size = size_of_varint(len(headers))
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"header keys must be str, got {type(name).__name__}: {name!r}")
        raw = len(name.encode("utf-8"))
        size += size_of_varint(raw) + raw
        size += 1 if value is None else size_of_varint(len(value)) + len(value)
    return size


def record_size(
    timestamp_delta: int,
    offset_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[Header],
) -> int:
    """Exact bytes of one encoded record, length prefix included.

    The producer's batches inline this computation (a call per record costs as much as
    the arithmetic); this is the reference they are tested against.
    """
    body = 1 + size_of_varint(timestamp_delta) + size_of_varint(offset_delta)
    body += 1 if key is None else size_of_varint(len(key)) + len(key)
    body += 1 if value is None else size_of_varint(len(value)) + len(value)
    body += headers_size(headers) if headers else 1
    return size_of_varint(body) + body


def encode_headers(headers: Sequence[Header]) -> bytes:
    parts = [_varint(len(headers))]
    for name, value in headers:
        raw = name.encode("utf-8")
        parts += (_varint(len(raw)), raw)
        if value is None:
            parts.append(_NULL)
        else:
            parts += (_varint(len(value)), value)
    return _EMPTY.join(parts)


def _length_field(data: bytes | None) -> bytes:
    return _NULL if data is None else _varint(len(data))


def _data(data: bytes | None) -> bytes:
    return _EMPTY if data is None else data


def _headers_field(headers: Sequence[Header]) -> bytes:
    return encode_headers(headers) if headers else _ZERO


def encode_records(
    base_timestamp: int,
    timestamps: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Sequence[Header]],
) -> bytes:
    """The records of a batch, offset deltas 0, 1, ..., encoded back to back.

    Each record is ``length, attributes, timestampDelta, offsetDelta, key length, key,
    value length, value, headers``; the columns (all of one length) are zipped into
    record bodies and joined in C. Null keys or values and empty headers, the common
    cases, take no Python call per record.
    """
    count = len(timestamps)
    key_fields: Iterable[bytes]
    key_data: Iterable[bytes]
    if keys.count(None) == count:
        key_fields, key_data = repeat(_NULL, count), repeat(_EMPTY, count)
    elif None in keys:
        key_fields, key_data = map(_length_field, keys), map(_data, keys)
    else:
        key_data = cast("Sequence[bytes]", keys)
        key_fields = map(_varint, map(len, key_data))
    value_fields: Iterable[bytes]
    value_data: Iterable[bytes]
    if None in values:
        value_fields, value_data = map(_length_field, values), map(_data, values)
    else:
        value_data = cast("Sequence[bytes]", values)
        value_fields = map(_varint, map(len, value_data))
    header_fields: Iterable[bytes] = (
        map(_headers_field, headers) if any(headers) else repeat(_ZERO, count)
    )
    bodies = list(
        map(
            _EMPTY.join,
            zip(
                repeat(_ZERO, count),  # attributes: unused, always 0
                map(_varint, map(sub, timestamps, repeat(base_timestamp, count))),
                map(_varint, range(count)),
                key_fields,
                key_data,
                value_fields,
                value_data,
                header_fields,
                strict=True,
            ),
        )
    )
    return _EMPTY.join(
        chain.from_iterable(zip(map(_varint, map(len, bodies)), bodies, strict=True))
    )


def seal_batch(
    records: bytes | bytearray,
    *,
    count: int,
    base_timestamp: int,
    max_timestamp: int,
    compression: CompressionType,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    is_transactional: bool = False,
) -> bytes:
    """A complete v2 batch of ``count`` encoded records, already compressed with
    ``compression``: its header and CRC around them."""
    header = bytearray(BATCH_HEADER_SIZE)
    attributes = compression | (TRANSACTIONAL_MASK if is_transactional else 0)
    try:
        _HEADER.pack_into(
            header, 0,
            0, BATCH_HEADER_SIZE + len(records) - LOG_OVERHEAD, _NO_PARTITION_LEADER_EPOCH,
            MAGIC, 0, attributes, count - 1, base_timestamp, max_timestamp,
            producer_id, producer_epoch, base_sequence, count,
        )  # fmt: skip
    except struct.error as exc:
        raise ValueError(f"a batch header field is out of range: {exc}") from None
    # The CRC carried on from the header's covered bytes through the records: the records
    # (up to batch_size, on the event loop) are copied once, into the result.
    with memoryview(header) as view, view[ATTRIBUTES_OFFSET:] as covered:
        crc = crc32c(records, crc32c(covered))
    _UINT32.pack_into(header, CRC_OFFSET, crc)
    return b"".join((header, records))


def store_crc(buf: bytearray) -> None:
    """Compute the batch's CRC-32C (of the bytes from its attributes on) and store it."""
    with memoryview(buf) as view, view[ATTRIBUTES_OFFSET:] as covered:
        crc = crc32c(covered)
    _UINT32.pack_into(buf, CRC_OFFSET, crc)
