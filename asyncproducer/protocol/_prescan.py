"""Check a response body's shape against its schema before kio reads it (sans-I/O).

Two things kio's readers do not protect against, found by fuzzing response bytes:

* **Array counts are trusted.** kio's native reader reserves memory for ``count`` items
  before reading any (8 bytes each), and a failed Rust allocation aborts the process: a
  response with an array count of 2**31 - 1 kills the Python process on a machine with
  less than 17 GB of memory, and a compact count of 2**32 kills it anywhere (kio 0.6.5).
  No exception, no cleanup: the whole application is gone.
* **Null where the schema forbids it.** An array count of -1 (classic) or 0 (compact)
  means null, and kio returns ``None`` whether or not the field is nullable; code using
  the entity then fails far from the cause (``'NoneType' object is not iterable`` while
  reading Metadata brokers, say). Java's generated readers refuse such a message
  ("non-nullable field ... was serialized as null"); so does this scan.

``prescan`` walks the body as the schema lays it out, building nothing: runs of fixed-
width fields are skipped at once, strings by their length, and every array count is
checked against the bytes left (each item takes at least a known number of bytes)
before anything is read or reserved for it. Tagged-field sections are walked too: known
tagged fields inside their declared size, unknown ones skipped (KIP-482). What passes is
safe to give to kio's reader, or to ``_lenient``.

It runs on every response, Produce included, so the walk of each kio class is generated
once as straight-line Python (as ``dataclasses`` generates ``__init__``): one function call
per entity and a few comparisons per field. ``walker_source(cls)`` shows the code.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import Field, fields
from typing import Any, TypeAlias

import asyncproducer.protocol._kio  # noqa: F401  # before kio: see there

# isort: split
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)

from asyncproducer.protocol._reader import join_path

# (buffer, offset) -> the offset after the entity; raises _Bad, IndexError, struct.error.
Walk: TypeAlias = Callable[[memoryview, int], int]

_FIXED_WIDTHS = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_NULL_REFUSED = "null, which its schema does not allow"


class ShapeError(Exception):
    """The body does not fit its schema; the message names the field and says how."""


class _Bad(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason


def prescanner(cls: type[Any], *, exact: bool = False) -> Callable[[memoryview], None]:
    """A function raising ``ShapeError`` unless a body starts with one ``cls`` whose array
    counts fit the bytes left and whose null arrays are all nullable; ``exact``: and
    nothing after it."""
    walk = _walker(cls)

    def prescan(body: memoryview) -> None:
        try:
            end = walk(body, 0)
        except _Bad as exc:
            raise ShapeError(_message(exc)) from None
        except (IndexError, struct.error):
            raise ShapeError("the body ends early") from None
        if end > len(body):
            raise ShapeError(f"the body ends {end - len(body)} bytes early")
        # Otherwise bytes after a complete body are ignored, as Java's clients ignore them
        # (librdkafka's mock cluster appends one to flexible Metadata responses).
        if exact and end < len(body):
            raise ShapeError(f"{len(body) - end} unexpected trailing bytes")

    return prescan


def _message(exc: _Bad) -> str:
    return f"{exc.path}: {exc.reason}" if exc.path else exc.reason


def walker_source(cls: type[Any]) -> str:
    """The generated walk of ``cls`` (for debugging and review)."""
    return _Generator(cls).source()


# --------------------------------------------------------------------------- runtime helpers


def _uvarint(buffer: memoryview, offset: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        byte = buffer[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
        if shift > 28:  # lengths, counts and tags are at most 32 bits (5 bytes), as in Java
            raise _Bad("", "unsigned varint longer than 5 bytes")


def _compact_string(buffer: memoryview, offset: int) -> int:
    """Skip one compact (uvarint length + 1) string: an item of a string array."""
    length, offset = _uvarint(buffer, offset)
    return _skip_string(buffer, offset, length - 1)


def _classic_string(buffer: memoryview, offset: int) -> int:
    """Skip one int16-length string: an item of a string array."""
    if len(buffer) - offset < 2:
        raise _Bad("", "string length cut off")
    length = int.from_bytes(buffer[offset : offset + 2], "big", signed=True)
    return _skip_string(buffer, offset + 2, length)


def _skip_string(buffer: memoryview, offset: int, length: int) -> int:
    if length > len(buffer) - offset:
        raise _Bad("", f"length {length} with {len(buffer) - offset} bytes left")
    if length < -1:
        raise _Bad("", f"negative length {length}")
    return offset + max(length, 0)


def _tags(buffer: memoryview, offset: int, known: dict[int, tuple[str, Walk]]) -> int:
    """A tagged-field section with at least one field (the generated code skips empty ones)."""
    count, offset = _uvarint(buffer, offset)
    for _ in range(count):
        tag, offset = _uvarint(buffer, offset)
        size, offset = _uvarint(buffer, offset)
        end = offset + size
        if end > len(buffer):
            raise _Bad("", f"tagged field {tag} of {size} bytes with {len(buffer) - offset} left")
        entry = known.get(tag)
        if entry is not None:
            name, walk = entry
            try:
                walk(buffer[:end], offset)  # inside its declared size
            except _Bad as exc:
                raise _Bad(join_path(name, exc.path), exc.reason) from None
            except (IndexError, struct.error):
                raise _Bad(name, "overruns its tagged field") from None
        offset = end  # unknown tags are skipped (KIP-482)
    return offset


_RUNTIME: dict[str, Any] = {
    "_Bad": _Bad,
    "_NULL": _NULL_REFUSED,
    "_join": join_path,
    "_tags": _tags,
    "_uvarint": _uvarint,
    "_i16": struct.Struct(">h").unpack_from,
    "_i32": struct.Struct(">i").unpack_from,
}


# Generated once per class. (A dict, not functools.cache: kio's frozen dataclass types do
# not type-check as Hashable.)
_walkers: dict[type[Any], Walk] = {}


def _walker(cls: type[Any]) -> Walk:
    walk = _walkers.get(cls)
    if walk is None:
        walk = _walkers[cls] = _generate(cls)
    return walk


def _generate(cls: type[Any]) -> Walk:
    generator = _Generator(cls)
    namespace = dict(_RUNTIME, **generator.references())
    exec(generator.source(), namespace)  # source generated from kio's schema, nothing else
    walk: Walk = namespace["walk"]
    return walk


# --------------------------------------------------------------------------- generation


@functools.cache
def _min_size(cls: type[Any]) -> int:
    """The fewest bytes one ``cls`` takes: bounds the item count an array can claim."""
    size = 1 if cls.__flexible__ else 0  # the tagged-field count
    for field in fields(cls):
        if get_field_tag(field) is not None:
            continue
        kind = classify_field(field)
        if kind.is_array:
            size += 1 if cls.__flexible__ else 4
        elif isinstance(kind, EntityField):
            size += 1 if is_optional(field) else _min_size(kind.type_)
        else:
            kafka_type = get_schema_field_type(field)
            width = _FIXED_WIDTHS.get(kafka_type)
            if width is None:  # a string (int16 length), bytes (int32), or compact (uvarint)
                width = 1 if cls.__flexible__ else (2 if kafka_type == "string" else 4)
            size += width
    return max(size, 1)  # a zero-size item would let any count pass; kio has none


@functools.cache
def _fixed_width(cls: type[Any]) -> int | None:
    """The size of every ``cls``, if it is one (a classic entity of fixed-width fields)."""
    if cls.__flexible__:
        return None  # it ends with a tagged-field section
    total = 0
    for field in fields(cls):
        kind = classify_field(field)
        if kind.is_array:
            return None
        if isinstance(kind, EntityField):  # a nullable struct has a marker: no fixed width
            width = None if is_optional(field) else _fixed_width(kind.type_)
        else:  # a nullable timestamp or uuid keeps its width; strings have none
            width = _FIXED_WIDTHS.get(get_schema_field_type(field))
        if width is None:
            return None
        total += width
    return total


class _Generator:
    """Writes ``walk(b, o)`` for one class; nested classes get walkers of their own."""

    def __init__(self, cls: type[Any]) -> None:
        self._cls = cls
        self._flexible: bool = cls.__flexible__
        self._refs: dict[str, Any] = {}
        self._lines: list[str] = []
        self._tag_functions: list[str] = []
        self._skip = 0

    def references(self) -> dict[str, Any]:
        self.source()
        return self._refs

    def source(self) -> str:
        self._lines, self._tag_functions, self._refs, self._skip = [], [], {}, 0
        known: dict[int, tuple[str, str]] = {}
        for field in fields(self._cls):
            tag = get_field_tag(field)
            if tag is None:
                self._field(field, tagged=False, indent="    ")
            else:
                known[int(tag)] = (field.name, self._tag_function(field))
        self._flush("    ")
        if self._flexible:
            entries = ", ".join(f"{tag}: ({name!r}, {fn})" for tag, (name, fn) in known.items())
            self._lines += [
                "    if b[o] == 0:  # no tagged fields: nearly every section",
                "        o += 1",
                "    else:",
                "        o = _tags(b, o, _KNOWN)",
            ]
            self._tag_functions.append(f"_KNOWN = {{{entries}}}")
        body = "\n".join(self._lines)
        tags = "\n".join(self._tag_functions)
        return f"{tags}\n\ndef walk(b, o):\n    n = len(b)\n{body}\n    return o\n"

    def _tag_function(self, field: Field[Any]) -> str:
        """A tagged field's walk, as a function of its own (called inside its size)."""
        name = f"_tag_{field.name}"
        outer_lines, outer_skip = self._lines, self._skip
        self._lines, self._skip = [], 0
        self._field(field, tagged=True, indent="    ")
        self._flush("    ")
        body = "\n".join(self._lines) or "    pass"
        self._lines, self._skip = outer_lines, outer_skip
        self._tag_functions.append(f"def {name}(b, o):\n    n = len(b)\n{body}\n    return o\n")
        return name

    def _flush(self, indent: str) -> None:
        if self._skip:
            self._lines.append(f"{indent}o += {self._skip}")
            self._skip = 0

    def _entity_ref(self, cls: type[Any]) -> str:
        ref = f"_walk_{cls.__name__}"
        self._refs[ref] = _walker(cls)
        return ref

    def _field(self, field: Field[Any], *, tagged: bool, indent: str) -> None:
        kind = classify_field(field)
        nullable = is_optional(field) and not tagged  # tags are optional by their presence
        name = field.name
        if isinstance(kind, EntityField | EntityTupleField):
            width = _fixed_width(kind.type_)
            if isinstance(kind, EntityTupleField):
                # Items of one fixed width (classic Produce partitions): one skip for all.
                item = width if width is not None else self._entity_ref(kind.type_)
                self._array(name, nullable, item, _min_size(kind.type_), indent)
            elif width is not None and not nullable:
                self._skip += width
            else:
                self._entity(name, nullable, self._entity_ref(kind.type_), indent)
            return
        kafka_type = get_schema_field_type(field)
        width = _FIXED_WIDTHS.get(kafka_type)
        if kind.is_array:
            if kafka_type == "string":  # SaslHandshake's mechanisms
                walk, size = ("_compact_string", 1) if self._flexible else ("_classic_string", 2)
                self._refs[walk] = globals()[walk]
                self._array(name, nullable, walk, size, indent)
                return
            if width is None:
                raise NotImplementedError(f"{name}: arrays of {kafka_type} are not planned for")
            self._array(name, nullable, width, width, indent)
        elif width is not None:
            self._skip += width
        elif kafka_type in ("string", "bytes", "records"):
            self._string(name, kafka_type != "string", indent)
        else:
            raise NotImplementedError(f"{name}: {kafka_type} is not planned for")

    def _read_length(self, var: str, wide: bool, indent: str) -> None:
        """``var`` = a length or count: compact (uvarint - 1) or classic (int16/int32)."""
        self._flush(indent)
        if self._flexible:
            self._lines += [
                f"{indent}{var} = b[o] - 1",
                f"{indent}if {var} < 0x7F:  # one byte: nearly every length",
                f"{indent}    o += 1",
                f"{indent}else:",
                f"{indent}    {var}, o = _uvarint(b, o)",
                f"{indent}    {var} -= 1",
            ]
        else:
            read, size = ("_i32", 4) if wide else ("_i16", 2)
            self._lines += [f"{indent}{var} = {read}(b, o)[0]", f"{indent}o += {size}"]

    def _string(self, name: str, wide: bool, indent: str) -> None:
        # A null for a non-nullable string is left to kio, which refuses it.
        self._read_length("x", wide, indent)
        self._lines += [
            f"{indent}if x > 0:",
            f"{indent}    if x > n - o:",
            f"{indent}        raise _Bad({name!r}, f'length {{x}} with {{n - o}} bytes left')",
            f"{indent}    o += x",
            f"{indent}elif x < -1:",
            f"{indent}    raise _Bad({name!r}, f'negative length {{x}}')",
        ]

    def _array(
        self, name: str, nullable: bool, item: str | int, min_item: int, indent: str
    ) -> None:
        self._read_length("c", True, indent)
        lines = [
            f"{indent}if c >= 0:",
            f"{indent}    if c * {min_item} > n - o:",
            f"{indent}        raise _Bad({name!r}, f'{{c}} items cannot fit in {{n - o}} bytes')",
        ]
        if isinstance(item, int):
            lines.append(f"{indent}    o += c * {item}")
        else:
            lines += [
                f"{indent}    i = 0",
                f"{indent}    try:",
                f"{indent}        for i in range(c):",
                f"{indent}            o = {item}(b, o)",
                f"{indent}    except _Bad as e:",
                f"{indent}        raise _Bad(_join(f'{name}[{{i}}]', e.path), e.reason) from None",
            ]
        lines += [
            f"{indent}elif c != -1:",
            f"{indent}    raise _Bad({name!r}, f'negative array count {{c}}')",
        ]
        if not nullable:
            lines += [f"{indent}else:", f"{indent}    raise _Bad({name!r}, _NULL)"]
        self._lines += lines

    def _entity(self, name: str, nullable: bool, walk: str, indent: str) -> None:
        self._flush(indent)
        inner = indent
        if nullable:  # KIP-893: an int8 marker, -1 for null
            self._lines += [
                f"{indent}if b[o] == 0xFF:",
                f"{indent}    o += 1",
                f"{indent}else:",
                f"{indent}    o += 1",
            ]
            inner = indent + "    "
        self._lines += [
            f"{inner}try:",
            f"{inner}    o = {walk}(b, o)",
            f"{inner}except _Bad as e:",
            f"{inner}    raise _Bad(_join({name!r}, e.path), e.reason) from None",
        ]
