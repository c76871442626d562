"""Small misbehaving Kafka servers on loopback, for connection fault tests.

Each server speaks just enough of the protocol (request header parsing, ApiVersions) for
a client to get to the point where the fault matters.
"""

from __future__ import annotations

import io
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
from kio.index import load_response_schema
from kio.serial import entity_writer

from asyncproducer.protocol.versions import ApiKey

Handler = Callable[["ServerConnection"], Awaitable[None]]


class ServerConnection:
    """The server side of one client connection: read request frames, write responses."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    async def read_request(self) -> tuple[int, int, int]:
        """(api_key, api_version, correlation_id) of the next request; its body is skipped."""
        while True:
            if len(self._buffer) >= 4:
                (size,) = struct.unpack_from(">i", self._buffer)
                if len(self._buffer) >= 4 + size:
                    api_key, version, correlation_id = struct.unpack_from(">hhi", self._buffer, 4)
                    del self._buffer[: 4 + size]
                    return api_key, version, correlation_id
            self._buffer += await self.stream.receive()

    async def respond(self, correlation_id: int, api_key: int, version: int, body: Any) -> None:
        await self.stream.send(encode_response(correlation_id, api_key, version, body))

    async def answer_api_versions(self, ranges: dict[int, tuple[int, int]] | None = None) -> None:
        """Read one ApiVersions request and answer it with ``ranges`` (default: ours)."""
        api_key, version, correlation_id = await self.read_request()
        assert api_key == ApiKey.API_VERSIONS, api_key
        await self.respond(correlation_id, api_key, version, api_versions_body(version, ranges))


def encode_response(correlation_id: int, api_key: int, version: int, body: Any) -> bytes:
    response_cls = load_response_schema(api_key, version)
    buffer = io.BytesIO()
    entity_writer(response_cls.__header_schema__)(
        buffer, response_cls.__header_schema__(correlation_id=correlation_id)
    )
    entity_writer(response_cls)(buffer, body)
    payload = buffer.getvalue()
    return struct.pack(">i", len(payload)) + payload


def api_versions_body(
    version: int, ranges: dict[int, tuple[int, int]] | None = None, error_code: int = 0
) -> Any:
    from kio.index import load_payload_module
    from kio.schema.errors import ErrorCode
    from kio.static.constants import EntityType

    from asyncproducer.protocol.versions import CLIENT_VERSIONS

    if ranges is None:
        ranges = {int(k): v for k, v in CLIENT_VERSIONS.items()}
    module = load_payload_module(ApiKey.API_VERSIONS, version, EntityType.response)
    keys = tuple(
        module.ApiVersion(api_key=k, min_version=low, max_version=high)
        for k, (low, high) in ranges.items()
    )
    fields: dict[str, Any] = {"error_code": ErrorCode(error_code), "api_keys": keys}
    if version >= 1:
        import datetime

        fields["throttle_time"] = datetime.timedelta(0)
    if version >= 3:
        fields["supported_features"] = ()
        fields["finalized_features"] = ()
    return module.ApiVersionsResponse(**fields)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, int, list[ServerConnection]]]:
    """Run ``handler`` for every connection to a loopback listener; yields (host, port, conns)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    connections: list[ServerConnection] = []

    async def on_connect(stream: anyio.abc.ByteStream) -> None:
        connection = ServerConnection(stream)
        connections.append(connection)
        try:
            await handler(connection)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            await anyio.aclose_forcefully(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, on_connect)
        try:
            yield "127.0.0.1", port, connections
        finally:
            tg.cancel_scope.cancel()


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
