"""The Produce request, encoded by hand (sans-I/O).

The requests of a producer's start are encoded by hand too (:mod:`requests`: no kio in a
cold start); the others are kio entities written by :func:`framing.encode_request`, whose
writers kio assembles by introspection: a Python call or two per field, a ``BytesIO``,
and the entity objects :func:`messages.produce_request` has to build first. Produce is
the one request on the latency path (one per drained set of batches), where that
generic path cost about a tenth of the CPU per request. Its schema is small and has not
changed shape since v3, so it is written here directly: fixed-size fields through
precompiled ``struct`` formats, the record batches (nearly all of the bytes) passed
through untouched, as parts of the frame that the connection writes without joining.

Versions 3-8 use request header v1 and classic lengths (int16 for strings, int32 for
arrays and bytes). Versions 9+ are flexible: request header v2 (whose client id stays a
classic nullable string, as Kafka's RequestHeader.json special-cases it, followed by an
empty tagged-field section), unsigned-varint ``length + 1`` for strings, arrays and
records (0 is null), and an empty tagged-field section closing every struct. Within
each group the request has the same fields (the bumps announce capabilities, such as
zstd in v7, transaction version 2 in v12, or changes to the response), so 3-8 and 9-12
differ only in the version number in the header.
``tests/unit/test_produce_request.py`` checks every version against kio.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from asyncproducer.protocol._varint import encode_uvarint
from asyncproducer.protocol.requests import HandEncodedRequest
from asyncproducer.protocol.versions import ApiKey

_FIRST_FLEXIBLE_VERSION = 9

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_ACKS_TIMEOUT_COUNT = struct.Struct(">hii")  # classic: acks, timeout, topic count
_INDEX_LENGTH = struct.Struct(">ii")  # classic: partition index, records length

_NO_TAGS = b"\x00"  # an empty tagged-field section: a count of 0
_NULL_CLASSIC_STRING = _INT16.pack(-1)
_NULL_COMPACT_STRING = b"\x00"


def _classic_body(
    acks: int,
    timeout_ms: int,
    topic_data: Mapping[str, Mapping[int, bytes]],
    transactional_id: str | None,
) -> list[bytes]:
    if transactional_id is None:
        parts = [_NULL_CLASSIC_STRING]
    else:
        raw = transactional_id.encode()
        parts = [_INT16.pack(len(raw)), raw]
    parts.append(_ACKS_TIMEOUT_COUNT.pack(acks, timeout_ms, len(topic_data)))
    for topic, partitions in topic_data.items():
        raw = topic.encode()
        parts += (_INT16.pack(len(raw)), raw, _INT32.pack(len(partitions)))
        for index, records in partitions.items():
            parts += (_INDEX_LENGTH.pack(index, len(records)), records)
    return parts


def _flexible_body(
    acks: int,
    timeout_ms: int,
    topic_data: Mapping[str, Mapping[int, bytes]],
    transactional_id: str | None,
) -> list[bytes]:
    if transactional_id is None:
        parts = [_NULL_COMPACT_STRING]
    else:
        raw = transactional_id.encode()
        parts = [encode_uvarint(len(raw) + 1), raw]
    parts += (_ACKS_TIMEOUT.pack(acks, timeout_ms), encode_uvarint(len(topic_data) + 1))
    for topic, partitions in topic_data.items():
        raw = topic.encode()
        parts += (encode_uvarint(len(raw) + 1), raw, encode_uvarint(len(partitions) + 1))
        for index, records in partitions.items():
            # Records are nullable in the schema, so compact *nullable* bytes: length + 1.
            parts += (_INT32.pack(index) + encode_uvarint(len(records) + 1), records, _NO_TAGS)
        parts.append(_NO_TAGS)  # end of the topic
    parts.append(_NO_TAGS)  # end of the request
    return parts


class ProduceRequest(HandEncodedRequest):
    """A Produce request, encoded straight to bytes (no kio entities).

    The body does not depend on the correlation id or the client id, so it is encoded
    once, here, into parts that :meth:`frame_parts` puts behind the header: the record
    batches are not copied (the transport writes them in chunks). Out-of-range values (an
    acks or partition index beyond its integer type) therefore raise ValueError on
    construction.
    """

    __slots__ = ()
    __api_key__ = ApiKey.PRODUCE
    _FIRST_FLEXIBLE = _FIRST_FLEXIBLE_VERSION

    def __init__(
        self,
        version: int,
        *,
        acks: int,
        timeout_ms: int,
        topic_data: Mapping[str, Mapping[int, bytes]],
        transactional_id: str | None = None,
    ) -> None:
        encode_body = _flexible_body if version >= _FIRST_FLEXIBLE_VERSION else _classic_body
        try:
            body = encode_body(acks, timeout_ms, topic_data, transactional_id)
        except struct.error as exc:
            raise ValueError(f"a Produce request field is out of range: {exc}") from None
        super().__init__(version, body)
