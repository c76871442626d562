"""Large frames through both transports (and asyncio's over TLS), to a real socket whose
reader is slow: every byte arrives in order, no single write hands over more than a
chunk (what bounds the event loop's time per write, ``asyncproducer/_write_queue.py``),
each frame's callback comes once it is all written, and closing flushes what is still
queued before the EOF."""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

from asyncproducer._transport import AsyncioTransport, StreamTransport, Transport
from asyncproducer._write_queue import CHUNK
from asyncproducer.testing.certs import TlsFiles, make_tls_files
from tests.conftest import ASYNCIO_BACKENDS

pytestmark = pytest.mark.anyio

FRAMES = [
    [b"head-1", os.urandom(3 * CHUNK + 123), b"tail-1"],
    [b"small"],
    [os.urandom(CHUNK), os.urandom(5)],
]
EXPECTED = b"".join(b"".join(parts) for parts in FRAMES)


class Client:
    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, error: BaseException | None) -> None:
        pass


class SlowReader:
    """A TCP server that reads 64 KiB at a time, pausing between reads, until EOF."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = anyio.Event()

    async def serve(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    self.received += await stream.receive(65536)
                    await anyio.sleep(0.001)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                self.eof.set()


class RecordingStream(anyio.abc.ByteStream):
    """A byte stream passing through to another, recording the size of each send()."""

    def __init__(self, inner: anyio.abc.ByteStream, sizes: list[int]) -> None:
        self.inner, self.sizes = inner, sizes

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        self.sizes.append(len(item))
        await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def server() -> AsyncIterator[tuple[SlowReader, int]]:
    reader = SlowReader()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, reader.serve)
        yield reader, port
        group.cancel_scope.cancel()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"), hosts=["127.0.0.1"])


@pytest.fixture
async def tls_server(tls_files: TlsFiles) -> AsyncIterator[tuple[SlowReader, int]]:
    """The slow reader behind TLS (asyncio's SSL transport buffers and pauses its own way)."""
    reader = SlowReader()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files.server_pair())
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, context, standard_compatible=False)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, reader.serve)
        yield reader, port
        group.cancel_scope.cancel()


async def write_frames(transport: Transport, reader: SlowReader) -> list[int]:
    """Writes FRAMES, closes, and returns the frames' indexes in the order their
    callbacks came."""
    called: list[int] = []
    for index, parts in enumerate(FRAMES):
        transport.write(parts, lambda index=index: called.append(index))  # type: ignore[misc]
    with anyio.fail_after(10):
        await transport.aclose(grace_s=5)
        await reader.eof.wait()
    assert reader.received == EXPECTED
    return called


class RecordingTransport:
    """An asyncio transport passing through, recording the size of each write()
    (uvloop's transport is a C type, so it is wrapped rather than patched)."""

    def __init__(self, inner: Any, sizes: list[int]) -> None:
        self.inner, self.sizes = inner, sizes

    def write(self, data: Any) -> None:
        self.sizes.append(len(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def check_chunks(
    transport: AsyncioTransport, reader: SlowReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    recording = RecordingTransport(transport._connected(), sizes)
    monkeypatch.setattr(transport, "_connected", lambda: recording)
    assert await write_frames(transport, reader) == [0, 1, 2]
    assert max(sizes) <= CHUNK
    assert sum(sizes) == len(EXPECTED)


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)  # AsyncioTransport: asyncio only
async def test_asyncio_transport_writes_a_chunk_at_a_time(
    server: tuple[SlowReader, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, port = server
    transport = await AsyncioTransport.connect("127.0.0.1", port, Client())
    await check_chunks(transport, reader, monkeypatch)


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)
async def test_asyncio_transport_over_tls_writes_a_chunk_at_a_time(
    tls_server: tuple[SlowReader, int], tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, port = tls_server
    context = tls_files.client_ssl_context()
    transport = await AsyncioTransport.connect("127.0.0.1", port, Client(), context)
    await check_chunks(transport, reader, monkeypatch)


async def test_stream_transport_sends_a_chunk_at_a_time(server: tuple[SlowReader, int]) -> None:
    reader, port = server
    sizes: list[int] = []
    stream = RecordingStream(await anyio.connect_tcp("127.0.0.1", port), sizes)
    async with anyio.create_task_group() as group:
        transport = StreamTransport(stream, Client())
        transport.start(group, "transport")
        assert await write_frames(transport, reader) == [0, 1, 2]
    assert max(sizes) <= CHUNK
    assert sum(sizes) == len(EXPECTED)
