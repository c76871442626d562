"""The small requests of a producer's start, encoded by hand (sans-I/O): ApiVersions,
Metadata and InitProducerId.

With Produce (:mod:`produce`), these are every request an idempotent producer sends
before its first acknowledgement; the others (transactions, SASL, the test harness's) are
kio entities (:mod:`messages`). Encoding these without kio spares a new process kio's
import and a schema module per request (docs/benchmarks.md, "Cold start"). Each request's
body does not depend on the correlation id or the client id, so it is encoded once, on
construction; :meth:`frame_parts` puts the header in front, as for Produce, and the
connection writes those parts. ``tests/unit/test_hand_requests.py`` checks every version
against kio's encoding.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from asyncproducer.protocol._varint import encode_uvarint
from asyncproducer.protocol.framing import request_head
from asyncproducer.protocol.versions import CLIENT_VERSIONS, ApiKey

_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")
_BOOL: Final = (b"\x00", b"\x01")
_NO_TAGS: Final = b"\x00"
_NO_TOPIC_ID: Final = bytes(16)


class HandEncodedRequest:
    """A request whose body is encoded already, as parts (Produce's record batches among
    them, uncopied); the connection asks it for its frame."""

    __slots__ = ("__version__", "_body", "_body_size", "_flexible")

    __api_key__: ApiKey
    __version__: int
    _FIRST_FLEXIBLE: int

    def __init__(self, version: int, body: list[bytes]) -> None:
        low, high = CLIENT_VERSIONS[self.__api_key__]
        if not low <= version <= high:
            name = type(self).__name__.removesuffix("Request")
            raise ValueError(
                f"{name} v{version} is not supported: this client writes v{low}-v{high}"
            )
        self.__version__ = version
        self._flexible = version >= self._FIRST_FLEXIBLE
        self._body = body
        self._body_size = sum(map(len, body))

    def frame_parts(self, correlation_id: int, client_id: str | None) -> list[bytes]:
        """The frame as parts to write in order (what a connection writes: see
        ``asyncproducer/_write_queue.py``): the size prefix and header, then the body."""
        head = request_head(
            self.__api_key__,
            self.__version__,
            correlation_id,
            client_id,
            flexible=self._flexible,
            body_size=self._body_size,
        )
        return [head, *self._body]

    def encode_frame(self, correlation_id: int, client_id: str | None) -> bytes:
        """The complete frame: int32 size prefix + request header + body."""
        return b"".join(self.frame_parts(correlation_id, client_id))


def _string(value: str, flexible: bool) -> bytes:
    raw = value.encode()
    return (encode_uvarint(len(raw) + 1) if flexible else _INT16.pack(len(raw))) + raw


def _nullable_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\x00" if flexible else _INT16.pack(-1)
    return _string(value, flexible)


SOFTWARE_NAME: Final = "asyncproducer"


class ApiVersionsRequest(HandEncodedRequest):
    """v0-v2 have no body; v3+ name the client software (KIP-511)."""

    __slots__ = ()
    __api_key__ = ApiKey.API_VERSIONS
    _FIRST_FLEXIBLE = 3

    def __init__(self, version: int, software_version: str) -> None:
        body = b""
        if version >= self._FIRST_FLEXIBLE:
            name = _string(SOFTWARE_NAME, True)
            body = name + _string(software_version, True) + _NO_TAGS
        super().__init__(version, [body])


class MetadataRequest(HandEncodedRequest):
    """Metadata for ``topics`` by name; ``None`` asks for every topic in the cluster.

    v8-v10 ask whether to include the cluster's authorized operations, v8+ the topics'
    (never, here); v10+ address a topic by id too (the all-zero id: by name).
    """

    __slots__ = ()
    __api_key__ = ApiKey.METADATA
    _FIRST_FLEXIBLE = 9

    def __init__(
        self, version: int, topics: Iterable[str] | None, *, allow_auto_topic_creation: bool
    ) -> None:
        flexible = version >= self._FIRST_FLEXIBLE
        parts: list[bytes] = []
        if topics is None:
            parts.append(b"\x00" if flexible else _INT32.pack(-1))
        else:
            names = list(topics)
            parts.append(encode_uvarint(len(names) + 1) if flexible else _INT32.pack(len(names)))
            for name in names:
                if version >= 10:
                    parts.append(_NO_TOPIC_ID)
                parts.append(_string(name, flexible))
                if flexible:
                    parts.append(_NO_TAGS)
        parts.append(_BOOL[allow_auto_topic_creation])
        if 8 <= version <= 10:
            parts.append(_BOOL[False])  # include_cluster_authorized_operations
        if version >= 8:
            parts.append(_BOOL[False])  # include_topic_authorized_operations
        if flexible:
            parts.append(_NO_TAGS)
        super().__init__(version, parts)


class InitProducerIdRequest(HandEncodedRequest):
    """A producer id and epoch: for a transactional id, or (None) for an idempotent
    producer; v3+ can ask to bump an existing producer's epoch (KIP-360)."""

    __slots__ = ()
    __api_key__ = ApiKey.INIT_PRODUCER_ID
    _FIRST_FLEXIBLE = 2

    def __init__(
        self,
        version: int,
        *,
        transactional_id: str | None,
        transaction_timeout_ms: int,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> None:
        flexible = version >= self._FIRST_FLEXIBLE
        body = _nullable_string(transactional_id, flexible) + _INT32.pack(transaction_timeout_ms)
        if version >= 3:
            body += struct.pack(">qh", producer_id, producer_epoch)
        if flexible:
            body += _NO_TAGS
        super().__init__(version, [body])
