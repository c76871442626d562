"""A bounds-checked cursor over a response body, for the hand-written decoders (sans-I/O).

Every read checks that its bytes are there, so the only exception a decoder built on it
raises is :class:`Malformed`, naming the field (``topics[2].partitions[0].isr_nodes``)
and what was wrong with it; :mod:`responses` turns that into a ``ProtocolError``.

The rules are Java's generated readers', which ``tests/unit/test_response_decoding.py``
checks against kio's on the same bytes:

* A length or array count below -1 (classic) is malformed; -1 (classic) or 0 (compact:
  uvarint length + 1) is null, refused where the schema does not allow null.
* An array's count is checked against the bytes left (each item takes at least
  ``min_item`` bytes) before any item is read.
* In a tagged-field section (flexible versions, KIP-482) unknown tags are skipped; a
  known one is read within its declared size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

_T = TypeVar("_T")

_INT8: Final = struct.Struct(">b")
_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")
_INT64: Final = struct.Struct(">q")

NULL_REFUSED: Final = "null, which its schema does not allow"


class Malformed(Exception):
    """A body that does not fit its schema: ``path`` is the field, ``reason`` what."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def join_path(head: str, tail: str) -> str:
    """``head`` and ``tail`` of a field's path: ``topics[2]`` + ``name``, ``topics`` +
    ``[2]``."""
    if not head or not tail:
        return head or tail
    return f"{head}{tail}" if tail.startswith("[") else f"{head}.{tail}"


class Reader:
    """Reads fields in order from ``buffer[offset:end]``; ``flexible`` selects compact
    lengths and tagged-field sections."""

    __slots__ = ("_buffer", "_end", "flexible", "offset")

    def __init__(self, buffer: memoryview, offset: int, end: int, *, flexible: bool) -> None:
        self._buffer = buffer
        self.offset = offset
        self._end = end
        self.flexible = flexible

    @property
    def left(self) -> int:
        return self._end - self.offset

    def fixed(self, fmt: struct.Struct, name: str) -> tuple[Any, ...]:
        """The fields of ``fmt`` (fixed-width, big-endian) read at once."""
        offset = self.offset
        if self._end - offset < fmt.size:
            raise Malformed(name, f"needs {fmt.size} bytes, {self._end - offset} left")
        self.offset = offset + fmt.size
        return fmt.unpack_from(self._buffer, offset)

    def int8(self, name: str) -> int:
        value: int = self.fixed(_INT8, name)[0]
        return value

    def int16(self, name: str) -> int:
        value: int = self.fixed(_INT16, name)[0]
        return value

    def int32(self, name: str) -> int:
        value: int = self.fixed(_INT32, name)[0]
        return value

    def int64(self, name: str) -> int:
        value: int = self.fixed(_INT64, name)[0]
        return value

    def boolean(self, name: str) -> bool:
        return self.int8(name) != 0

    def raw(self, size: int, name: str) -> bytes:
        offset = self.offset
        if self._end - offset < size:
            raise Malformed(name, f"needs {size} bytes, {self._end - offset} left")
        self.offset = offset + size
        return bytes(self._buffer[offset : offset + size])

    def uvarint(self, name: str) -> int:
        buffer, offset, end = self._buffer, self.offset, self._end
        value = shift = 0
        while True:
            if offset >= end:
                raise Malformed(name, "unsigned varint cut off")
            byte = buffer[offset]
            offset += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.offset = offset
                return value
            shift += 7
            if shift > 28:  # lengths, counts and tags are at most 32 bits (5 bytes)
                raise Malformed(name, "unsigned varint longer than 5 bytes")

    def _length(self, name: str, wide: bool) -> int:
        """A length or count: compact (uvarint - 1), else classic int16 (``wide``: int32);
        -1 is null."""
        if self.flexible:
            return self.uvarint(name) - 1
        length = self.int32(name) if wide else self.int16(name)
        if length < -1:
            raise Malformed(name, f"negative length {length}")
        return length

    def string(self, name: str) -> str:
        value = self.nullable_string(name)
        if value is None:
            raise Malformed(name, NULL_REFUSED)
        return value

    def nullable_string(self, name: str) -> str | None:
        length = self._length(name, wide=False)
        if length < 0:
            return None
        offset = self.offset
        if self._end - offset < length:
            raise Malformed(name, f"length {length} with {self._end - offset} bytes left")
        self.offset = offset + length
        try:
            return str(self._buffer[offset : offset + length], "utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed(name, f"not UTF-8: {exc.reason}") from None

    def _count(self, name: str, min_item: int) -> int:
        count = self._length(name, wide=True)
        if count < 0:
            raise Malformed(name, NULL_REFUSED)
        if count * min_item > self._end - self.offset:
            raise Malformed(name, f"{count} items cannot fit in {self._end - self.offset} bytes")
        return count

    def array(self, name: str, read_item: Callable[[Reader], _T], min_item: int) -> tuple[_T, ...]:
        """A non-nullable array of entities, each read by ``read_item``."""
        count = self._count(name, min_item)
        items: list[_T] = []
        try:
            for _ in range(count):
                items.append(read_item(self))
        except Malformed as exc:  # items[len(items)] failed
            raise Malformed(join_path(f"{name}[{len(items)}]", exc.path), exc.reason) from None
        return tuple(items)

    def int32_array(self, name: str) -> tuple[int, ...]:
        count = self._count(name, 4)
        offset = self.offset
        self.offset = offset + 4 * count
        return struct.unpack_from(f">{count}i", self._buffer, offset)

    def tags(self, known: Mapping[int, tuple[str, Callable[[Reader], None]]] | None = None) -> None:
        """A tagged-field section: ``known[tag]`` = (field name, its reader)."""
        count = self.uvarint("tagged fields")
        for _ in range(count):
            tag = self.uvarint("tagged field")
            size = self.uvarint(f"tagged field {tag}")
            start = self.offset
            end = start + size
            if end > self._end:
                raise Malformed("", f"tagged field {tag} of {size} bytes with {self.left} left")
            entry = None if known is None else known.get(tag)
            if entry is not None:
                name, read = entry
                try:
                    read(Reader(self._buffer, start, end, flexible=True))
                except Malformed as exc:
                    raise Malformed(join_path(name, exc.path), exc.reason) from None
            self.offset = end  # unknown tags are skipped (KIP-482)

    def entity(self, name: str, read: Callable[[Reader], _T]) -> _T:
        """A nested entity: its errors are reported under ``name``."""
        try:
            return read(self)
        except Malformed as exc:
            raise Malformed(join_path(name, exc.path), exc.reason) from None
