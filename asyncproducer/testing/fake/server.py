"""The fake cluster's sockets: one anyio listener per broker, and the request loop.

Each connection is served one request at a time, in order, as a Kafka broker does (it
mutes a connection until the response to its current request is sent), so a delayed
response also delays the ones pipelined behind it. Faults are applied here, around the
handler call: black hole and drop-before-apply before it, forced error codes through it,
drop-after-apply and delays after it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.abc
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from asyncproducer.errors import ProtocolError
from asyncproducer.protocol.framing import FrameDecoder
from asyncproducer.testing.fake.cluster import (
    DEFAULT_MAX_MESSAGE_BYTES,
    ClusterState,
    Fault,
    RequestLogEntry,
    StoredBatch,
    StoredRecord,
)
from asyncproducer.testing.fake.handlers import (
    Request,
    api_versions,
    create_topics,
    fetch,
    find_coordinator,
    init_producer_id,
    metadata,
    produce,
)
from asyncproducer.testing.fake.handlers.api_versions import SUPPORTED_VERSIONS

HANDLERS: dict[int, Callable[[Request], Any]] = {
    0: produce.handle,
    1: fetch.handle,
    3: metadata.handle,
    10: find_coordinator.handle,
    18: api_versions.handle,
    19: create_topics.handle,
    22: init_producer_id.handle,
}
_API_VERSIONS = 18
_REQUEST_PREFIX = struct.Struct(">hh")
_SIZE = struct.Struct(">i")

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
        self.port = 0
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

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                data = await stream.receive()
                for frame in decoder.feed(data):
                    await self._serve_request(stream, frame)
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            ProtocolError,
            _CloseConnection,
        ):
            pass
        finally:
            await anyio.aclose_forcefully(stream)

    async def _serve_request(self, stream: anyio.abc.SocketStream, frame: bytes) -> None:
        state, broker = self.state, self.broker
        api_key, version, correlation_id, client_id, body = _decode_request(frame)
        state.request_log.append(
            RequestLogEntry(
                broker, api_key, version, correlation_id, client_id, anyio.current_time()
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
        if state.take_fault("drop_before", api_key, broker):
            raise _CloseConnection
        error = state.take_fault("error", api_key, broker)
        request = Request(
            state, broker, api_key, version, body, error.error_code if error is not None else 0
        )
        response = HANDLERS[api_key](request)
        if state.take_fault("drop_after", api_key, broker):
            raise _CloseConnection
        delay = state.take_fault("delay", api_key, broker)
        if delay is not None:
            await anyio.sleep(delay.delay_for_this_request())
        if response is not None:
            await stream.send(_encode_response(correlation_id, api_key, version, response))


def _decode_request(frame: bytes) -> tuple[int, int, int, str | None, Any]:
    """(api key, version, correlation id, client id, body or None if unsupported)."""
    if len(frame) < _REQUEST_PREFIX.size:
        raise _CloseConnection
    api_key, version = _REQUEST_PREFIX.unpack_from(frame)
    supported = SUPPORTED_VERSIONS.get(api_key)
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


class FakeCluster:
    """An in-process Kafka cluster of ``brokers`` brokers on loopback TCP, with faults.

    ::

        async with FakeCluster(brokers=3) as cluster:
            cluster.create_topic("orders", 6)
            async with Producer(cluster.bootstrap_servers) as producer:
                await producer.send_and_wait("orders", b"v")
            assert cluster.records("orders", 0) ...

    Works on asyncio and trio. Fault methods may be called while traffic flows; each takes
    effect from the next request it matches.
    """

    def __init__(
        self, *, brokers: int = 3, auto_create_topics: bool = True, default_partitions: int = 3
    ) -> None:
        self._state = ClusterState(brokers, auto_create_topics, default_partitions)
        self._servers = {b: BrokerServer(b, self._state) for b in self._state.broker_ids}
        self._task_group: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeCluster:
        if self._task_group is not None:
            raise RuntimeError("this FakeCluster is already running")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            for server in self._servers.values():
                await server.start(task_group)
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            self._task_group = None
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return
        self._state.live.clear()
        # Cancelling closes every listener and connection at once (forcefully: nothing
        # waits on a peer), so leaving never hangs.
        task_group.cancel_scope.cancel()
        await task_group.__aexit__(None, None, None)

    @property
    def bootstrap_servers(self) -> str:
        if self._task_group is None:
            raise RuntimeError("the FakeCluster is not running: use `async with FakeCluster()`")
        return ",".join(f"127.0.0.1:{self._state.ports[b]}" for b in self._state.broker_ids)

    @property
    def broker_ids(self) -> list[int]:
        return list(self._state.broker_ids)

    # ------------------------------------------------------------------ topics

    def create_topic(
        self,
        name: str,
        partitions: int = 3,
        *,
        leaders: Sequence[int] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        """Create ``name``; ``leaders[i]`` leads partition i (default: round-robin).

        ``max_message_bytes`` is the topic's ``max.message.bytes``: a larger record batch
        is refused with MESSAGE_TOO_LARGE."""
        self._state.create_topic(name, partitions, None if leaders is None else list(leaders))
        self._state.topics[name].max_message_bytes = max_message_bytes

    def leader_of(self, topic: str, partition: int) -> int:
        return self._state.partition(topic, partition).leader

    def move_leader(self, topic: str, partition: int, to_broker: int) -> None:
        """Make ``to_broker`` the leader (epoch + 1); the old one answers NOT_LEADER."""
        self._state.check_broker(to_broker)
        state = self._state.partition(topic, partition)
        state.leader = to_broker
        state.leader_epoch += 1

    def advertise(self, broker: int, host: str | None = None, port: int | None = None) -> None:
        """Name ``host:port`` as ``broker``'s address in metadata (Kafka's
        ``advertised.listeners``) instead of its own listener; no arguments restore it.

        Clients connect where metadata says, so this puts a ``FaultProxy`` in front of one
        broker (advertise the proxy's address), or makes a broker advertise an address no
        client can reach (port 70000, host ``"a..b"``). The fake itself stores any value."""
        self._state.check_broker(broker)
        if host is None and port is None:
            self._state.advertised.pop(broker, None)
            return
        own_host, own_port = self._state.address_of(broker)
        self._state.advertised[broker] = (
            own_host if host is None else host,
            own_port if port is None else port,
        )

    def set_partition_count(self, topic: str, count: int) -> None:
        """Grow ``topic`` to ``count`` partitions (Kafka cannot shrink a topic)."""
        self._state.grow(topic, count)

    # ------------------------------------------------------------------ inspection

    def records(self, topic: str, partition: int) -> list[StoredRecord]:
        return list(self._state.partition(topic, partition).records)

    def batches(self, topic: str, partition: int) -> list[StoredBatch]:
        """The stored batches' bytes, for decoding with an independent reader."""
        return list(self._state.partition(topic, partition).batches)

    def request_count(self, api: int, *, broker: int | None = None) -> int:
        return sum(
            1
            for entry in self._state.request_log
            if entry.api_key == api and (broker is None or entry.broker == broker)
        )

    @property
    def request_log(self) -> list[RequestLogEntry]:
        return self._state.request_log

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, api: int, error_code: int, count: int = 1, *, broker: int | None = None
    ) -> None:
        """Answer the next ``count`` requests of ``api`` with ``error_code`` (not applied).

        For Produce every partition in the request gets the code; for Metadata every topic.
        """
        self._check(broker)
        self._state.arm(Fault("error", api, broker, count, error_code=error_code))

    def delay_responses(
        self,
        api: int,
        seconds: float | Callable[[int], float],
        *,
        count: int | None = None,
        broker: int | None = None,
    ) -> None:
        """Hold ``api`` responses for ``seconds`` (the next ``count``, or all; 0 clears).

        ``seconds`` may be a function of the request's index among those this delay
        matches (0, 1, 2, ...), for a different delay per request."""
        self._check(broker)
        # A new delay replaces the previous one for the same API and broker, so a test can
        # change or clear (seconds=0) a standing delay.
        self._state.faults = [
            f
            for f in self._state.faults
            if not (f.kind == "delay" and f.api == api and f.broker == broker)
        ]
        self._state.arm(Fault("delay", api, broker, count, seconds=seconds))

    def drop_connection(
        self, api: int, *, after_apply: bool = False, count: int = 1, broker: int | None = None
    ) -> None:
        """Close the connection on the next ``count`` ``api`` requests instead of answering.

        ``after_apply=True`` applies the request first (records are stored): the client
        sees a lost response for a write that happened, the classic duplicate-maker.
        """
        self._check(broker)
        kind = "drop_after" if after_apply else "drop_before"
        self._state.arm(Fault(kind, api, broker, count))

    def black_hole(self, broker: int, enabled: bool = True) -> None:
        """Accept connections and read requests on ``broker`` but never answer them."""
        self._state.check_broker(broker)
        if enabled:
            self._state.black_holed.add(broker)
        else:
            self._state.black_holed.discard(broker)

    def forget_producers(self) -> None:
        """Lose every idempotent producer's state, as brokers do when retention deletes a
        producer's last batch: its next batch (not at sequence 0) gets UNKNOWN_PRODUCER_ID."""
        self._state.producers.clear()

    async def stop_broker(self, broker: int) -> None:
        """Close ``broker``'s listener and connections; its partitions show leader -1."""
        self._state.check_broker(broker)
        await self._servers[broker].stop()

    async def start_broker(self, broker: int) -> None:
        """Bring a stopped broker back on its old port."""
        self._state.check_broker(broker)
        if self._task_group is None:
            raise RuntimeError("the FakeCluster is not running")
        if broker not in self._state.live:
            await self._servers[broker].start(self._task_group)

    def _check(self, broker: int | None) -> None:
        if broker is not None:
            self._state.check_broker(broker)
