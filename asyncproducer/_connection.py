"""One connection to one broker: pipelined requests matched by correlation id.

``submit()`` writes a request at once (no task, lock or cancel scope per request) and
later tells a callback how it ended; ``send()`` is the awaiting form of it, for requests
that are rare (metadata, InitProducerId). The transport (``_transport``) hands incoming
bytes to :meth:`BrokerConnection.data_received`, which matches each response frame to
its request. Kafka answers a connection's requests in the order they were sent, so a
response for any other id than the oldest pending one means the stream is corrupt.

Failure rules (all typed, all immediate):

* the stream drops, or the broker sends garbage: every pending request fails with
  :class:`KafkaConnectionError` / :class:`ProtocolError` and the connection is closed;
* a request is not answered within its timeout: it fails with :class:`RequestTimeoutError`
  and, as in Java's ``NetworkClient``, the connection is closed and every other pending
  request fails too (a late answer could otherwise be taken for a newer request's);
* a caller of ``send()`` cancelled while waiting abandons its request; its response is
  discarded when it arrives and the connection stays usable;
* a request sent without expecting a response (Produce with acks=0) gets none from Kafka,
  but some brokers (Tansu) answer it anyway: such an answer is recognised and dropped.
  It is done once its bytes are in the socket (the transport reports that), which bounds
  what acks=0 can queue in memory.

TLS and SASL: ``ConnectionSettings.ssl_context`` makes the connection TLS (on asyncio's
protocol transport or an AnyIO TLS stream); ``ConnectionSettings.connector``, if set,
opens the byte stream itself; ``ConnectionSettings.handshake`` runs after version
negotiation and before the connection is handed out (SASL authentication, ``_sasl``).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

import anyio
import anyio.abc
import sniffio

from asyncproducer._cluster import BrokerAddress, address_problem
from asyncproducer._futures import event_factory, loop_clock
from asyncproducer._host import background_task
from asyncproducer._producer_metrics import ProducerMetrics
from asyncproducer._tls import tls_failure
from asyncproducer._transport import AsyncioTransport, StreamTransport, Transport
from asyncproducer._value import Value
from asyncproducer.errors import (
    ConnectionSetupTimeoutError,
    KafkaConnectionError,
    KafkaError,
    ProtocolError,
    RequestTimeoutError,
    SslAuthenticationError,
    UnsupportedVersionError,
    error_for_code,
    fresh_copy,
)
from asyncproducer.protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    encode_request,
    peek_correlation_id,
)
from asyncproducer.protocol.requests import ApiVersionsRequest
from asyncproducer.protocol.responses import ApiVersionsResponse, Decoder, decoder_for
from asyncproducer.protocol.versions import (
    CLIENT_VERSIONS,
    ApiKey,
    NegotiatedVersions,
    api_versions_retry_version,
    negotiate,
)

if TYPE_CHECKING:
    from kio.static.protocol import RequestPayload

logger = logging.getLogger("asyncproducer.connection")

Response: TypeAlias = Any
"""A decoded response: a ``protocol.responses`` class for the APIs decoded by hand, a
kio entity for the others."""

_UNSUPPORTED_VERSION = 35
GRACEFUL_CLOSE_S = 2.0
_CLIENT_SOFTWARE_VERSION = "0.1.0.dev0"


StreamConnector = Callable[[str, int], Awaitable[anyio.abc.ByteStream]]
"""Opens the byte stream to ``(host, port)``; raise OSError when that fails."""

Handshake = Callable[["BrokerConnection"], Awaitable[float | None]]
"""Runs on a fresh connection after version negotiation (SASL authentication), and
returns how long the session it opened lasts, in ms (None or 0: for ever). A session
that ends is renewed by running the handshake again on the same connection (KIP-368)."""


class OutgoingRequest(Protocol):
    """A kio request payload, or a request with a ``frame_parts(correlation_id,
    client_id)`` method of its own (``protocol.produce``, ``protocol.requests``)."""

    @property
    def __api_key__(self) -> Any: ...

    @property
    def __version__(self) -> Any: ...


async def connect_tcp(host: str, port: int) -> anyio.abc.ByteStream:
    return await anyio.connect_tcp(host, port)


async def connect_tls(context: ssl.SSLContext, host: str, port: int) -> anyio.abc.ByteStream:
    # Kafka brokers close without a TLS close_notify often enough: not standard compatible.
    return await anyio.connect_tcp(
        host, port, ssl_context=context, tls_hostname=host, tls_standard_compatible=False
    )


class ConnectionSettings(Value):
    __slots__ = (
        "client_id",
        "connector",
        "handshake",
        "max_frame_size",
        "metrics",
        "receive_buffer_bytes",
        "request_timeout_ms",
        "send_buffer_bytes",
        "socket_connection_setup_timeout_max_ms",
        "socket_connection_setup_timeout_ms",
        "ssl_context",
    )
    _fields = (
        "client_id",
        "request_timeout_ms",
        "socket_connection_setup_timeout_ms",
        "socket_connection_setup_timeout_max_ms",
        "max_frame_size",
        "connector",
        "ssl_context",
        "handshake",
        "metrics",
        "send_buffer_bytes",
        "receive_buffer_bytes",
    )

    client_id: str | None
    request_timeout_ms: int
    socket_connection_setup_timeout_ms: int
    socket_connection_setup_timeout_max_ms: int
    """The pool grows a broker's setup timeout from the one above, doubling (with
    Java's 20 % jitter) after each failed attempt in a row, up to this (as Java's
    ``ClusterConnectionStates``)."""
    max_frame_size: int
    connector: StreamConnector | None
    """Opens the byte stream; None: TCP (through the protocol transport on asyncio),
    with TLS when ``ssl_context`` is set."""
    ssl_context: ssl.SSLContext | None
    handshake: Handshake | None
    metrics: ProducerMetrics | None
    """Where requests, responses and bytes are counted (``request-rate``, ...)."""
    send_buffer_bytes: int
    """SO_SNDBUF for the socket (Java's ``send.buffer.bytes``); -1: the OS default."""
    receive_buffer_bytes: int
    """SO_RCVBUF (``receive.buffer.bytes``); -1: the OS default."""

    def __init__(
        self,
        client_id: str | None = "asyncproducer",
        request_timeout_ms: int = 30_000,
        socket_connection_setup_timeout_ms: int = 10_000,
        socket_connection_setup_timeout_max_ms: int = 30_000,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        connector: StreamConnector | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake: Handshake | None = None,
        metrics: ProducerMetrics | None = None,
        send_buffer_bytes: int = -1,
        receive_buffer_bytes: int = -1,
    ) -> None:
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.socket_connection_setup_timeout_ms = socket_connection_setup_timeout_ms
        self.socket_connection_setup_timeout_max_ms = socket_connection_setup_timeout_max_ms
        self.max_frame_size = max_frame_size
        self.connector = connector
        self.ssl_context = ssl_context
        self.handshake = handshake
        self.metrics = metrics
        self.send_buffer_bytes = send_buffer_bytes
        self.receive_buffer_bytes = receive_buffer_bytes


Done = Callable[[Response | None, KafkaError | None], None]
"""Told once how a submitted request ended: ``(response, None)``; ``(None, None)`` for a
request sent expecting no response, once written; ``(None, error)`` if it failed."""


class _Pending:
    """A submitted request: waiting for its response, or (expecting none) its write."""

    __slots__ = ("api_key", "deadline", "decode", "on_done", "sent", "timeout_ms", "version")

    def __init__(
        self,
        api_key: int,
        version: int,
        decode: Decoder | None,
        sent: int,
        timeout_ms: float,
        deadline: float,
        on_done: Done,
    ) -> None:
        self.api_key = api_key
        self.version = version
        self.decode = decode
        self.sent = sent
        self.timeout_ms = timeout_ms
        self.deadline = deadline
        self.on_done = on_done

    @property
    def name(self) -> str:
        return f"{ApiKey(self.api_key).name} v{self.version}"


class _Held:
    """A request submitted while the session was being renewed."""

    __slots__ = ("expect_response", "on_done", "request", "timeout_ms")

    request: OutgoingRequest
    on_done: Done
    expect_response: bool
    timeout_ms: float | None

    def __init__(
        self,
        request: OutgoingRequest,
        on_done: Done,
        expect_response: bool,
        timeout_ms: float | None,
    ) -> None:
        self.request = request
        self.on_done = on_done
        self.expect_response = expect_response
        self.timeout_ms = timeout_ms


class BrokerConnection:
    """A connection to one broker. Create it with :meth:`open`."""

    def __init__(self, address: BrokerAddress, settings: ConnectionSettings) -> None:
        self.address = address
        self._settings = settings
        self._metrics = settings.metrics
        self._decoder = FrameDecoder(settings.max_frame_size)
        self._transport: Transport | None = None
        self._pending: dict[int, _Pending] = {}
        """Requests waiting for a response, by correlation id, oldest first."""
        self._unwritten: dict[int, _Pending] = {}
        """Requests expecting no response, until their bytes reach the socket."""
        # Correlation ids of requests sent expecting no response, oldest first, with the
        # send order of the request after them: forgotten once a later request is
        # answered, because a broker answers in order or (as Kafka does) never.
        self._unanswered: dict[int, int] = {}
        self._sent = 0
        self._next_correlation_id = 0
        self._closed_reason: KafkaError | None = None
        self._now = loop_clock()
        self.last_active = self._now()
        """When (the loop's clock) a request last went out or a response came in: the
        pool closes a connection idle for ``connections_max_idle_ms``."""
        self._new_event = event_factory()
        self._watchdog_wake = self._new_event()
        self._watchdog_at = math.inf
        self._versions: NegotiatedVersions | None = None
        self.closed_at: float | None = None
        self._held: list[_Held] | None = None
        """Requests submitted while the session is being renewed: written after it."""
        self._renewal = anyio.CancelScope()
        self.renewals = 0
        """Sessions renewed on this connection (SASL re-authentications)."""

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        address: BrokerAddress,
        settings: ConnectionSettings,
        task_group: anyio.abc.TaskGroup,
    ) -> BrokerConnection:
        """Connect, negotiate versions, run the handshake; the connection's tasks join
        ``task_group``.

        TCP connect is bounded by ``socket_connection_setup_timeout_ms``; the requests after
        it (ApiVersions, the handshake's) by ``request_timeout_ms``, as in Java.

        Every failure is a :class:`KafkaError` naming the broker: whatever else is raised
        while opening (OverflowError for a port out of range, UnicodeError for a host
        IDNA cannot encode, a connector's or handshake's own error) means this broker
        cannot be reached, not that the producer must stop. Cancellation passes through.
        """
        connection = cls(address, settings)
        connection._transport = await _connect(address, settings, connection, task_group)
        task_group.start_soon(connection._watch_deadlines, name=f"asyncproducer timeouts {address}")
        try:
            await connection._negotiate_versions()
            _check_producer_apis(connection)
            lifetime_ms = None
            if settings.handshake is not None:
                lifetime_ms = await settings.handshake(connection)
        except BaseException as exc:
            # Nothing worth flushing on a connection still opening, and the caller may be
            # cancelled: close at once, so none of its tasks outlives it.
            failed = f"opening the connection to broker {address} failed"
            connection._shut_down(KafkaConnectionError(failed))
            if isinstance(exc, Exception) and not isinstance(exc, KafkaError):
                raise KafkaConnectionError(f"{failed}: {_describe(exc)}") from exc
            raise
        logger.debug("connected to broker %s", address)
        if lifetime_ms:
            task_group.start_soon(
                connection._keep_session, lifetime_ms, name=f"asyncproducer session {address}"
            )
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
    def busy(self) -> bool:
        """Requests are out on it, unwritten, or held for a session renewal."""
        return bool(self._pending or self._unwritten or self._held)

    @property
    def pending_count(self) -> int:
        """Requests sent on this connection and not yet answered (in flight)."""
        return len(self._pending)

    async def aclose(self, grace_s: float = GRACEFUL_CLOSE_S) -> None:
        """Close gracefully, within ``grace_s`` seconds: flush what was written and send
        EOF, then read until the broker closes its side.

        An abrupt close loses data: bytes still buffered for sending are discarded, and
        a broker may drop requests it has not read yet when the connection resets. For
        acks=0, nothing else tells us the broker read them.
        """
        transport = self._connected_transport()
        try:
            if self._closed_reason is None:
                self._fail_pending(
                    KafkaConnectionError(f"the connection to broker {self.address} was closed")
                )
                await transport.aclose(grace_s)
        finally:  # also when the caller is cancelled meanwhile
            transport.abort()
            self._watchdog_wake.set()

    def _connected_transport(self) -> Transport:
        # open() sets the transport before anything can use the connection: None here is
        # a bug, reported typed rather than by an assert (which `python -O` removes).
        if self._transport is None:
            raise KafkaConnectionError(f"the connection to broker {self.address} is not open")
        return self._transport

    # ------------------------------------------------------------------ requests

    def submit(
        self,
        request: OutgoingRequest,
        on_done: Done,
        *,
        expect_response: bool = True,
        timeout_ms: float | None = None,
        urgent: bool = False,
    ) -> None:
        """Write ``request`` now (never waits) and tell ``on_done`` how it ended, once.

        Raises the connection's error at once if it is closed. ``on_done`` runs from the
        event loop later, never from inside this call. While the session is being renewed
        the request is held and written after it, unless ``urgent`` (the renewal's own).
        """
        if self._closed_reason is not None:
            raise fresh_copy(self._closed_reason)
        if self._held is not None and not urgent:
            self._held.append(_Held(request, on_done, expect_response, timeout_ms))
            return
        transport = self._connected_transport()
        correlation_id = self._next_correlation_id
        self._next_correlation_id = (correlation_id + 1) & 0x7FFF_FFFF
        api_key, version = request.__api_key__, request.__version__
        client_id = self._settings.client_id
        frame_parts = getattr(request, "frame_parts", None)
        if frame_parts is not None:  # a request that encodes itself (protocol.requests)
            frame: list[bytes] = frame_parts(correlation_id, client_id)
        else:
            payload = cast("RequestPayload", request)  # a kio payload: encoded by its schema
            frame = [encode_request(payload, correlation_id=correlation_id, client_id=client_id)]
        self._sent += 1
        if self._metrics is not None:
            self._metrics.request_written(sum(map(len, frame)))
        if timeout_ms is None:
            timeout_ms = self._settings.request_timeout_ms
        self.last_active = now = self._now()
        deadline = now + timeout_ms / 1000
        if expect_response:
            decode = decoder_for(ApiKey(api_key), version)
            self._pending[correlation_id] = _Pending(
                api_key, version, decode, self._sent, timeout_ms, deadline, on_done
            )
            transport.write(frame)
        else:
            self._unanswered[correlation_id] = self._sent
            self._unwritten[correlation_id] = _Pending(
                api_key, version, None, self._sent, timeout_ms, deadline, on_done
            )
            transport.write(frame, functools.partial(self._written, correlation_id))
        if deadline < self._watchdog_at:
            self._watchdog_wake.set()

    async def send(
        self,
        request: OutgoingRequest,
        *,
        expect_response: bool = True,
        timeout_ms: float | None = None,
        urgent: bool = False,
    ) -> Response | None:
        """Send ``request`` and return its response (None when ``expect_response`` is False,
        as for Produce with acks=0, where the broker does not answer). A caller cancelled
        while waiting abandons the request; the connection stays usable. ``urgent``: as
        for :meth:`submit`."""
        done = self._new_event()
        outcome: list[tuple[Response | None, KafkaError | None]] = []

        def on_done(response: Response | None, error: KafkaError | None) -> None:
            outcome.append((response, error))
            done.set()

        self.submit(
            request, on_done, expect_response=expect_response, timeout_ms=timeout_ms, urgent=urgent
        )
        await done.wait()
        response, error = outcome[0]
        if error is not None:
            raise error
        return response

    @background_task
    async def _keep_session(self, lifetime_ms: float) -> None:
        """Renew the session at a random moment in 85-95 % of its lifetime (KIP-368), on
        this connection: requests submitted meanwhile wait, those already written are
        answered first (a broker answers in order), nothing is lost or reordered. A failed
        renewal closes the connection (its requests fail retriably; the next connection
        authenticates afresh)."""
        handshake = self._settings.handshake
        with self._renewal:
            while lifetime_ms and handshake is not None:
                await anyio.sleep(lifetime_ms * random.uniform(0.85, 0.95) / 1000)
                self._held = []
                try:
                    lifetime_ms = await handshake(self) or 0
                except Exception as exc:  # a KafkaError, or the token provider's failure
                    self._shut_down(
                        KafkaConnectionError(
                            f"renewing the session with broker {self.address} failed: {exc}"
                        )
                    )
                    return
                finally:
                    self._release_held()
                self.renewals += 1
                logger.debug("renewed the session with broker %s", self.address)

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for request in held:
            try:
                self.submit(
                    request.request,
                    request.on_done,
                    expect_response=request.expect_response,
                    timeout_ms=request.timeout_ms,
                )
            except KafkaError as exc:  # closed meanwhile
                request.on_done(None, exc)

    def _written(self, correlation_id: int) -> None:
        pending = self._unwritten.pop(correlation_id, None)
        if pending is not None:
            pending.on_done(None, None)

    @background_task
    async def _watch_deadlines(self) -> None:
        """Close the connection when a request outlives its timeout, as Java's
        ``NetworkClient`` does (a late answer could otherwise be taken for a newer
        request's).

        One sleeping task per connection, not a cancel scope per request: it sleeps until
        the earliest deadline, or for ``request_timeout_ms`` when nothing is pending, so a
        request with the default timeout never needs to wake it (its deadline is never
        before the next wake-up).
        """
        idle_s = self._settings.request_timeout_ms / 1000
        while self._closed_reason is None:
            now = self._now()
            waiting = [*self._pending.values(), *self._unwritten.values()]
            earliest = min(waiting, key=_deadline, default=None)
            if earliest is not None and earliest.deadline <= now:
                self._on_timeout(earliest)
                return
            self._watchdog_at = now + idle_s if earliest is None else earliest.deadline
            with anyio.CancelScope(deadline=self._watchdog_at):  # loop_clock is AnyIO's clock
                await self._watchdog_wake.wait()
            self._watchdog_wake = self._new_event()

    def _on_timeout(self, late: _Pending) -> None:
        others = len(self._pending) + len(self._unwritten) - 1
        done = "answer" if late.decode is not None else "take"
        self._shut_down(
            RequestTimeoutError(
                f"broker {self.address} did not {done} {late.name} within {late.timeout_ms:g} "
                f"ms (request_timeout_ms); the connection is closed and {others} other "
                "pending request(s) on it fail"
            )
        )

    # ------------------------------------------------------------------ receiving

    async def _negotiate_versions(self) -> None:
        """ApiVersions at our highest version; on UNSUPPORTED_VERSION (KIP-511), again at
        the highest the broker listed, else v0, as Java's ``NetworkClient`` does.

        The decoder turns an UNSUPPORTED_VERSION answer that parses at no version
        (librdkafka's mock cluster) into one listing no ranges, so that too retries at v0.
        Each retry is at a lower version than the one refused, so this ends.
        """
        version = CLIENT_VERSIONS[ApiKey.API_VERSIONS][1]
        request = ApiVersionsRequest(version, _CLIENT_SOFTWARE_VERSION)
        response = cast(ApiVersionsResponse, await self.send(request))
        while response.error_code == _UNSUPPORTED_VERSION and version > 0:
            retry = api_versions_retry_version(_ranges(response))
            refused, version = version, retry if retry < version else 0
            logger.debug(
                "broker %s rejected ApiVersions v%d; retrying v%d", self.address, refused, version
            )
            request = ApiVersionsRequest(version, _CLIENT_SOFTWARE_VERSION)
            response = cast(ApiVersionsResponse, await self.send(request))
        if response.error_code:
            raise error_for_code(
                response.error_code, f"ApiVersions failed on broker {self.address}"
            )
        self._versions = negotiate(_ranges(response), _finalized_features(response))

    def data_received(self, data: bytes) -> None:
        """From the transport: bytes as they arrive."""
        if self._closed_reason is not None:
            return  # closing: read (and drop) what is left, until the broker closes
        first = self._versions is None  # nothing answered yet: this may be a TLS port
        if self._metrics is not None:
            self._metrics.bytes_read(len(data))
        try:
            for frame in self._decoder.feed(data):
                self._dispatch(frame)
        except ProtocolError as exc:
            if first and self._settings.ssl_context is None and _looks_like_tls(data):
                self._shut_down(
                    SslAuthenticationError(
                        f"broker {self.address} answered with TLS: this listener wants "
                        "security_protocol='SSL' or 'SASL_SSL'"
                    )
                )
                return
            self._shut_down(ProtocolError(f"broker {self.address}: {exc}"))

    def connection_lost(self, error: BaseException | None) -> None:
        """From the transport: the stream ended."""
        reason: KafkaError
        if error is None:
            reason = KafkaConnectionError(f"broker {self.address} closed the connection")
        elif isinstance(error, ssl.SSLError) and self._versions is None:
            # Refused while opening (the broker wanted a client certificate, say): not a
            # network fault to retry through, unlike a TLS error in an established session.
            reason = tls_failure(self.address, error)
        else:
            reason = KafkaConnectionError(f"connection to broker {self.address} broke: {error!r}")
        self._shut_down(reason)

    def _dispatch(self, frame: bytes) -> None:
        if self._metrics is not None:
            self._metrics.response_read()
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
        self.last_active = self._now()
        unanswered = self._unanswered
        while unanswered and next(iter(unanswered.values())) < pending.sent:
            del unanswered[next(iter(unanswered))]
        decode = pending.decode
        if decode is None:  # cannot happen: only requests expecting an answer are pending
            raise ProtocolError(f"broker {self.address} answered a {pending.name} unasked")
        try:
            response = decode(memoryview(frame))
        except Exception as exc:
            # The decoders raise only ProtocolError (tests/unit/test_response_decoding.py);
            # anything else is still the broker's bytes meeting a bug, and must not escape
            # into the transport's reading task, which would take the producer down.
            detail = str(exc) if isinstance(exc, ProtocolError) else repr(exc)
            error = ProtocolError(f"broker {self.address} sent a bad {pending.name}: {detail}")
            pending.on_done(None, error)
            raise error from exc
        pending.on_done(response, None)

    def _shut_down(self, reason: KafkaError) -> None:
        """Close for ``reason``: fail every pending request with it, stop the transport."""
        self._fail_pending(reason)
        if self._transport is not None:
            self._transport.abort()
        self._watchdog_wake.set()

    def _fail_pending(self, reason: KafkaError) -> None:
        """Refuse new requests and fail the pending ones with ``reason`` (once)."""
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        self.closed_at = anyio.current_time()
        failed = [*self._pending.values(), *self._unwritten.values()]
        self._pending, self._unwritten = {}, {}
        for pending in failed:
            pending.on_done(None, fresh_copy(reason))
        held, self._held = self._held or [], None
        for request in held:
            request.on_done(None, fresh_copy(reason))
        self._renewal.cancel()
        if failed:
            logger.info(
                "connection to %s closed with %d pending: %s", self.address, len(failed), reason
            )


def _deadline(pending: _Pending) -> float:
    return pending.deadline


async def _connect(
    address: BrokerAddress,
    settings: ConnectionSettings,
    connection: BrokerConnection,
    task_group: anyio.abc.TaskGroup,
) -> Transport:
    """The transport to ``address``, within ``socket_connection_setup_timeout_ms``; any
    failure is a KafkaConnectionError naming the broker and why."""
    problem = address_problem(address.host, address.port)
    if problem is not None:  # a broker's advertised address: anything may be there
        raise KafkaConnectionError(f"cannot connect to broker {address}: {problem}")
    setup_ms = settings.socket_connection_setup_timeout_ms
    try:
        with anyio.fail_after(setup_ms / 1000):
            return await _open_transport(address, settings, connection, task_group)
    except TimeoutError:
        raise ConnectionSetupTimeoutError(
            f"connecting to broker {address} took longer than "
            f"socket_connection_setup_timeout_ms={setup_ms}"
        ) from None
    except ssl.SSLError as exc:  # an OSError too: TLS refused, not the network
        raise tls_failure(address, exc) from exc
    except (ConnectionResetError, anyio.EndOfStream) as exc:
        # Closed during the TLS handshake (asyncio says so with an errno-less reset,
        # AnyIO with EndOfStream): what a PLAINTEXT listener does with a ClientHello.
        if settings.ssl_context is None or getattr(exc, "errno", None) is not None:
            why = _os_reason(exc) if isinstance(exc, OSError) else _describe(exc)
            raise KafkaConnectionError(f"cannot connect to broker {address}: {why}") from exc
        raise SslAuthenticationError(
            f"TLS with broker {address} failed: the broker closed the connection during the "
            "handshake (does this port speak TLS? a PLAINTEXT listener answers this way)"
        ) from exc
    except OSError as exc:
        raise KafkaConnectionError(
            f"cannot connect to broker {address}: {_os_reason(exc)}"
        ) from exc
    except KafkaError:
        raise
    except Exception as exc:  # BaseExceptions (cancellation) are not ours to map
        raise KafkaConnectionError(f"cannot connect to broker {address}: {_describe(exc)}") from exc


async def _open_transport(
    address: BrokerAddress,
    settings: ConnectionSettings,
    connection: BrokerConnection,
    task_group: anyio.abc.TaskGroup,
) -> Transport:
    """A protocol-driven transport on asyncio (plain TCP or TLS) without a custom
    connector; a stream's otherwise."""
    connector, tls = settings.connector, settings.ssl_context
    transport: Transport
    if connector is None and sniffio.current_async_library() == "asyncio":
        transport = await AsyncioTransport.connect(address.host, address.port, connection, tls)
    else:
        if connector is None:
            connector = connect_tcp if tls is None else functools.partial(connect_tls, tls)
        stream = await connector(address.host, address.port)
        transport = StreamTransport(stream, connection)
        transport.start(task_group, name=f"asyncproducer connection {address}")
    _size_socket_buffers(transport.raw_socket(), settings)
    return transport


def _size_socket_buffers(sock: Any, settings: ConnectionSettings) -> None:
    """Java's ``send.buffer.bytes`` and ``receive.buffer.bytes`` (-1: the OS default).
    Set once connected: Java sets them before connecting, which also lets the receive
    buffer choose the TCP window scale; asyncio and AnyIO connect first (so a receive
    buffer above 64 KiB grows the window only as far as the scale the OS chose allows).
    A stream without a socket (a custom connector's) keeps its own."""
    if sock is None:
        return
    for option, size in (
        (socket.SO_SNDBUF, settings.send_buffer_bytes),
        (socket.SO_RCVBUF, settings.receive_buffer_bytes),
    ):
        if size >= 0:
            sock.setsockopt(socket.SOL_SOCKET, option, size)


def _looks_like_tls(data: bytes) -> bool:
    """A TLS record header (alert or handshake, version 3.x) where a Kafka response's size
    was expected: the broker's TLS listener refusing a plaintext client."""
    return len(data) >= 3 and data[0] in (0x15, 0x16) and data[1] == 0x03 and data[2] <= 0x04


_PRODUCER_APIS = (ApiKey.METADATA, ApiKey.PRODUCE)


def _check_producer_apis(connection: BrokerConnection) -> None:
    """Refuse, as unreachable, a broker that shares no Metadata or Produce version with
    this client: no use to a producer (every Kafka broker since 1.0 has both in range),
    and kept open, every request on it would fail for as long as it lives. A broker that
    sent a bad ApiVersions answer is asked again on the next connection."""
    try:
        for api in _PRODUCER_APIS:
            connection.versions.version_for(api)
    except UnsupportedVersionError as exc:
        raise KafkaConnectionError(
            f"broker {connection.address} cannot serve a producer: {exc}"
        ) from exc


def _os_reason(error: OSError) -> str:
    """The operating system's words for a failed connect ("Connection refused"), found
    in the error or, behind AnyIO's "All connection attempts failed", in its cause."""
    seen: BaseException | None = error
    while seen is not None:
        while isinstance(seen, BaseExceptionGroup) and len(seen.exceptions) == 1:
            seen = seen.exceptions[0]
        if isinstance(seen, socket.gaierror):  # its errno is a resolver code
            return str(seen.strerror)
        if isinstance(seen, OSError) and seen.errno and seen.errno > 0:
            return os.strerror(seen.errno)
        seen = seen.__cause__
    return error.strerror or str(error)


def _describe(error: BaseException) -> str:
    """``Type: message`` of an unexpected error, looking inside one-member exception
    groups (trio's connect raises its OverflowError so)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _finalized_features(response: ApiVersionsResponse) -> dict[str, int]:
    return {feature.name: feature.max_version_level for feature in response.finalized_features}


def _ranges(response: ApiVersionsResponse) -> dict[int, tuple[int, int]]:
    return {entry.api_key: (entry.min_version, entry.max_version) for entry in response.api_keys}
