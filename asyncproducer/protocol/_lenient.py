"""A liberal, schema-driven reader for kio entities: the fallback of ``response_decoder``.

kio's native reader (Rust) is fast and strict: it refuses a tagged field it does not know
and an error code missing from its ``ErrorCode`` enum. Kafka asks more of a reader:
KIP-482 lets a broker add tagged fields to an existing version, which readers must skip,
and Java's clients map an error code they do not know to UNKNOWN_SERVER_ERROR rather than
refusing the whole response. So when the native reader refuses a response, this module
reads it again, walking the same kio classes field by field:

* primitives and primitive arrays with kio's own per-field readers (what the native
  reader uses), so both paths build identical entities;
* nested entities and entity arrays recursively (compact or classic arrays by the
  class's ``__flexible__``; KIP-893 nullable structs by their int8 marker);
* error codes as int16, kept as a plain ``int`` when kio does not know them (callers use
  ``int(error_code)`` and ``errors.error_for_code``, which maps them to
  ``UnknownBrokerError``);
* every tagged-field section (``uvarint`` count, then ``uvarint`` tag, ``uvarint`` size
  and the bytes): known tags are read within their declared size, unknown ones skipped,
  at every level, inside known tagged entities too.

It is only the fallback: Produce responses from a broker without surprises never pay for
it. Messages stay schema-generated: nothing here knows a message layout, only kio's
field kinds. Malformed input raises ``ProtocolError`` naming the field's path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Any, TypeAlias

import asyncproducer.protocol._kio  # noqa: F401  # before kio: see there

# isort: split
from kio._kio_native import get_field_reader
from kio.schema.errors import ErrorCode
from kio.serial._implicit_defaults import get_tagged_field_default
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)
from kio.serial.readers import (
    read_compact_array_length,
    read_int8,
    read_int16,
    read_legacy_array_length,
    read_unsigned_varint,
)

from asyncproducer.errors import ProtocolError

# (buffer, offset) -> (value, new offset). kio's readers return sizes; ours return ends,
# which keeps the bookkeeping of nested reads in one place.
Read: TypeAlias = Callable[[memoryview, int], tuple[Any, int]]

_ERROR_CODES: dict[int, ErrorCode] = {int(code): code for code in ErrorCode}


class _Malformed(Exception):
    """Carries the path of the field that failed up to the entity that names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason


def read_entity(cls: type[Any], buffer: memoryview, offset: int = 0) -> tuple[Any, int]:
    """Read one ``cls`` entity at ``offset``; returns it and the offset after it.

    Raises ``ProtocolError`` naming the field when the bytes do not fit the schema.
    """
    try:
        return _entity_reader(cls)(buffer, offset)
    except _Malformed as exc:
        raise ProtocolError(f"{exc.path}: {exc.reason}") from None


def _sized(read: Callable[[memoryview, int], tuple[Any, int]]) -> Read:
    """Adapt a kio reader (returning a size) to ours (returning the end)."""

    def read_sized(buffer: memoryview, offset: int) -> tuple[Any, int]:
        value, size = read(buffer, offset)
        return value, offset + size

    return read_sized


def _read_error_code(buffer: memoryview, offset: int) -> tuple[Any, int]:
    code, size = read_int16(buffer, offset)
    # Known codes become kio's enum, as the native reader makes them; unknown ones stay
    # ints (Java: UNKNOWN_SERVER_ERROR), so the response is still usable.
    return _ERROR_CODES.get(code, code), offset + size


def _array(read_item: Read, flexible: bool) -> Read:
    def read_array(buffer: memoryview, offset: int) -> tuple[Any, int]:
        if flexible:
            count, size = read_compact_array_length(buffer, offset)
        else:
            count, size = read_legacy_array_length(buffer, offset)
            if count == -1:
                count = None
            elif count < -1:
                raise ValueError(f"negative array length {count}")
        offset += size
        if count is None:
            # Null: kept, so that the nullability check (messages.py) refuses it where
            # the schema does not allow it, for both readers alike.
            return None, offset
        if count > len(buffer) - offset:  # every item takes at least one byte
            raise ValueError(f"array of {count} items in {len(buffer) - offset} bytes")
        items = []
        for index in range(count):
            try:
                item, offset = read_item(buffer, offset)
            except _Malformed as exc:
                raise _Malformed(f"[{index}].{exc.path}", exc.reason) from None
            items.append(item)
        return tuple(items), offset

    return read_array


def _nullable(read_entity: Read) -> Read:
    """KIP-893: a nullable struct is an int8 marker (-1 null, 1 present), then the struct."""

    def read_nullable(buffer: memoryview, offset: int) -> tuple[Any, int]:
        marker, size = read_int8(buffer, offset)
        if marker == -1:
            return None, offset + size
        if marker != 1:
            raise ValueError(f"nullable struct marker {marker} is neither -1 nor 1")
        return read_entity(buffer, offset + size)

    return read_nullable


def _field_reader(cls: type[Any], field: Field[Any], tagged: bool) -> Read:
    kind = classify_field(field)
    if isinstance(kind, EntityField | EntityTupleField):
        nested = _entity_reader(kind.type_)
        if isinstance(kind, EntityTupleField):
            return _array(nested, cls.__flexible__)
        # Tagged fields are optional by their tag, never by a marker (as kio reads them).
        return _nullable(nested) if is_optional(field) and not tagged else nested
    if get_schema_field_type(field) == "error_code":
        if isinstance(kind, PrimitiveTupleField):
            return _array(_read_error_code, cls.__flexible__)
        return _read_error_code
    return _sized(get_field_reader(cls, field, False, tagged))


# Built once per class. (A dict, not functools.cache: kio's frozen dataclass types do not
# type-check as Hashable.)
_readers: dict[type[Any], Read] = {}


def _entity_reader(cls: type[Any]) -> Read:
    reader = _readers.get(cls)
    if reader is None:
        reader = _readers[cls] = _build_entity_reader(cls)
    return reader


def _build_entity_reader(cls: type[Any]) -> Read:
    flexible: bool = cls.__flexible__
    regular: list[tuple[str, Read]] = []
    tagged: dict[int, tuple[str, Read]] = {}
    for field in fields(cls):
        tag = get_field_tag(field)
        if tag is None:
            regular.append((field.name, _field_reader(cls, field, tagged=False)))
        else:
            tagged[int(tag)] = (field.name, _field_reader(cls, field, tagged=True))
    # kio's classes give tagged fields defaults; where one does not, use kio's implicit one.
    tag_defaults = {
        field.name: get_tagged_field_default(field)
        for field in fields(cls)
        if get_field_tag(field) is not None and field.default is MISSING
    }

    def read(buffer: memoryview, offset: int) -> tuple[Any, int]:
        values: dict[str, Any] = {}
        for name, read_field in regular:
            offset = _read_into(values, name, read_field, buffer, offset)
        if flexible:
            values.update((k, v) for k, v in tag_defaults.items() if k not in values)
            offset = _read_tags(values, tagged, buffer, offset)
        return cls(**values), offset

    return read


def _read_into(
    values: dict[str, Any], name: str, read_field: Read, buffer: memoryview, offset: int
) -> int:
    try:
        values[name], offset = read_field(buffer, offset)
    except _Malformed as exc:
        sep = "" if exc.path.startswith("[") else "."
        raise _Malformed(f"{name}{sep}{exc.path}", exc.reason) from None
    except Exception as exc:  # kio's readers raise several types on malformed input
        raise _Malformed(name, str(exc) or type(exc).__name__) from None
    return offset


def _read_tags(
    values: dict[str, Any],
    known: dict[int, tuple[str, Read]],
    buffer: memoryview,
    offset: int,
) -> int:
    """Read a tagged-field section: known tags into ``values``, unknown ones skipped."""
    try:
        count, size = read_unsigned_varint(buffer, offset)
        offset += size
        for _ in range(count):
            tag, size = read_unsigned_varint(buffer, offset)
            offset += size
            length, size = read_unsigned_varint(buffer, offset)
            offset += size
            end = offset + length
            if end > len(buffer):
                raise ValueError(f"tagged field {tag} of {length} bytes overruns the buffer")
            entry = known.get(tag)
            if entry is not None:
                name, read_field = entry
                # Read within the declared size: a field may not spill into the next one.
                _read_into(values, name, read_field, buffer[:end], offset)
            offset = end
    except _Malformed:
        raise
    except Exception as exc:
        raise _Malformed("<tagged fields>", str(exc) or type(exc).__name__) from None
    return offset
