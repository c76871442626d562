"""One connection to one broker: pipelined requests matched by correlation id.

Requests are written in order under a lock; a receive loop (a task in the owner's task
group) reads response frames and hands each to the request waiting for its correlation
id. Kafka answers a connection's requests in the order they were sent, so a response for
any other id than the oldest pending one means the stream is corrupt.

Failure rules (all typed, all immediate):

* the stream drops, or the broker sends garbage: every pending request fails with
  :class:`KafkaConnectionError` / :class:`ProtocolError` and the connection is closed;
* a request is not answered within its timeout: it fails with :class:`RequestTimeoutError`
  and, as in Java's ``NetworkClient``, the connection is closed and every other pending
  request fails too (a late answer could otherwise be taken for a newer request's);
* a caller cancelled while waiting abandons its request; its response is discarded when
  it arrives and the connection stays usable;
* a request sent without expecting a response (Produce with acks=0) gets none from Kafka,
  but some brokers (Tansu) answer it anyway: such an answer is recognised and dropped;
* a caller cancelled in the middle of writing a frame closes the connection, because a
  half-written frame desynchronizes the stream.

The seams for TLS and SASL: ``ConnectionSettings.connector`` opens the byte stream (plain
TCP here, a TLS-wrapping connector later) and ``ConnectionSettings.handshake`` runs after
version negotiation and before the connection is handed out (SASL authentication later).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
from kio.static.protocol import RequestPayload, ResponsePayload

from asyncproducer._cluster import BrokerAddress
from asyncproducer._futures import event_factory
from asyncproducer._host import background_task
from asyncproducer.errors import (
    ConnectionSetupTimeoutError,
    KafkaConnectionError,
    KafkaError,
    ProtocolError,
    RequestTimeoutError,
    error_for_code,
    fresh_copy,
)
from asyncproducer.protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    encode_request,
    peek_correlation_id,
)
from asyncproducer.protocol.messages import (
    ResponseDecoder,
    api_versions_request,
    response_decoder,
)
from asyncproducer.protocol.versions import (
    CLIENT_VERSIONS,
    ApiKey,
    NegotiatedVersions,
    api_versions_retry_version,
    negotiate,
)

logger = logging.getLogger("asyncproducer.connection")

_UNSUPPORTED_VERSION = 35
GRACEFUL_CLOSE_S = 2.0
_CLIENT_SOFTWARE_VERSION = "0.1.0.dev0"


StreamConnector = Callable[[str, int], Awaitable[anyio.abc.ByteStream]]
"""Opens the byte stream to ``(host, port)``; raise OSError when that fails."""

Handshake = Callable[["BrokerConnection"], Awaitable[None]]
"""Runs on a fresh connection after version negotiation (e.g. SASL authentication)."""


async def connect_tcp(host: str, port: int) -> anyio.abc.ByteStream:
    return await anyio.connect_tcp(host, port)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    client_id: str | None = "asyncproducer"
    request_timeout_ms: int = 30_000
    socket_connection_setup_timeout_ms: int = 10_000
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    connector: StreamConnector = connect_tcp
    handshake: Handshake | None = None


class _Pending:
    """A request waiting for its response."""

    __slots__ = ("abandoned", "decode", "done", "error", "name", "response", "sent")

    def __init__(self, decode: ResponseDecoder, name: str, sent: int, done: Any) -> None:
        self.decode = decode
        self.name = name
        self.sent = sent
        self.done = done
        """The loop's event (see _futures.event_factory): set when answered or failed."""
        self.response: ResponsePayload | None = None
        self.error: KafkaError | None = None
        self.abandoned = False


class BrokerConnection:
    """A connection to one broker. Create it with :meth:`open`."""

    def __init__(
        self, address: BrokerAddress, stream: anyio.abc.ByteStream, settings: ConnectionSettings
    ) -> None:
        self.address = address
        self._stream = stream
        self._settings = settings
        self._decoder = FrameDecoder(settings.max_frame_size)
        self._pending: dict[int, _Pending] = {}
        # Correlation ids of requests sent expecting no response, oldest first, with the
        # send order of the request after them: forgotten once a later request is
        # answered, because a broker answers in order or (as Kafka does) never.
        self._unanswered: dict[int, int] = {}
        self._sent = 0
        self._next_correlation_id = 0
        self._send_lock = anyio.Lock()
        self._receive_scope = anyio.CancelScope()
        self._closed_reason: KafkaError | None = None
        self._receive_done = anyio.Event()
        self._new_event = event_factory()
        self._versions: NegotiatedVersions | None = None
        self.closed_at: float | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        address: BrokerAddress,
        settings: ConnectionSettings,
        task_group: anyio.abc.TaskGroup,
    ) -> BrokerConnection:
        """Connect, negotiate versions, run the handshake; the receive loop joins ``task_group``.

        TCP connect is bounded by ``socket_connection_setup_timeout_ms``; the requests after
        it (ApiVersions, the handshake's) by ``request_timeout_ms``, as in Java.
        """
        setup_ms = settings.socket_connection_setup_timeout_ms
        try:
            with anyio.fail_after(setup_ms / 1000):
                stream = await settings.connector(address.host, address.port)
        except TimeoutError:
            raise ConnectionSetupTimeoutError(
                f"connecting to broker {address} took longer than "
                f"socket_connection_setup_timeout_ms={setup_ms}"
            ) from None
        except OSError as exc:
            raise KafkaConnectionError(
                f"cannot connect to broker {address}: {exc.strerror or exc}"
            ) from exc
        connection = cls(address, stream, settings)
        task_group.start_soon(connection._receive_loop, name=f"asyncproducer receive {address}")
        try:
            await connection._negotiate_versions()
            if settings.handshake is not None:
                await settings.handshake(connection)
        except BaseException:
            # Nothing worth flushing on a connection still opening, and the caller may be
            # cancelled: close at once, so no receive loop outlives it.
            connection._fail_pending(
                KafkaConnectionError(f"opening the connection to broker {address} failed")
            )
            with anyio.CancelScope(shield=True):
                await connection._close_now()
            raise
        logger.debug("connected to broker %s", address)
        return connection

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def versions(self) -> NegotiatedVersions:
        if self._versions is None:
            raise RuntimeError("API versions are negotiated while the connection opens")
        return self._versions

    @property
    def pending_count(self) -> int:
        """Requests sent on this connection and not yet answered (in flight)."""
        return len(self._pending)

    async def aclose(self, grace_s: float = GRACEFUL_CLOSE_S) -> None:
        """Close gracefully, within ``grace_s`` seconds: flush what was written and send
        EOF, then read until the broker closes its side.

        An abrupt close loses data: AnyIO's asyncio stream discards bytes still buffered
        for sending, and a socket closed with unread incoming data (a broker answering
        acks=0, as Tansu does) sends RST, on which a broker may drop requests it has not
        read yet. For acks=0, nothing else tells us the broker read them.
        """
        try:
            if self._closed_reason is None:
                self._fail_pending(
                    KafkaConnectionError(f"the connection to broker {self.address} was closed")
                )
                with anyio.move_on_after(grace_s):
                    async with self._send_lock:
                        await self._stream.send_eof()
                    await self._receive_done.wait()
        finally:  # also when the caller is cancelled meanwhile
            with anyio.CancelScope(shield=True):
                await self._close_now()

    async def _close_now(self) -> None:
        self._receive_scope.cancel()
        await anyio.aclose_forcefully(self._stream)

    # ------------------------------------------------------------------ requests

    async def send(
        self,
        request: RequestPayload,
        *,
        expect_response: bool = True,
        timeout_ms: float | None = None,
    ) -> ResponsePayload | None:
        """Send ``request`` and return its response (None when ``expect_response`` is False,
        as for Produce with acks=0, where the broker does not answer)."""
        if self._closed_reason is not None:
            raise fresh_copy(self._closed_reason)
        api = ApiKey(request.__api_key__)
        name = f"{api.name} v{request.__version__}"
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) & 0x7FFF_FFFF
        frame = encode_request(
            request, correlation_id=correlation_id, client_id=self._settings.client_id
        )
        pending: _Pending | None = None
        self._sent += 1
        if expect_response:
            pending = _Pending(
                response_decoder(api, request.__version__), name, self._sent, self._new_event()
            )
            self._pending[correlation_id] = pending
        else:
            self._unanswered[correlation_id] = self._sent
        if timeout_ms is None:
            timeout_ms = self._settings.request_timeout_ms
        try:
            with anyio.move_on_after(timeout_ms / 1000) as scope:
                await self._write(frame, name)
                if pending is None:
                    return None
                await pending.done.wait()
        finally:
            if pending is not None and not pending.done.is_set():
                pending.abandoned = True
        if scope.cancelled_caught and (pending is None or not pending.done.is_set()):
            self._on_timeout(name, correlation_id, timeout_ms)
        assert pending is not None
        if pending.error is not None:
            raise pending.error
        return pending.response

    async def _write(self, frame: bytes, name: str) -> None:
        async with self._send_lock:
            if self._closed_reason is not None:
                raise fresh_copy(self._closed_reason)
            try:
                await self._stream.send(frame)
            except BaseException as exc:
                # Cancelled or failed mid-frame: the broker may have half a request, so this
                # stream can never be trusted again.
                error = KafkaConnectionError(
                    f"connection to broker {self.address} failed while sending {name}: {exc!r}"
                )
                self._shut_down(error)
                if isinstance(exc, (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)):
                    raise error from exc
                raise

    def _on_timeout(self, name: str, correlation_id: int, timeout_ms: float) -> None:
        others = len(self._pending) - (1 if correlation_id in self._pending else 0)
        error = RequestTimeoutError(
            f"broker {self.address} did not answer {name} (correlation id {correlation_id}) "
            f"within {timeout_ms:g} ms (request_timeout_ms); the connection is closed and "
            f"{others} other pending request(s) on it fail"
        )
        self._shut_down(error)
        raise fresh_copy(error)

    # ------------------------------------------------------------------ receiving

    async def _negotiate_versions(self) -> None:
        version = CLIENT_VERSIONS[ApiKey.API_VERSIONS][1]
        response = await self.send(api_versions_request(version, _CLIENT_SOFTWARE_VERSION))
        if getattr(response, "error_code", 0) == _UNSUPPORTED_VERSION:
            retry = api_versions_retry_version(_ranges(response))
            logger.debug(
                "broker %s rejected ApiVersions v%d; retrying v%d", self.address, version, retry
            )
            response = await self.send(api_versions_request(retry, _CLIENT_SOFTWARE_VERSION))
        code = int(getattr(response, "error_code", 0))
        if code:
            raise error_for_code(code, f"ApiVersions failed on broker {self.address}")
        self._versions = negotiate(_ranges(response))

    @background_task
    async def _receive_loop(self) -> None:
        reason: KafkaError | None = None
        try:
            with self._receive_scope:
                while True:
                    data = await self._stream.receive()
                    for frame in self._decoder.feed(data):
                        self._dispatch(frame)
        except anyio.EndOfStream:
            reason = KafkaConnectionError(f"broker {self.address} closed the connection")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            reason = KafkaConnectionError(f"connection to broker {self.address} broke: {exc!r}")
        except ProtocolError as exc:
            reason = ProtocolError(f"broker {self.address}: {exc}")
        finally:
            self._shut_down(
                reason or KafkaConnectionError(f"connection to broker {self.address} closed")
            )
            self._receive_done.set()
            await anyio.aclose_forcefully(self._stream)

    def _dispatch(self, frame: bytes) -> None:
        correlation_id = peek_correlation_id(frame)
        if self._unanswered.pop(correlation_id, None) is not None:
            return  # an answer to an acks=0 Produce: nobody waits for it
        oldest = next(iter(self._pending), None)
        if correlation_id != oldest:
            raise ProtocolError(
                f"response has correlation id {correlation_id}, but the oldest pending request "
                f"has {oldest}"
            )
        pending = self._pending.pop(correlation_id)
        unanswered = self._unanswered
        while unanswered and next(iter(unanswered.values())) < pending.sent:
            del unanswered[next(iter(unanswered))]
        try:
            pending.response = pending.decode(memoryview(frame))
        except ProtocolError as exc:
            pending.error = ProtocolError(f"broker {self.address} sent a bad {pending.name}: {exc}")
            pending.done.set()
            raise
        pending.done.set()

    def _shut_down(self, reason: KafkaError) -> None:
        """Close for ``reason``: fail every pending request with it, stop receiving."""
        self._fail_pending(reason)
        self._receive_scope.cancel()

    def _fail_pending(self, reason: KafkaError) -> None:
        """Refuse new requests and fail the pending ones with ``reason`` (once)."""
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        self.closed_at = anyio.current_time()
        pending, self._pending = self._pending, {}
        for waiter in pending.values():
            if not waiter.abandoned:
                waiter.error = fresh_copy(reason)
                waiter.done.set()
        if pending:
            logger.info(
                "connection to %s closed with %d pending: %s", self.address, len(pending), reason
            )


def _ranges(response: object) -> dict[int, tuple[int, int]]:
    return {
        int(entry.api_key): (int(entry.min_version), int(entry.max_version))
        for entry in getattr(response, "api_keys", ())
    }
