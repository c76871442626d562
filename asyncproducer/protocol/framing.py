"""Size-prefixed framing, request headers and response headers (sans-I/O).

Every Kafka message on the wire is ``int32 size`` + ``size`` bytes. A request is a header
(v1: api key, version, correlation id, client id; v2 adds tagged fields, for flexible
versions) followed by the payload; a response is a header (v0: correlation id; v1 adds
tagged fields) followed by the body. kio's classes carry which header each version uses,
including the exception that ApiVersions responses always use header v0.

kio is imported only when a kio entity is encoded or a header read through kio: the
requests and responses of a producer's start are encoded by hand (``requests``,
``produce``, ``responses``), and a process that needs nothing else never loads kio.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from asyncproducer.errors import ProtocolError

if TYPE_CHECKING:
    from kio.static.protocol import RequestPayload

_SIZE = struct.Struct(">i")
_CORRELATION_ID = struct.Struct(">i")
# size, api key, api version, correlation id, client id length (-1: null)
_REQUEST_HEAD = struct.Struct(">ihhih")
_REQUEST_HEAD_AFTER_SIZE = _REQUEST_HEAD.size - 4

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
        from kio.serial import entity_writer

        writer = _writers[cls] = entity_writer(cls)
    return writer


def _header_reader(cls: type[Any]) -> Any:
    reader = _readers.get(cls)
    if reader is None:
        from kio.serial import entity_reader

        reader = _readers[cls] = entity_reader(cls)
    return reader


def request_head(
    api_key: int,
    version: int,
    correlation_id: int,
    client_id: str | None,
    *,
    flexible: bool,
    body_size: int,
) -> bytes:
    """The size prefix and request header of a frame whose body is ``body_size`` bytes:
    header v1, or v2 for a flexible version (whose client id stays a classic nullable
    string, as Kafka's RequestHeader.json special-cases it, followed by an empty
    tagged-field section). Out-of-range values raise ValueError."""
    if client_id is None:
        raw_client_id = b""
        client_id_length = -1
    else:
        raw_client_id = client_id.encode()
        client_id_length = len(raw_client_id)
    tail = b"\x00" if flexible else b""
    size = _REQUEST_HEAD_AFTER_SIZE + len(raw_client_id) + len(tail) + body_size
    try:
        head = _REQUEST_HEAD.pack(size, api_key, version, correlation_id, client_id_length)
    except struct.error as exc:
        raise ValueError(f"a request header field is out of range: {exc}") from None
    return head + raw_client_id + tail


def encode_request(payload: RequestPayload, *, correlation_id: int, client_id: str | None) -> bytes:
    """The complete frame (size prefix included) for the kio entity ``payload``."""
    import io

    from kio.static.primitive import i32

    header_cls = payload.__header_schema__
    header = header_cls(
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
