"""Hypothesis strategies for the response frames the producer decodes, valid and mutated.

Reusable by any test that feeds broker answers to the producer (decoder-level property
tests, producer-level fuzzing through the fake cluster or a scripted broker).

A *frame* here is what ``FrameDecoder`` returns and ``response_decoder(api, version)``
takes: response header + body, **without** the int32 size prefix (``with_size_prefix``
adds it, for writing to a socket). The frames are encoded from kio's generated classes by
a small schema-driven writer (below) rather than kio's own, because kio's writer cannot
express what the tests need: error codes kio does not know, and unknown tagged fields.
``test_response_decoding.py`` checks that, without those, both writers agree byte for byte.

The API, all strategies taking an ``ApiKey`` and a version from ``CLIENT_VERSIONS``:

* ``valid_frames(api, version)`` -> ``(frame, expected_entity)``: a well-formed response
  and the kio entity it must decode to.
* ``frames_with_unknown_tags(api, version)`` -> ``(frame, expected_entity)``: the same, with
  unknown tagged fields (sizes from ``UNKNOWN_TAG_SIZES`` among others) inserted in every
  tagged-field section at every level, header included (flexible versions only; for
  classic versions the frame has none). It must decode to ``expected_entity`` exactly.
* ``frames_with_unknown_error_codes(api, version)`` -> ``(frame, expected_entity)``: error
  codes kio does not know, kept as plain ints in ``expected_entity``.
* ``frames_with_a_null_array(api, version)`` -> ``(frame, path, nullable)``: one array
  made null (count -1, or 0 when compact); refused unless the schema allows the null.
* ``mutated_frames(api, version)`` -> ``bytes``: a valid frame with something broken or
  unusual (fields perturbed, array counts negated or null, string lengths broken, unknown
  tags, truncated, padded, bytes flipped, random bytes). Decoding must either succeed or
  raise ``ProtocolError``.
* ``encode_frame(entity, correlation_id=..., unknown_tags=...)`` and
  ``insert_unknown_tags(entity, payloads)`` for hand-written cases; ``entities(api,
  version)`` for the entities alone; ``RESPONSE_APIS`` and ``api_versions()`` to
  parametrize over.
"""

from __future__ import annotations

import datetime
import functools
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any

from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    classify_field,
    get_field_tag,
    is_optional,
)
from kio.serial._serialize import get_writer
from kio.serial.readers import tz_aware_from_i64
from kio.static.constants import EntityType
from kio.static.primitive import i32Timedelta, i64Timedelta

from asyncproducer.protocol._varint import encode_uvarint
from asyncproducer.protocol.messages import _module, _response_class_name
from asyncproducer.protocol.versions import CLIENT_VERSIONS, ApiKey

# The responses the producer itself decodes (Fetch and CreateTopics are the harness's).
RESPONSE_APIS: tuple[ApiKey, ...] = (
    ApiKey.API_VERSIONS,
    ApiKey.METADATA,
    ApiKey.PRODUCE,
    ApiKey.INIT_PRODUCER_ID,
    ApiKey.SASL_HANDSHAKE,
    ApiKey.SASL_AUTHENTICATE,
)

# Sizes around the uvarint boundary (127 fits one byte, 128 needs two) and beyond.
UNKNOWN_TAG_SIZES: tuple[int, ...] = (0, 1, 127, 128, 300)

KNOWN_ERROR_CODES: frozenset[int] = frozenset(int(code) for code in ErrorCode)

UnknownTags = Callable[[str, frozenset[int]], Sequence[tuple[int, bytes]]]
"""Called once per tagged-field section with its path (``"header"``, ``"MetadataResponse"``,
``"MetadataResponse.topics[0].partitions[1]"``, ...) and the tags the schema knows there;
returns the ``(tag, payload)`` pairs to insert (tags must not be known ones)."""


def api_versions() -> list[tuple[ApiKey, int]]:
    """Every ``(api, version)`` of ``RESPONSE_APIS`` in ``CLIENT_VERSIONS``, to parametrize."""
    return [
        (api, version)
        for api in RESPONSE_APIS
        for version in range(CLIENT_VERSIONS[api][0], CLIENT_VERSIONS[api][1] + 1)
    ]


def response_class(api: ApiKey, version: int) -> type[Any]:
    cls: type[Any] = getattr(_module(api, version, EntityType.response), _response_class_name(api))
    return cls


def with_size_prefix(frame: bytes) -> bytes:
    return struct.pack(">i", len(frame)) + frame


# --------------------------------------------------------------------------- entities


def unknown_error_codes() -> st.SearchStrategy[int]:
    """int16 error codes that kio's ErrorCode enum does not have."""
    return st.integers(-(2**15), 2**15 - 1).filter(lambda code: code not in KNOWN_ERROR_CODES)


def _known_error_codes() -> st.SearchStrategy[Any]:
    return st.sampled_from(list(ErrorCode))


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MAX_MS = int((datetime.datetime(9999, 1, 1, tzinfo=datetime.UTC) - _EPOCH).total_seconds()) * 1000


def _primitive(kafka_type: str, error_codes: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    bounds = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
    if kafka_type in bounds:
        bits = bounds[kafka_type]
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if kafka_type == "bool":
        return st.booleans()
    if kafka_type == "error_code":
        return error_codes
    if kafka_type == "string":
        return st.text(max_size=12)
    if kafka_type in ("bytes", "records"):
        return st.binary(max_size=12)
    if kafka_type == "uuid":  # the all-zero uuid reads back as None
        return st.uuids().filter(lambda value: value.int != 0)
    if kafka_type == "timedelta_i32":
        return st.integers(-(2**31), 2**31 - 1).map(
            lambda ms: i32Timedelta.parse(datetime.timedelta(milliseconds=ms))
        )
    if kafka_type == "timedelta_i64":
        return st.integers(0, 2**40).map(
            lambda ms: i64Timedelta.parse(datetime.timedelta(milliseconds=ms))
        )
    if kafka_type == "datetime_i64":
        # What kio's reader returns (TZAware.parse would refuse milliseconds).
        return st.integers(0, _MAX_MS).map(tz_aware_from_i64)
    raise NotImplementedError(f"no strategy for kafka_type {kafka_type!r}")


def _field_values(field: Field[Any], error_codes: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    kind = classify_field(field)
    item: st.SearchStrategy[Any]
    if isinstance(kind, EntityField | EntityTupleField):
        item = st.deferred(lambda: _entities(kind.type_, error_codes))
    else:
        item = _primitive(field.metadata["kafka_type"], error_codes)
    values = st.lists(item, max_size=3).map(tuple) if kind.is_array else item
    tagged = get_field_tag(field) is not None
    if is_optional(field) and not tagged:
        values = st.none() | values
    if tagged and field.default is not MISSING:
        values = st.just(field.default) | values
    return values


def _entities(cls: type[Any], error_codes: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(
        cls, **{field.name: _field_values(field, error_codes) for field in fields(cls)}
    )


def entities(
    api: ApiKey, version: int, *, error_codes: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[Any]:
    """Response entities of ``api``/``version`` with random values in every field;
    ``error_codes`` draws every error code (default: codes kio knows)."""
    if error_codes is None:
        return _cached_entities(api, version, "known")
    return _entities(response_class(api, version), error_codes)


_ERROR_CODE_KINDS: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "known": lambda: _known_error_codes(),
    "unknown": lambda: unknown_error_codes(),
    "any": lambda: _known_error_codes() | unknown_error_codes(),
}


@functools.cache
def _cached_entities(api: ApiKey, version: int, codes: str) -> st.SearchStrategy[Any]:
    # Building strategies is slow (Hypothesis validates each); build each once.
    return _entities(response_class(api, version), _ERROR_CODE_KINDS[codes]())


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True, slots=True)
class Span:
    """Where one encoded field lies in a frame, for targeted mutations."""

    kind: str  # "int", "error_code", "array", "string", "tags"
    start: int
    end: int
    prefix_end: int  # end of the length/count prefix ("array", "string"); else == end
    flexible: bool
    nullable: bool = False  # for "array": may the schema's array be null?
    path: str = ""


@dataclass(frozen=True, slots=True)
class Encoded:
    frame: bytes
    spans: tuple[Span, ...]


_INT_WIDTHS = {"int8": "b", "int16": "h", "int32": "i", "int64": "q", "error_code": "h"}


class _Writer:
    def __init__(self, unknown_tags: UnknownTags | None) -> None:
        self.out = bytearray()
        self.spans: list[Span] = []
        self.unknown_tags = unknown_tags

    def entity(self, cls: type[Any], value: Any, path: str) -> None:
        flexible: bool = cls.__flexible__
        tagged: list[tuple[int, Field[Any]]] = []
        for field in fields(cls):
            tag = get_field_tag(field)
            if tag is not None:
                tagged.append((int(tag), field))
            else:
                self.field(field, getattr(value, field.name), flexible, f"{path}.{field.name}")
        if flexible:
            self.tags(value, tagged, path)

    def tags(self, value: Any, tagged: list[tuple[int, Field[Any]]], path: str) -> None:
        entries: list[tuple[int, bytes]] = []
        for tag, field in tagged:
            field_value = getattr(value, field.name)
            if field_value == field.default:
                continue  # kio's writer omits defaults too
            inner = _Writer(self.unknown_tags)
            inner.field(field, field_value, True, f"{path}.{field.name}", tagged=True)
            entries.append((tag, bytes(inner.out)))
        known = frozenset(tag for tag, _ in tagged)
        extra = list(self.unknown_tags(path, known)) if self.unknown_tags else []
        if clash := known.intersection(tag for tag, _ in extra):
            raise ValueError(f"unknown tags {sorted(clash)} are known at {path}")
        entries += extra
        entries.sort(key=lambda entry: entry[0])  # KIP-482: ascending tag order
        start = len(self.out)
        self.out += encode_uvarint(len(entries))
        for tag, payload in entries:
            self.out += encode_uvarint(tag) + encode_uvarint(len(payload)) + payload
        self.spans.append(Span("tags", start, len(self.out), len(self.out), True))

    def field(
        self, field: Field[Any], value: Any, flexible: bool, path: str, *, tagged: bool = False
    ) -> None:
        kind = classify_field(field)
        if not kind.is_array:
            self.single(field, kind, value, flexible, path, tagged=tagged)
            return
        start = len(self.out)
        if value is None:
            self.out += b"\x00" if flexible else struct.pack(">i", -1)
        else:
            count = len(value)
            self.out += encode_uvarint(count + 1) if flexible else struct.pack(">i", count)
        prefix_end = len(self.out)
        for index, item in enumerate(value or ()):
            self.single(field, kind, item, flexible, f"{path}[{index}]", tagged=False)
        nullable = is_optional(field) and not tagged
        self.spans.append(Span("array", start, len(self.out), prefix_end, flexible, nullable, path))

    def single(
        self, field: Field[Any], kind: Any, value: Any, flexible: bool, path: str, *, tagged: bool
    ) -> None:
        if isinstance(kind, EntityField | EntityTupleField):
            self.entity(kind.type_, value, path)
            return
        kafka_type: str = field.metadata["kafka_type"]
        start = len(self.out)
        if kafka_type in _INT_WIDTHS:  # ints, and error codes kio does not know
            self.out += struct.pack(">" + _INT_WIDTHS[kafka_type], int(value))
            span_kind = "error_code" if kafka_type == "error_code" else "int"
            self.spans.append(Span(span_kind, start, len(self.out), len(self.out), flexible))
            return
        # Primitive arrays and tagged fields never carry a null marker of their own.
        optional = is_optional(field) and not tagged and not kind.is_array
        write = get_writer(kafka_type, flexible, optional)
        write(_Sink(self.out), value)
        if kafka_type in ("string", "bytes", "records"):
            prefix_end = _prefix_end(self.out, start, flexible, kafka_type)
            self.spans.append(Span("string", start, len(self.out), prefix_end, flexible))


def _prefix_end(out: bytearray, start: int, flexible: bool, kafka_type: str) -> int:
    if not flexible:  # int16 length for strings, int32 for bytes
        return start + (2 if kafka_type == "string" else 4)
    position = start
    while out[position] & 0x80:
        position += 1
    return position + 1


class _Sink:
    """The ``write`` method kio's writers need, over a bytearray."""

    def __init__(self, out: bytearray) -> None:
        self._out = out

    def write(self, data: bytes) -> int:
        self._out += data
        return len(data)


def encode_frame(
    entity: Any, *, correlation_id: int = 7, unknown_tags: UnknownTags | None = None
) -> bytes:
    """Response header + body for ``entity`` (no size prefix)."""
    return _encode(entity, correlation_id, unknown_tags).frame


def _encode(entity: Any, correlation_id: int, unknown_tags: UnknownTags | None) -> Encoded:
    writer = _Writer(unknown_tags)
    header_cls = type(entity).__header_schema__
    writer.out += struct.pack(">i", correlation_id)
    writer.spans.append(Span("int", 0, 4, 4, False))
    if header_cls.__flexible__:
        writer.tags(None, [], "header")
    writer.entity(type(entity), entity, type(entity).__name__)
    return Encoded(bytes(writer.out), tuple(writer.spans))


def _pick_tags(payloads: Sequence[bytes], first_tag: int | None) -> UnknownTags:
    def choose(_path: str, known: frozenset[int]) -> list[tuple[int, bytes]]:
        tag = first_tag if first_tag is not None else max(known, default=-1) + 1
        chosen = []
        for payload in payloads:
            while tag in known:
                tag += 1
            chosen.append((tag, payload))
            tag += 1
        return chosen

    return choose


def insert_unknown_tags(
    entity: Any, payloads: Sequence[bytes], *, first_tag: int | None = None, correlation_id: int = 7
) -> bytes:
    """``entity``'s frame with ``payloads`` as unknown tagged fields in every tagged-field
    section (header and every entity at every level), numbered from ``first_tag`` (default:
    just above the section's known tags), skipping known tags."""
    return encode_frame(
        entity, correlation_id=correlation_id, unknown_tags=_pick_tags(payloads, first_tag)
    )


_TAG_PAYLOADS: st.SearchStrategy[bytes] = st.sampled_from(UNKNOWN_TAG_SIZES).flatmap(
    lambda size: st.binary(min_size=size, max_size=size)
) | st.binary(max_size=40)


@functools.cache
def _unknown_tag_numbers(known: frozenset[int]) -> st.SearchStrategy[list[int]]:
    # Small numbers (next to the known ones) and multi-byte uvarints alike.
    numbers = st.integers(0, 10) | st.integers(0, 20_000)
    return st.lists(
        numbers.filter(lambda tag: tag not in known), min_size=1, max_size=3, unique=True
    )


# --------------------------------------------------------------------------- strategies


def valid_frames(
    api: ApiKey, version: int, *, error_codes: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[tuple[bytes, Any]]:
    """``(frame, expected_entity)``: a well-formed response and what it decodes to."""
    return st.builds(
        lambda entity, correlation_id: (
            encode_frame(entity, correlation_id=correlation_id),
            entity,
        ),
        entities(api, version, error_codes=error_codes),
        st.integers(-(2**31), 2**31 - 1),
    )


def frames_with_unknown_error_codes(
    api: ApiKey, version: int
) -> st.SearchStrategy[tuple[bytes, Any]]:
    """Like ``valid_frames``, every error code drawn from codes kio does not know."""
    return st.builds(
        lambda entity: (encode_frame(entity), entity), _cached_entities(api, version, "unknown")
    )


@st.composite
def frames_with_unknown_tags(draw: st.DrawFn, api: ApiKey, version: int) -> tuple[bytes, Any]:
    """``(frame, expected_entity)`` with 1-3 unknown tagged fields in every tagged-field
    section (flexible versions); the frame must decode to ``expected_entity``."""
    entity = draw(entities(api, version))
    return _encode(entity, 7, _drawn_unknown_tags(draw)).frame, entity


def _drawn_unknown_tags(draw: st.DrawFn) -> UnknownTags:
    def unknown(_path: str, known: frozenset[int]) -> list[tuple[int, bytes]]:
        tags = draw(_unknown_tag_numbers(known))
        return [(tag, draw(_TAG_PAYLOADS)) for tag in tags]

    return unknown


@st.composite
def frames_with_a_null_array(draw: st.DrawFn, api: ApiKey, version: int) -> tuple[bytes, str, bool]:
    """``(frame, path, nullable)``: a valid frame with one array (at ``path``, e.g.
    ``MetadataResponse.topics[0].partitions``) made null; it must decode if ``nullable``,
    else be refused with a ``ProtocolError``."""
    entity = draw(entities(api, version))
    arrays = [span for span in _encode(entity, 7, None).spans if span.kind == "array"]
    span = draw(st.sampled_from(arrays))
    frame = _encode(entity, 7, None).frame
    null = b"\x00" if span.flexible else struct.pack(">i", -1)
    return _replace(frame, span.start, span.end, null), span.path, span.nullable


def _replace(frame: bytes, start: int, end: int, data: bytes) -> bytes:
    return frame[:start] + data + frame[end:]


@st.composite
def _structured_mutation(draw: st.DrawFn, encoded: Encoded) -> bytes:
    frame, spans = encoded.frame, encoded.spans
    # A kind first, then a span of it: arrays are as likely as the many ints.
    kind = draw(st.sampled_from(sorted({span.kind for span in spans})))
    span = draw(st.sampled_from([span for span in spans if span.kind == kind]))
    flexible = span.flexible
    if span.kind == "array":
        if draw(st.booleans()):  # a clean null where the schema may forbid it
            null = b"\x00" if flexible else struct.pack(">i", -1)
            return _replace(frame, span.start, span.end, null)
        count = draw(st.integers(-(2**31), 2**31 - 1))
        prefix = encode_uvarint(count & 0xFFFFFFFF) if flexible else struct.pack(">i", count)
        return _replace(frame, span.start, span.prefix_end, prefix)
    if span.kind == "string":
        length = draw(
            st.sampled_from([-1, -2, 0, 1, 32767, -32768]) | st.integers(-(2**15), 2**15 - 1)
        )
        if flexible:
            prefix = encode_uvarint((length + 1) & 0xFFFFFFFF)
        else:  # int16 for strings, int32 for bytes
            width = span.prefix_end - span.start
            prefix = struct.pack(">h" if width == 2 else ">i", length)
        return _replace(frame, span.start, span.prefix_end, prefix)
    if span.kind == "error_code":
        code = draw(st.sampled_from([35, -1, 12345, 0, 3, 6]) | st.integers(-(2**15), 2**15 - 1))
        return _replace(frame, span.start, span.end, struct.pack(">h", code))
    if span.kind == "tags":
        count = draw(st.integers(0, 2**32 - 1))
        return _replace(frame, span.start, span.start + 1, encode_uvarint(count))
    width = span.end - span.start
    return _replace(frame, span.start, span.end, draw(st.binary(min_size=width, max_size=width)))


@st.composite
def _raw_mutation(draw: st.DrawFn, frame: bytes) -> bytes:
    choice = draw(st.sampled_from(["truncate", "pad", "flip", "splice", "none", "none", "none"]))
    if choice == "truncate":
        return frame[: draw(st.integers(0, max(len(frame) - 1, 0)))]
    if choice == "pad":
        return frame + draw(st.binary(min_size=1, max_size=20))
    if choice == "flip" and frame:
        data = bytearray(frame)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return bytes(data)
    if choice == "splice":
        at = draw(st.integers(0, len(frame)))
        return frame[:at] + draw(st.binary(min_size=1, max_size=8)) + frame[at:]
    return frame


@st.composite
def mutated_frames(draw: st.DrawFn, api: ApiKey, version: int) -> bytes:
    """A frame derived from a valid one by one structured mutation (a field, array count,
    string length or tagged-section count changed), unknown tags, and/or a raw one
    (truncated, padded, bytes flipped or spliced in); or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    codes = draw(st.sampled_from(["known", "known", "any"]))
    entity = draw(_cached_entities(api, version, codes))
    unknown_tags = _drawn_unknown_tags(draw) if draw(st.booleans()) else None
    encoded = _encode(entity, 7, unknown_tags)
    frame = encoded.frame
    if encoded.spans and draw(st.integers(0, 2)) > 0:
        frame = draw(_structured_mutation(encoded))
    return draw(_raw_mutation(frame))


def spans_of(entity: Any) -> Iterator[Span]:
    """The spans of ``entity``'s frame (for tests that mutate by hand)."""
    yield from _encode(entity, 7, None).spans


__all__ = [
    "KNOWN_ERROR_CODES",
    "RESPONSE_APIS",
    "UNKNOWN_TAG_SIZES",
    "Encoded",
    "Span",
    "api_versions",
    "encode_frame",
    "entities",
    "frames_with_a_null_array",
    "frames_with_unknown_error_codes",
    "frames_with_unknown_tags",
    "insert_unknown_tags",
    "mutated_frames",
    "response_class",
    "spans_of",
    "unknown_error_codes",
    "valid_frames",
    "with_size_prefix",
]
