"""Byte transports under a broker connection: bytes out at once, bytes in by callback.

A connection needs three things of its transport: ``write()`` that never waits (the
sender writes a request from its own turn, without a task or a lock per request),
incoming bytes handed to it as they arrive, and to hear when the stream ends. Two
implementations:

* :class:`AsyncioTransport`, on asyncio (plain TCP or TLS): an :class:`asyncio.Protocol`.
  The event loop calls ``data_received`` itself, so a response costs no task switch and
  no pause/resume of reading (what a stream's ``receive()`` costs per call), and
  ``write()`` goes straight to the socket. This is the per-request path of the latency
  benchmark; it is asyncio-only because trio has no protocol/transport layer.
* :class:`StreamTransport`, on any AnyIO byte stream (trio, and custom connectors such
  as TLS wrappers): a task reads and hands bytes over, a task writes what ``write()``
  queued, coalescing frames queued meanwhile into sends of up to a chunk.

A frame is written as a list of parts, a chunk (``_write_queue.CHUNK``) at a time, so that
no write copies more than a chunk however large the request (a loop shared with a web
service is held for ~0.1 ms a write, not ~10 ms for a 4 MiB request). Writes are never
cancelled half-way by a caller (only by closing the transport), so a half-written frame
cannot desynchronize the stream.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

import anyio
import anyio.abc

from asyncproducer._futures import event_factory
from asyncproducer._host import background_task
from asyncproducer._write_queue import CHUNK, Chunk, WriteQueue, Written
from asyncproducer.errors import KafkaConnectionError

TURN_CHUNKS = 4
"""Chunks :class:`AsyncioTransport` writes in one go before it lets the loop run others."""


class TransportClient(Protocol):
    """What a transport reports to (the connection)."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, error: BaseException | None) -> None:
        """The stream ended: ``None`` for the peer's orderly close (EOF), else the error."""


class Transport(Protocol):
    def write(self, parts: Sequence[Chunk], written: Written | None = None) -> None:
        """Queue one frame (its ``parts`` in order) for sending, without waiting;
        ``written`` is called once all of it is handed to the operating system (the
        socket's buffer), or never if the transport closes first."""

    async def aclose(self, grace_s: float) -> None:
        """Send what is queued and EOF, wait (at most ``grace_s``) for the peer to close
        its side, then close."""

    def abort(self) -> None:
        """Close now, discarding what is queued."""

    def raw_socket(self) -> Any:
        """The socket underneath (for its options), or None if the stream has none."""


class AsyncioTransport(asyncio.Protocol):
    """An :class:`asyncio.Protocol` driving a :class:`TransportClient` (asyncio only)."""

    def __init__(self, client: TransportClient) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._queue = WriteQueue()
        self._pump_scheduled = False
        self._waiting_for_buffer: list[Written] = []
        self._flushed: asyncio.Event | None = None  # aclose() waiting for the queue
        self._closed = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        client: TransportClient,
        ssl_context: ssl.SSLContext | None = None,
    ) -> AsyncioTransport:
        """Open a TCP connection (asyncio sets TCP_NODELAY, as AnyIO does), with TLS when
        ``ssl_context`` is given (the handshake is done when this returns)."""
        _, protocol = await asyncio.get_running_loop().create_connection(
            lambda: cls(client),
            host,
            port,
            ssl=ssl_context,
            server_hostname=host if ssl_context is not None else None,
        )
        return protocol

    def raw_socket(self) -> Any:
        return None if self._transport is None else self._transport.get_extra_info("socket")

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(transport, asyncio.Transport): uvloop's TCPTransport has the whole
        # interface without subclassing it (and asserting so killed the sender on uvloop).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._client.data_received(data)

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost(None) follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting_for_buffer.clear()
        self._queue.clear()
        self._set_flushed()
        self._closed.set()
        self._client.connection_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        waiting, self._waiting_for_buffer = self._waiting_for_buffer, []
        for written in waiting:
            written()
        self._pump()

    # Transport

    def write(self, parts: Sequence[Chunk], written: Written | None = None) -> None:
        if not self._queue and not self._paused and sum(map(len, parts)) <= CHUNK:
            # The common case, a request of up to a chunk with nothing queued: one
            # write, as before there was a queue (per request, the queue's bookkeeping
            # would cost more than the join).
            self._connected().write(parts[0] if len(parts) == 1 else b"".join(parts))
            if written is not None:
                self._report_written((written,))
            return
        self._queue.push(parts, written)
        if not self._pump_scheduled:
            self._pump()

    def _pump(self) -> None:
        """Hand the queue to the asyncio transport a chunk at a time, while it is below
        its high-water mark (above it, ``resume_writing`` calls again), at most
        ``TURN_CHUNKS`` in one go (then again from the loop, after other callbacks)."""
        self._pump_scheduled = False
        transport = self._connected()
        for _ in range(TURN_CHUNKS):
            if not self._queue or self._paused or transport.is_closing():
                break
            chunk, done = self._queue.take()
            transport.write(chunk)
            self._report_written(done)
        else:
            if self._queue and not self._paused:
                self._pump_scheduled = True
                self._loop.call_soon(self._pump)
        if not self._queue:
            self._set_flushed()

    def _report_written(self, done: Iterable[Written]) -> None:
        if self._paused:  # above the high-water mark: wait until the socket takes it
            self._waiting_for_buffer += done
        else:
            for written in done:
                self._loop.call_soon(written)  # never from inside the caller's own call

    def _set_flushed(self) -> None:
        if self._flushed is not None:
            self._flushed.set()

    async def aclose(self, grace_s: float) -> None:
        transport = self._connected()
        try:
            with anyio.move_on_after(grace_s):
                if self._queue and not transport.is_closing():
                    self._flushed = asyncio.Event()
                    await self._flushed.wait()  # the queue handed to the transport
                if not transport.is_closing():
                    if transport.can_write_eof():
                        transport.write_eof()  # after what is buffered, as a stream's send_eof()
                    else:
                        transport.close()  # TLS: flushes, then close_notify
                    await self._closed.wait()
        finally:
            transport.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _connected(self) -> asyncio.Transport:
        # connect() returns only after connection_made(): None here is a bug, reported
        # typed rather than by an assert (which `python -O` would remove).
        if self._transport is None:
            raise KafkaConnectionError("the asyncio transport is used before it connected")
        return self._transport


class StreamTransport:
    """A :class:`TransportClient` over an AnyIO byte stream (any backend)."""

    def __init__(self, stream: anyio.abc.ByteStream, client: TransportClient) -> None:
        self._stream = stream
        self._client = client
        self._queue = WriteQueue()
        self._new_event = event_factory()
        self._wake_writer = self._new_event()
        self._eof_requested = False
        self._scope = anyio.CancelScope()
        self._closed = anyio.Event()
        self._lost = False

    def start(self, task_group: anyio.abc.TaskGroup, name: str) -> None:
        task_group.start_soon(self._run, name=name)

    def raw_socket(self) -> Any:
        return self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)

    @background_task
    async def _run(self) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as loops:
                    loops.start_soon(self._write_loop)
                    await self._read_loop()
                    loops.cancel_scope.cancel()
        finally:
            self._report_lost(None)  # closed by abort(), if nothing else reported
            self._closed.set()
            await anyio.aclose_forcefully(self._stream)

    async def _read_loop(self) -> None:
        try:
            while True:
                self._client.data_received(await self._stream.receive())
        except anyio.EndOfStream:
            self._report_lost(None)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._report_lost(exc)

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake_writer.wait()
                self._wake_writer = self._new_event()
                while self._queue:  # frames queued meanwhile coalesce into one chunk
                    chunk, written = self._queue.take()
                    # bytes, as ByteStream.send() is typed (a custom connector's stream may
                    # rely on it): a large part's slice is copied, at most a chunk.
                    await self._stream.send(chunk if isinstance(chunk, bytes) else bytes(chunk))
                    for callback in written:
                        callback()
                if self._eof_requested:
                    try:
                        await self._stream.send_eof()
                    except NotImplementedError:
                        # TLS streams cannot half-close: all is written, so end it all.
                        self._scope.cancel()
                    return
        except anyio.EndOfStream:
            # A TLS stream's send() meets the peer's close (no close_notify: a crashed
            # broker) this way, on trio: the connection is lost, not the producer.
            self._report_lost(None)
            self._scope.cancel()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self._report_lost(exc)
            self._scope.cancel()

    def _report_lost(self, error: BaseException | None) -> None:
        if not self._lost:
            self._lost = True
            self._client.connection_lost(error)

    def write(self, parts: Sequence[Chunk], written: Written | None = None) -> None:
        self._queue.push(parts, written)
        self._wake_writer.set()

    async def aclose(self, grace_s: float) -> None:
        try:
            self._eof_requested = True
            self._wake_writer.set()
            with anyio.move_on_after(grace_s):
                await self._closed.wait()
        finally:
            self.abort()

    def abort(self) -> None:
        self._scope.cancel()
