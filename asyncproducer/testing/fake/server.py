"""The fake cluster's sockets: one anyio listener per broker, and the request loop.

Each connection is served one request at a time, in order, as a Kafka broker does (it
mutes a connection until the response to its current request is sent), so a delayed
response also delays the ones pipelined behind it. Faults are applied here, around the
handler call: black hole and drop-before-apply before it, forced error codes through it,
drop-after-apply and delays after it.

Security: on an SSL listener each accepted socket first does the server side of a TLS
handshake (:mod:`._tls`); every request then passes the connection's SASL session
(:mod:`._session`), which says whether Kafka would serve it, refuse it, or close the
connection, before any fault or handler sees it.
"""

from __future__ import annotations

import datetime
import io
import ssl
import struct
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import anyio
import anyio.abc
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from asyncproducer.errors import ProtocolError
from asyncproducer.testing.fake._inbox import Inbox
from asyncproducer.testing.fake._quotas import RequestArrival, Throttle
from asyncproducer.testing.fake._session import (
    ILLEGAL_SASL_STATE,
    Admission,
    Authentication,
    AuthenticationFailure,
    Session,
)
from asyncproducer.testing.fake._tls import ServerTlsStream
from asyncproducer.testing.fake.cluster import ClusterState, RequestLogEntry
from asyncproducer.testing.fake.handlers import (
    Request,
    add_offsets_to_txn,
    add_partitions_to_txn,
    api_versions,
    create_topics,
    end_txn,
    fetch,
    find_coordinator,
    init_producer_id,
    metadata,
    produce,
    sasl_authenticate,
    sasl_handshake,
    txn_offset_commit,
)
from asyncproducer.testing.fake.handlers.api_versions import versions_for

HANDLERS: dict[int, Callable[[Request], Any]] = {
    0: produce.handle,
    1: fetch.handle,
    3: metadata.handle,
    10: find_coordinator.handle,
    17: sasl_handshake.handle,
    18: api_versions.handle,
    19: create_topics.handle,
    22: init_producer_id.handle,
    24: add_partitions_to_txn.handle,
    25: add_offsets_to_txn.handle,
    26: end_txn.handle,
    28: txn_offset_commit.handle,
    36: sasl_authenticate.handle,
}
_API_VERSIONS = 18
_PRODUCE = 0
_FIRST_CLIENT_THROTTLED_PRODUCE = 6
"""KIP-219: from Produce v6 the broker answers at once and the client waits out the
throttle; before, the broker held the response for the throttle time."""
_REQUEST_PREFIX = struct.Struct(">hh")
_SIZE = struct.Struct(">i")
TLS_HANDSHAKE_TIMEOUT_S = 10.0
TLS_CLOSE_GRACE_S = 1.0

# kio builds a reader/writer per class by introspection; build each once.
_readers: dict[type[Any], Any] = {}
_writers: dict[type[Any], Any] = {}


def _reader(cls: type[Any]) -> Any:
    if cls not in _readers:
        _readers[cls] = entity_reader(cls)
    return _readers[cls]


def _writer(cls: type[Any]) -> Any:
    if cls not in _writers:
        _writers[cls] = entity_writer(cls)
    return _writers[cls]


class _CloseConnection(Exception):
    """End this connection without answering (a fault, or a request Kafka would refuse)."""


class BrokerServer:
    """The listener and connections of one fake broker; restartable on the same port."""

    def __init__(self, broker: int, state: ClusterState) -> None:
        self.broker = broker
        self.state = state
        self.port: int = 0
        self._scope: anyio.CancelScope | None = None
        self._stopped = anyio.Event()

    async def start(self, task_group: anyio.abc.TaskGroup) -> None:
        # Port 0 the first time; the same port on restart, so clients find it again.
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        self.state.ports[self.broker] = self.port
        self._stopped = anyio.Event()
        self._scope = await task_group.start(self._serve, listener)
        self.state.live.add(self.broker)

    async def stop(self) -> None:
        self.state.live.discard(self.broker)
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
            await self._stopped.wait()

    async def _serve(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        *,
        task_status: anyio.abc.TaskStatus[anyio.CancelScope],
    ) -> None:
        try:
            with anyio.CancelScope() as scope:
                async with listener, anyio.create_task_group() as connections:
                    task_status.started(scope)
                    await listener.serve(self._connection, task_group=connections)
        finally:
            self._stopped.set()

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        state = self.state
        connection = state.new_connection()
        session = Session(
            state.sasl,
            self.broker,
            connection,
            state.authentications,
            state.authentication_failures,
            clock=anyio.current_time,
        )
        try:
            if state.tls_context is not None:
                stream = await self._tls_handshake(stream, state.tls_context, connection)
            inbox = Inbox(stream, connection)
            while True:
                frame, arrived = await inbox.next()
                await self._serve_request(inbox, session, frame, arrived)
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,  # ssl.SSLError from a TLS stream
            ProtocolError,
            _CloseConnection,
        ):
            if isinstance(stream, ServerTlsStream):
                with anyio.move_on_after(TLS_CLOSE_GRACE_S):
                    await stream.close_notify()
        finally:
            await anyio.aclose_forcefully(stream)

    async def _tls_handshake(
        self, stream: anyio.abc.ByteStream, context: ssl.SSLContext, connection: int
    ) -> ServerTlsStream:
        """The TLS side of an accepted connection; a failed handshake is recorded in
        ``authentication_failures`` (mechanism ``"SSL"``) and closes the connection."""
        try:
            with anyio.fail_after(TLS_HANDSHAKE_TIMEOUT_S):
                tls = await ServerTlsStream.accept(stream, context)
        except (TimeoutError, OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            reason = f"TLS handshake failed: {_describe(exc)}"
            self._record_failure("SSL", None, reason, connection)
            raise _CloseConnection from None
        certificate = tls.peer_certificate
        if certificate and self.state.sasl is None:
            # On an SSL listener the client certificate is the principal (Kafka's default
            # principal builder names it by its subject).
            self.state.authentications.append(
                Authentication(
                    self.broker,
                    "SSL",
                    _subject(certificate),
                    connection,
                    False,
                    0,
                    anyio.current_time(),
                )
            )
        return tls

    def _record_failure(
        self, mechanism: str, user: str | None, reason: str, connection: int
    ) -> None:
        self.state.authentication_failures.append(
            AuthenticationFailure(
                self.broker, mechanism, user, reason, connection, anyio.current_time()
            )
        )

    async def _serve_request(
        self, inbox: Inbox, session: Session, frame: bytes, arrived: float
    ) -> None:
        state, broker, stream = self.state, self.broker, inbox.stream
        supported = versions_for(state.transaction_version)
        api_key, version, correlation_id, client_id, body = _decode_request(frame, supported)
        state.request_log.append(
            RequestLogEntry(
                broker, api_key, version, correlation_id, client_id, anyio.current_time()
            )
        )
        if state.quotas.enabled:
            state.quotas.arrivals.append(
                RequestArrival(
                    broker, inbox.connection, client_id, api_key, correlation_id, arrived
                )
            )
        if broker in state.black_holed:
            return  # read, never answered
        if body is None:
            if api_key != _API_VERSIONS:
                # Kafka closes the connection on an API or version it does not know.
                raise _CloseConnection
            response = api_versions.unsupported_version_response()
            await stream.send(_encode_response(correlation_id, _API_VERSIONS, 0, response))
            return
        admission = session.admit(api_key)
        if admission is Admission.CLOSE:
            raise _CloseConnection
        if admission is Admission.REFUSE:
            # Kafka answers a request out of place in the SASL exchange with its error
            # response, then closes.
            refused = Request(state, broker, api_key, version, body, ILLEGAL_SASL_STATE, session)
            response = HANDLERS[api_key](refused)
            if response is not None:
                await stream.send(_encode_response(correlation_id, api_key, version, response))
            raise _CloseConnection
        if state.take_fault("drop_before", api_key, broker):
            raise _CloseConnection
        # Transactions open past their timeout are aborted before anything can see them
        # (see _txn_coordinator: the fake checks lazily instead of on a timer).
        state.transactions.expire(state.now_ms())
        error = state.take_fault("error", api_key, broker)
        request = Request(
            state,
            broker,
            api_key,
            version,
            body,
            error.error_code if error is not None else 0,
            session,
        )
        response = HANDLERS[api_key](request)
        handled = inbox.stamp()
        throttle_ms = 0
        if api_key == _PRODUCE:
            # Kafka counts the whole request's size against the client's byte rate.
            throttle_ms = state.quotas.record_produce(broker, client_id, len(frame), handled)
        told = response is not None and version >= _FIRST_CLIENT_THROTTLED_PRODUCE
        if throttle_ms and response is not None:  # every version says how long (v6+: to wait)
            response = replace(response, throttle_time=datetime.timedelta(milliseconds=throttle_ms))
        if state.take_fault("drop_after", api_key, broker):
            raise _CloseConnection
        delay = state.take_fault("delay", api_key, broker)
        if delay is not None:
            await anyio.sleep(delay.delay_for_this_request())
        encoded = None
        if response is not None:
            encoded = _encode_response(correlation_id, api_key, version, response)
        if throttle_ms:
            ends = handled + throttle_ms / 1000
            throttle = Throttle(
                broker,
                inbox.connection,
                client_id,
                correlation_id,
                throttle_ms,
                handled,
                ends,
                told,
            )
            await self._throttle(inbox, encoded, throttle)
        elif encoded is not None:
            await stream.send(encoded)
        if session.close_after_response:
            raise _CloseConnection

    async def _throttle(self, inbox: Inbox, encoded: bytes | None, throttle: Throttle) -> None:
        """Answer a throttled Produce (if it has an answer: acks=0 has none), record the
        throttle, and read nothing more from the connection until it ends (KIP-219)."""
        if encoded is not None and throttle.told:
            # What the client wrote before it could read this response is read first, so
            # that anything read later was sent in spite of the throttle...
            await inbox.drain()
            # ...and the throttle runs from the response (the drain is the fake's own
            # delay), stamped before the write so that it cannot end after the client's.
            started = inbox.stamp()
            throttle = replace(
                throttle, started=started, ends=started + throttle.throttle_ms / 1000
            )
            await inbox.stream.send(encoded)
        elif encoded is not None:
            # Before Produce v6 the broker held the response back for the throttle time.
            await inbox.read_until(throttle.ends)
            await inbox.stream.send(encoded)
        self.state.quotas.throttles.append(throttle)
        await inbox.read_until(throttle.ends)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no handshake within {TLS_HANDSHAKE_TIMEOUT_S:g} s"
    if isinstance(error, anyio.EndOfStream | anyio.BrokenResourceError):
        cause = error.__cause__
        return _describe(cause) if cause is not None else "the client closed the connection"
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error).lower().replace("_", " ")
    return str(error) or type(error).__name__


_DN_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "countryName": "C",
}


def _subject(certificate: Mapping[str, Any]) -> str:
    """The certificate's subject as an RFC 2253 name (``CN=client``), as Java's
    ``X500Principal.getName()`` gives it: the last RDN first."""
    rdns = certificate.get("subject", ())
    return ",".join(
        "+".join(f"{_DN_NAMES.get(name, name)}={value}" for name, value in rdn)
        for rdn in reversed(rdns)
    )


def _decode_request(
    frame: bytes, supported_versions: Mapping[int, tuple[int, int]]
) -> tuple[int, int, int, str | None, Any]:
    """(api key, version, correlation id, client id, body or None if unsupported)."""
    if len(frame) < _REQUEST_PREFIX.size:
        raise _CloseConnection
    api_key, version = _REQUEST_PREFIX.unpack_from(frame)
    supported = supported_versions.get(api_key)
    known = supported is not None and supported[0] <= version <= supported[1]
    if known:
        schema = load_request_schema(api_key, version)
        header_cls: type[Any] = schema.__header_schema__
    elif api_key == _API_VERSIONS:
        # KIP-511: read the header of a too-new ApiVersions request as the newest one we
        # know has it (v2 from ApiVersions v3 on) so we can answer with our range.
        header_cls = load_request_schema(_API_VERSIONS, 4).__header_schema__
    else:
        raise _CloseConnection
    view = memoryview(frame)
    try:
        header, size = _reader(header_cls)(view, 0)
        body = _reader(schema)(view, size)[0] if known else None
    except Exception as exc:  # kio raises several types on malformed input
        raise _CloseConnection from exc
    return api_key, version, int(header.correlation_id), header.client_id, body


def _encode_response(correlation_id: int, api_key: int, version: int, body: Any) -> bytes:
    # The response class knows its header version (ApiVersions always uses v0).
    header_cls = load_response_schema(api_key, version).__header_schema__
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    _writer(header_cls)(buffer, header_cls(correlation_id=i32(correlation_id)))
    _writer(type(body))(buffer, body)
    frame = buffer.getbuffer()
    _SIZE.pack_into(frame, 0, len(frame) - 4)
    del frame
    return buffer.getvalue()
