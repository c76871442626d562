"""Size-prefixed framing, request headers and response headers (sans-I/O).

Every Kafka message on the wire is ``int32 size`` + ``size`` bytes. A request is a header
(v1: api key, version, correlation id, client id; v2 adds tagged fields, for flexible
versions) followed by the payload; a response is a header (v0: correlation id; v1 adds
tagged fields) followed by the body. kio's classes carry which header each version uses,
including the exception that ApiVersions responses always use header v0.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32
from kio.static.protocol import RequestPayload

from asyncproducer.errors import ProtocolError

_SIZE = struct.Struct(">i")
_CORRELATION_ID = struct.Struct(">i")

# Java's clients default to no limit on the response size; a bound turns a non-Kafka
# peer's reply (an HTTP server answering "HTTP/1.1" reads as a 1.2 GB frame) into a clear
# error instead of a 1.2 GB allocation.
DEFAULT_MAX_FRAME_SIZE = 256 * 1024 * 1024


# kio builds a reader/writer per entity class by introspection; build each once. (A dict,
# not functools.cache: kio's frozen dataclass types do not type-check as Hashable.)
_writers: dict[type[Any], Any] = {}
_readers: dict[type[Any], Any] = {}


def _writer(cls: type[Any]) -> Any:
    writer = _writers.get(cls)
    if writer is None:
        writer = _writers[cls] = entity_writer(cls)
    return writer


def _header_reader(cls: type[Any]) -> Any:
    reader = _readers.get(cls)
    if reader is None:
        reader = _readers[cls] = entity_reader(cls)
    return reader


def encode_request(payload: RequestPayload, *, correlation_id: int, client_id: str | None) -> bytes:
    """The complete frame (size prefix included) for ``payload``."""
    header_cls = payload.__header_schema__
    header: RequestHeaderV1 | RequestHeaderV2 = header_cls(
        request_api_key=payload.__api_key__,
        request_api_version=payload.__version__,
        correlation_id=i32(correlation_id),
        client_id=client_id,
    )
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    _writer(header_cls)(buffer, header)
    _writer(type(payload))(buffer, payload)
    frame = buffer.getbuffer()
    _SIZE.pack_into(frame, 0, len(frame) - 4)
    del frame
    return buffer.getvalue()


def peek_correlation_id(frame: bytes | bytearray | memoryview) -> int:
    """The correlation id of a response frame (the first field of every response header)."""
    if len(frame) < 4:
        raise ProtocolError(f"response of {len(frame)} bytes is too short for a header")
    correlation_id: int = _CORRELATION_ID.unpack_from(frame)[0]
    return correlation_id


def response_body(frame: memoryview, header_cls: type[Any]) -> memoryview:
    """The response body after the response header of type ``header_cls``."""
    try:
        _, size = _header_reader(header_cls)(frame, 0)
    except Exception as exc:
        raise ProtocolError(f"cannot decode response header: {exc}") from exc
    return frame[size:]


class FrameDecoder:
    """Collects stream bytes and returns the complete frames (without size prefix) in them."""

    __slots__ = ("_buffer", "_max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_frame_size = max_frame_size

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        available = len(buffer)
        while available - start >= 4:
            (size,) = _SIZE.unpack_from(buffer, start)
            if size < 0 or size > self._max_frame_size:
                raise ProtocolError(
                    f"frame size {size} is outside 0..{self._max_frame_size}: the peer is not "
                    "speaking the Kafka protocol (wrong port, TLS expected, or a proxy?)"
                )
            end = start + 4 + size
            if end > available:
                break
            frames.append(bytes(buffer[start + 4 : end]))
            start = end
        if start:
            del buffer[:start]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)
