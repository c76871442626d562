"""Zigzag varints as Kafka's record format v2 uses them (protobuf's encoding).

A signed value ``n`` is zigzag-mapped to an unsigned one (0, -1, 1, -2, ... become
0, 1, 2, 3, ...) and then written 7 bits per byte, least significant group first, with
the high bit set on every byte but the last. ``varint`` fields hold int32 values (at most
5 bytes), ``varlong`` fields int64 values (at most 10 bytes).

The record encoder in :mod:`records` inlines the one-byte case; these helpers are the
general path and the decoder.
"""

from __future__ import annotations

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# One-byte encodings, shared so that the common case allocates nothing.
_ONE_BYTE: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(0x80))


def zigzag(value: int) -> int:
    """Map a signed int64 onto an unsigned one so that small magnitudes stay small."""
    return (value << 1) ^ (value >> 63)


def unzigzag(value: int) -> int:
    """Inverse of :func:`zigzag`."""
    return (value >> 1) ^ -(value & 1)


def size_of_varint(value: int) -> int:
    """Bytes the zigzag varint encoding of the signed ``value`` takes."""
    zz = (value << 1) ^ (value >> 63)
    if zz < 0x80:
        return 1
    # bit_length is exact and O(1); every byte carries 7 payload bits.
    return (zz.bit_length() + 6) // 7


def encode_varint(value: int) -> bytes:
    """The zigzag varint encoding of a signed int64 ``value``.

    Raises ValueError outside the int64 range, where zigzag stops being a bijection and
    a reader would decode something else.
    """
    zz = (value << 1) ^ (value >> 63)
    if 0 <= zz < 0x80:
        return _ONE_BYTE[zz]
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{value} does not fit in a signed 64-bit varlong")
    return encode_uvarint(zz)


def encode_uvarint(value: int) -> bytes:
    """An unsigned varint (no zigzag), as the flexible protocol versions write lengths.
    Values up to 2 MiB (record batches of common sizes) are written without the loop."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0x20_0000:
        return bytes(((value & 0x7F) | 0x80, (value >> 7 & 0x7F) | 0x80, value >> 14))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int, max_bytes: int = 10) -> tuple[int, int]:
    """Read one zigzag varint at ``data[pos]``; return ``(value, next_pos)``.

    ``max_bytes`` is 5 for int32 ``varint`` fields and 10 for ``varlong`` ones, as Java's
    ``ByteUtils.readVarint``/``readVarlong`` enforce. Raises ValueError on truncation or an
    over-long encoding; the record decoder turns that into a CorruptRecordError that says
    which batch and record.
    """
    try:
        byte = data[pos]
    except IndexError:
        raise ValueError(f"varint at byte {pos}: data ends") from None
    if byte < 0x80:
        # Fast path: most lengths, deltas and counts fit in one byte.
        return (byte >> 1) ^ -(byte & 1), pos + 1
    result = byte & 0x7F
    shift = 7
    start = pos
    pos += 1
    while True:
        if pos - start >= max_bytes:
            raise ValueError(f"varint at byte {start}: longer than {max_bytes} bytes")
        try:
            byte = data[pos]
        except IndexError:
            raise ValueError(f"varint at byte {start}: data ends") from None
        result |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            # A 5th (10th) byte can carry bits beyond 32 (64); Java would silently drop
            # them, but such bytes come from a broken writer.
            if result >> (32 if max_bytes <= 5 else 64):
                raise ValueError(f"varint at byte {start}: value out of range")
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
