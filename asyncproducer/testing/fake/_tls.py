"""The server side of TLS on an accepted connection, over memory BIOs.

anyio's ``TLSStream`` does the same, with one difference that matters here: when a
handshake fails it drops the alert OpenSSL wrote for the peer, so a client refused for a
missing certificate, or a plaintext client on a TLS port, would see a bare close. A Kafka
broker (a JVM) sends the alert; so does this stream, and clients can tell "TLS refused
you" from "the network dropped you", as they can against Kafka.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import anyio
import anyio.abc

__all__ = ["ServerTlsStream"]

_T = TypeVar("_T")
_ALERT_GRACE_S = 1.0
_READ_SIZE = 65536
_UNEXPECTED_MESSAGE_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0A])
"""A fatal TLS alert record (unexpected_message): what a JVM broker answers bytes that are
not TLS with, and OpenSSL does not write."""
_BROKEN = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class ServerTlsStream(anyio.abc.ByteStream):
    """TLS over ``transport`` as the server; made by :meth:`accept` (which handshakes).

    Used by one task at a time (a fake broker serves a connection's requests in turn).
    Kafka clients close without close_notify: an end of stream without it is an end of
    stream, not an error.
    """

    def __init__(
        self,
        transport: anyio.abc.ByteStream,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._transport = transport
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self._sent_any = False

    @classmethod
    async def accept(
        cls, transport: anyio.abc.ByteStream, context: ssl.SSLContext
    ) -> ServerTlsStream:
        """Handshake on ``transport``; raises ``ssl.SSLError`` (after sending the
        alert), or the transport's error, if it fails."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        stream = cls(transport, tls, incoming, outgoing)
        try:
            await stream._run(tls.do_handshake)
        except ssl.SSLError:
            if not stream._sent_any:  # the client's first bytes were not a ClientHello
                with anyio.move_on_after(_ALERT_GRACE_S), contextlib.suppress(*_BROKEN):
                    await transport.send(_UNEXPECTED_MESSAGE_ALERT)
            raise
        return stream

    @property
    def peer_certificate(self) -> Mapping[str, Any] | None:
        """The client's certificate, if it sent one that was verified."""
        return self._tls.getpeercert() or None

    async def receive(self, max_bytes: int = _READ_SIZE) -> bytes:
        try:
            data = await self._run(lambda: self._tls.read(max_bytes))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            raise anyio.EndOfStream from None
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        await self._run(lambda: self._tls.write(item))

    async def close_notify(self) -> None:
        """Send TLS close_notify, without waiting for the client's, as Kafka's
        ``SslTransportLayer.close()`` does before it closes the socket. (A client that
        then writes gets a TLS "closed" error rather than a bare end of stream.)"""
        try:
            self._tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # the client's close_notify: not waited for
        except ssl.SSLError:
            return  # the session is broken: nothing to close politely
        with contextlib.suppress(*_BROKEN):
            await self._flush()

    async def send_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close")

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _run(self, operation: Callable[[], _T]) -> _T:
        """``operation`` on the TLS object, feeding it the peer's bytes until it can
        finish; what it writes goes to the peer, also (best effort) when it fails."""
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                await self._flush()
                try:
                    data = await self._transport.receive()
                except anyio.EndOfStream:
                    self._incoming.write_eof()
                else:
                    self._incoming.write(data)
            except ssl.SSLError:
                with anyio.move_on_after(_ALERT_GRACE_S), contextlib.suppress(*_BROKEN):
                    await self._flush()
                raise
            else:
                await self._flush()
                return result

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._sent_any = True
            await self._transport.send(data)
