"""FaultProxy: forwarding, and each fault, against tiny local servers and a real broker."""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import pytest

from asyncproducer import Producer
from asyncproducer.protocol.produce import ProduceRequest
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing._proxy_frames import FrameSplitter, produce_acks
from asyncproducer.testing.proxy import FaultProxy, FaultProxyError
from asyncproducer.testing.tansu import TansuBroker, find_tansu_binary

BOUND = 5  # seconds: no step of these tests waits longer
QUIET = 0.3  # seconds of silence that show nothing was forwarded

# --------------------------------------------------------------------------- servers


@dataclass
class Upstream:
    """What a test server saw: its address, connections closed, request frames received
    (and when)."""

    host: str
    port: int
    closed: int = 0
    requests: list[tuple[int, int, bytes]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@asynccontextmanager
async def serve(kind: str) -> AsyncIterator[Upstream]:
    """``echo``: send back every byte. ``kafka``: read length-prefixed request frames
    (api key, version, correlation id, payload) and answer each with (correlation id,
    payload); api key 98 waits a little first, 99 is never answered, nor a Produce v3-8
    with acks=0 (as Kafka does)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    upstream = Upstream("127.0.0.1", int(listener.extra(anyio.abc.SocketAttribute.local_port)))
    handler = _echo if kind == "echo" else _kafka

    async def on_connect(stream: anyio.abc.SocketStream) -> None:
        try:
            await handler(stream, upstream)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            upstream.closed += 1
            await anyio.aclose_forcefully(stream)

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, on_connect)
        yield upstream
        tasks.cancel_scope.cancel()


async def _echo(stream: anyio.abc.SocketStream, upstream: Upstream) -> None:
    while True:
        await stream.send(await stream.receive())


async def _kafka(stream: anyio.abc.SocketStream, upstream: Upstream) -> None:
    buffer = b""
    while True:
        while len(buffer) < 4 or len(buffer) < 4 + struct.unpack_from(">i", buffer)[0]:
            buffer += await stream.receive()
        (size,) = struct.unpack_from(">i", buffer)
        api_key, version, correlation_id = struct.unpack_from(">hhi", buffer, 4)
        payload = buffer[12 : 4 + size]
        buffer = buffer[4 + size :]
        upstream.requests.append((api_key, correlation_id, payload))
        upstream.arrived.append(anyio.current_time())
        if api_key == 98:
            await anyio.sleep(QUIET / 2)
        if api_key != 99 and not _classic_produce_without_acks(api_key, version, payload):
            await stream.send(struct.pack(">ii", 4 + len(payload), correlation_id) + payload)


def _classic_produce_without_acks(api_key: int, version: int, payload: bytes) -> bool:
    """A Produce v3-8 request with acks=0: its client id, transactional id, then acks."""
    if api_key != ApiKey.PRODUCE or not 3 <= version <= 8:
        return False
    (client_id,) = struct.unpack_from(">h", payload)
    (transactional_id,) = struct.unpack_from(">h", payload, 2 + max(client_id, 0))
    (acks,) = struct.unpack_from(">h", payload, 4 + max(client_id, 0) + max(transactional_id, 0))
    return bool(acks == 0)


def request(api_key: int, correlation_id: int, payload: bytes) -> bytes:
    return struct.pack(">ihhi", 8 + len(payload), api_key, 0, correlation_id) + payload


async def read_response(stream: anyio.abc.SocketStream) -> tuple[int, bytes]:
    head = await receive_exactly(stream, 8)
    size, correlation_id = struct.unpack(">ii", head)
    return correlation_id, await receive_exactly(stream, size - 4)


async def receive_exactly(stream: anyio.abc.SocketStream, count: int) -> bytes:
    data = b""
    with anyio.fail_after(BOUND):
        while len(data) < count:
            data += await stream.receive(count - len(data))
    return data


@pytest.fixture
async def clients() -> AsyncIterator[list[anyio.abc.SocketStream]]:
    """The test's client connections, closed when it ends."""
    opened: list[anyio.abc.SocketStream] = []
    yield opened
    for stream in opened:
        await anyio.aclose_forcefully(stream)


async def connect(
    proxy: FaultProxy, clients: list[anyio.abc.SocketStream]
) -> anyio.abc.SocketStream:
    host, port = proxy.address
    with anyio.fail_after(BOUND):
        stream = await anyio.connect_tcp(host, port)
    clients.append(stream)
    return stream


async def assert_closed(stream: anyio.abc.SocketStream) -> None:
    """The proxy closed ``stream``: reading ends (EOF or reset) within the bound."""
    with anyio.fail_after(BOUND):
        try:
            while True:
                await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return


async def assert_silent(stream: anyio.abc.SocketStream) -> None:
    with anyio.move_on_after(QUIET):
        data = await stream.receive()
        pytest.fail(f"the proxy forwarded {data!r}")


async def wait_until(condition: Callable[[], object], what: str) -> None:
    with anyio.move_on_after(BOUND):
        while not condition():
            await anyio.sleep(0.01)
        return
    pytest.fail(f"waited {BOUND} s for {what}")


# --------------------------------------------------------------------------- forwarding

pytestmark = pytest.mark.anyio


async def test_forwards_bytes_both_ways_as_they_come(clients: list[anyio.abc.SocketStream]) -> None:
    async with serve("echo") as upstream, FaultProxy(upstream.address) as proxy:
        stream = await connect(proxy, clients)
        # Three bytes are not a Kafka frame header: they must not be held back.
        await stream.send(b"abc")
        assert await receive_exactly(stream, 3) == b"abc"
        payload = bytes(range(256)) * 1000
        await stream.send(payload)
        assert await receive_exactly(stream, len(payload)) == payload
        assert proxy.connection_count == 1
        await stream.aclose()
        await wait_until(lambda: proxy.connection_count == 0, "the link to close")
        assert proxy.accepted == 1


async def test_address_before_and_after_running() -> None:
    proxy = FaultProxy("127.0.0.1:1")
    with pytest.raises(FaultProxyError, match="not running"):
        _ = proxy.bootstrap_servers
    async with proxy:
        host, port = proxy.address
        assert port > 0
        assert proxy.bootstrap_servers == f"{host}:{port}"
        assert proxy.upstream == ("127.0.0.1", 1)


def test_upstream_must_be_host_and_port() -> None:
    with pytest.raises(ValueError, match="host:port"):
        FaultProxy("localhost")


async def test_an_unreachable_upstream_closes_the_client(
    clients: list[anyio.abc.SocketStream],
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        async with FaultProxy(("127.0.0.1", port)) as proxy:
            await assert_closed(await connect(proxy, clients))


# --------------------------------------------------------------------------- faults


async def test_reset_closes_both_sides_and_new_connections_work(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with serve("echo") as upstream, FaultProxy(upstream.address) as proxy:
        first, second = await connect(proxy, clients), await connect(proxy, clients)
        for stream in (first, second):
            await stream.send(b"x")
            assert await receive_exactly(stream, 1) == b"x"
        assert await proxy.reset() == 2
        await assert_closed(first)
        await assert_closed(second)
        await wait_until(lambda: upstream.closed == 2, "the server to see both closed")
        third = await connect(proxy, clients)
        await third.send(b"again")
        assert await receive_exactly(third, 5) == b"again"


async def test_black_hole_drops_both_ways_then_closes_what_lost_bytes(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        busy, idle = await connect(proxy, clients), await connect(proxy, clients)
        proxy.black_hole(True)
        await busy.send(request(3, 1, b"lost"))
        await assert_silent(busy)
        assert upstream.requests == []  # dropped, not held
        assert proxy.connection_count == 2  # still open
        proxy.black_hole(False)
        await assert_closed(busy)  # its stream has a hole: it cannot carry on
        await idle.send(request(3, 2, b"fine"))
        assert await read_response(idle) == (2, b"fine")
        assert [r[2] for r in upstream.requests] == [b"fine"]


async def test_black_hole_also_holds_responses(clients: list[anyio.abc.SocketStream]) -> None:
    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        stream = await connect(proxy, clients)
        await stream.send(request(98, 1, b"slow"))
        await wait_until(lambda: upstream.requests, "the request to arrive")
        # Too late to stop the request, but its (slow) response is dropped.
        proxy.black_hole(True)
        await assert_silent(stream)
        proxy.black_hole(False)
        await assert_closed(stream)


async def test_down_refuses_connections_and_up_accepts_on_the_same_port(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with serve("echo") as upstream, FaultProxy(upstream.address) as proxy:
        before = await connect(proxy, clients)
        address = proxy.address
        await proxy.down()
        assert not proxy.is_up
        await assert_closed(before)
        with pytest.raises(OSError, match=r"[Cc]onnect"):
            await anyio.connect_tcp(*address)
        await proxy.up()
        assert proxy.address == address
        after = await connect(proxy, clients)
        await after.send(b"back")
        assert await receive_exactly(after, 4) == b"back"


async def test_cut_after_request_forwards_the_request_and_loses_its_response(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        stream = await connect(proxy, clients)
        proxy.cut_after_request(2)
        assert proxy.cut_pending
        # Pipelined: the first is answered, the second is written but its answer is
        # lost, the third never reaches the server.
        await stream.send(request(0, 1, b"one") + request(0, 2, b"two") + request(0, 3, b"x"))
        assert await read_response(stream) == (1, b"one")
        await assert_closed(stream)
        assert [r[1] for r in upstream.requests] == [1, 2]
        assert proxy.cuts == 1
        assert not proxy.cut_pending
        later = await connect(proxy, clients)  # once only: the next connection is left alone
        await later.send(request(0, 4, b"four"))
        assert await read_response(later) == (4, b"four")


async def test_cut_after_request_counts_only_the_given_api(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        stream = await connect(proxy, clients)
        proxy.cut_after_request(api_key=ApiKey.PRODUCE)
        await stream.send(request(ApiKey.METADATA, 1, b"m"))
        assert await read_response(stream) == (1, b"m")
        await stream.send(request(ApiKey.PRODUCE, 2, b"p"))
        await assert_closed(stream)
        assert [r[0] for r in upstream.requests] == [ApiKey.METADATA, ApiKey.PRODUCE]


async def test_cut_after_request_without_a_response_closes_after_cut_timeout(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with (
        serve("kafka") as upstream,
        FaultProxy(upstream.address, cut_timeout=0.2) as proxy,
    ):
        stream = await connect(proxy, clients)
        proxy.cut_after_request()
        await stream.send(request(99, 1, b"never answered"))
        await assert_closed(stream)
        assert proxy.cuts == 1


async def test_cut_after_request_needs_a_positive_count() -> None:
    async with serve("echo") as upstream, FaultProxy(upstream.address) as proxy:
        with pytest.raises(ValueError, match="n must be >= 1"):
            proxy.cut_after_request(0)


async def test_heal_ends_every_fault(clients: list[anyio.abc.SocketStream]) -> None:
    async with serve("echo") as upstream, FaultProxy(upstream.address) as proxy:
        proxy.black_hole(True)
        proxy.cut_after_request()
        proxy.delay_responses(BOUND)
        proxy.slow_requests(BOUND)
        await proxy.down()
        await proxy.heal()
        assert proxy.is_up
        assert not proxy.cut_pending
        assert proxy.response_delay == 0
        assert proxy.processing_time == 0
        stream = await connect(proxy, clients)
        await stream.send(b"ok")
        assert await receive_exactly(stream, 2) == b"ok"


DELAY = 0.2  # seconds: long enough to tell from loopback, short enough for CI


async def read_timed(stream: anyio.abc.SocketStream, count: int) -> list[tuple[int, float]]:
    """(correlation id, when it arrived) of the next ``count`` responses."""
    timed = []
    for _ in range(count):
        correlation_id, _ = await read_response(stream)
        timed.append((correlation_id, anyio.current_time()))
    return timed


@asynccontextmanager
async def delayed(
    clients: list[anyio.abc.SocketStream],
) -> AsyncIterator[tuple[Upstream, FaultProxy, anyio.abc.SocketStream]]:
    """A ``kafka`` server behind a proxy that delays responses by DELAY; a client of it."""
    async with serve("kafka") as upstream, FaultProxy(upstream.address) as proxy:
        stream = await connect(proxy, clients)
        proxy.delay_responses(DELAY)
        yield upstream, proxy, stream


async def test_delay_responses_holds_each_pipelined_response_from_its_own_arrival(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with delayed(clients) as (_, proxy, stream):
        assert proxy.response_delay == DELAY
        sent = anyio.current_time()
        await stream.send(request(0, 1, b"one") + request(0, 2, b"two") + request(0, 3, b"3"))
        timed = await read_timed(stream, 3)
        assert [correlation_id for correlation_id, _ in timed] == [1, 2, 3]  # in order
        late = [at - sent for _, at in timed]
        # The server answers at once: each response is late by the delay...
        assert min(late) >= DELAY * 0.95, late
        # ... and only by the delay, not one delay after the other (a throttle: 3x).
        assert max(late) < DELAY * 2, late


async def test_delay_zero_restores_pass_through_after_what_is_held(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with delayed(clients) as (upstream, proxy, stream):
        sent = anyio.current_time()
        await stream.send(request(0, 1, b"held"))
        await wait_until(lambda: upstream.requests, "the request to arrive")
        await anyio.sleep(DELAY / 4)  # its response is held by the proxy now
        proxy.delay_responses(0)
        await stream.send(request(0, 2, b"after"))
        # The second response is not delayed, but it does not overtake the first.
        timed = await read_timed(stream, 2)
        assert [correlation_id for correlation_id, _ in timed] == [1, 2]
        assert timed[0][1] - sent >= DELAY * 0.95
        # Nothing held any more: straight through, far quicker than the delay.
        again = anyio.current_time()
        await stream.send(request(0, 3, b"pass-through"))
        assert await read_response(stream) == (3, b"pass-through")
        assert anyio.current_time() - again < DELAY / 2


@pytest.mark.parametrize(
    ("fault", "in_force"),
    [("delay_responses", "response_delay"), ("slow_requests", "processing_time")],
)
def test_delays_need_a_finite_non_negative_time(fault: str, in_force: str) -> None:
    proxy = FaultProxy("127.0.0.1:1")
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite and >= 0"):
            getattr(proxy, fault)(bad)
    assert getattr(proxy, in_force) == 0


PACE = 0.05  # seconds a request takes under slow_requests in these tests


def produce_frame(correlation_id: int, acks: int, version: int = 3) -> bytes:
    request = ProduceRequest(version, acks=acks, timeout_ms=1000, topic_data={"t": {0: b"r"}})
    return request.encode_frame(correlation_id, "client")


@asynccontextmanager
async def slowed(
    clients: list[anyio.abc.SocketStream], seconds: float, answer_timeout: float = BOUND
) -> AsyncIterator[tuple[Upstream, FaultProxy, anyio.abc.SocketStream]]:
    """A ``kafka`` server behind a proxy that slows its requests; a client of it."""
    async with (
        serve("kafka") as upstream,
        FaultProxy(upstream.address, answer_timeout=answer_timeout) as proxy,
    ):
        stream = await connect(proxy, clients)
        proxy.slow_requests(seconds)
        yield upstream, proxy, stream


def gaps(upstream: Upstream) -> list[float]:
    """Seconds between the requests' arrivals at the server."""
    return [b - a for a, b in zip(upstream.arrived, upstream.arrived[1:], strict=False)]


async def test_slow_requests_takes_pipelined_requests_one_after_another(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with slowed(clients, PACE) as (upstream, proxy, stream):
        assert proxy.processing_time == PACE
        sent = anyio.current_time()
        await stream.send(b"".join(request(ApiKey.METADATA, i, b"m") for i in (1, 2, 3)))
        timed = await read_timed(stream, 3)
        assert [correlation_id for correlation_id, _ in timed] == [1, 2, 3]  # in order
        late = [at - sent for _, at in timed]
        # The server answers at once, but takes the requests one at a time, PACE apart:
        # three requests take three times PACE (a latency, delay_responses, takes one).
        for n, seconds in enumerate(late, 1):
            assert seconds >= n * PACE * 0.95, late
        assert late[-1] < 3 * PACE + 0.2, late
        assert min(gaps(upstream)) >= PACE * 0.95, gaps(upstream)


async def test_slow_requests_ended_lets_the_waiting_request_go_and_passes_through(
    clients: list[anyio.abc.SocketStream],
) -> None:
    async with slowed(clients, BOUND) as (upstream, proxy, stream):
        await stream.send(request(ApiKey.METADATA, 1, b"held"))
        await anyio.sleep(PACE)
        assert upstream.requests == []  # waiting in the proxy for its turn
        ended = anyio.current_time()
        proxy.slow_requests(0)
        assert await read_response(stream) == (1, b"held")
        await stream.send(request(ApiKey.METADATA, 2, b"again"))
        assert await read_response(stream) == (2, b"again")
        assert anyio.current_time() - ended < BOUND / 10  # neither waited for BOUND


async def test_slow_requests_waits_for_no_answer_to_acks_0_and_a_bounded_time_for_others(
    clients: list[anyio.abc.SocketStream],
) -> None:
    timeout = 3 * PACE
    async with slowed(clients, PACE, answer_timeout=timeout) as (upstream, _, stream):
        await stream.send(
            produce_frame(1, acks=0)  # expects no answer: the next waits PACE only
            + request(99, 2, b"never answered")  # the next waits for it, up to timeout
            + request(ApiKey.METADATA, 3, b"m")
        )
        assert await read_response(stream) == (3, b"m")
        assert [r[1] for r in upstream.requests] == [1, 2, 3]
        first, second = gaps(upstream)
        assert PACE * 0.95 <= first < timeout, first
        assert second >= (timeout + PACE) * 0.95, second


@pytest.mark.parametrize("version", [3, 8, 9, 12])
@pytest.mark.parametrize("acks", [0, 1, -1])
def test_the_acks_of_a_produce_request_are_read_from_its_first_bytes(
    version: int, acks: int
) -> None:
    request = ProduceRequest(
        version, acks=acks, timeout_ms=1000, topic_data={"t": {0: b"r"}}, transactional_id="tx"
    )
    frame = request.encode_frame(7, "client")
    assert produce_acks(frame, version) == acks
    assert produce_acks(request.encode_frame(7, None), version) == acks
    # Until the bytes reach the acks, it is not known.
    known_from = next(n for n in range(len(frame)) if produce_acks(frame[:n], version) is not None)
    assert all(produce_acks(frame[:n], version) is None for n in range(known_from))


def test_the_acks_are_found_behind_tagged_fields_and_in_old_versions() -> None:
    frame = produce_frame(7, acks=0, version=9)
    tags_at = 12 + 2 + len("client")  # request header v2: its tagged fields follow the client id
    assert frame[tags_at] == 0
    tagged = frame[4:tags_at] + b"\x02\x00\x03abc\x05\x00" + frame[tags_at + 1 :]
    assert produce_acks(struct.pack(">i", len(tagged)) + tagged, 9) == 0
    # v0-2: no transactional id, acks right after the header.
    assert produce_acks(struct.pack(">ihhih", 0, 0, 2, 7, -1) + struct.pack(">h", 0), 2) == 0


# --------------------------------------------------------------------------- framing


@pytest.mark.parametrize("hold", [False, True])
def test_frame_splitter_finds_frames_fed_byte_by_byte(hold: bool) -> None:
    stream = request(0, 7, b"payload") + request(18, 8, b"") + struct.pack(">i", 2) + b"ab"
    splitter = FrameSplitter(12)
    pieces = [p for byte in stream for p in splitter.feed(bytes([byte]), hold=hold)]
    assert b"".join(p.data for p in pieces) == stream
    heads = [(p.frame, p.head) for p in pieces if p.head is not None]
    assert heads == [
        (0, stream[:12]),
        (1, stream[19:31]),
        (2, struct.pack(">i", 2) + b"ab"),  # shorter than a request header: still a frame
    ]
    first_pieces: dict[int, object] = {}
    for piece in pieces:
        first_pieces.setdefault(piece.frame, piece.head)
    # Held: nothing of a frame goes out before its header is complete. Not held: its
    # first byte goes out at once.
    assert all((head is not None) == hold for head in first_pieces.values())
    assert splitter.frame == 3
    # heads() follows the frames alike, handing back only the headers.
    follower = FrameSplitter(12)
    assert [h for byte in stream for h in follower.heads(bytes([byte]))] == [h for _, h in heads]
    assert follower.frame == 3


# --------------------------------------------------------------------------- a real broker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def tansu_behind_a_proxy() -> Iterator[tuple[str, int]]:
    """A Tansu broker advertising a port the test's FaultProxy will listen on."""
    try:
        find_tansu_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    proxy_port = _free_port()
    with TansuBroker(advertised_port=proxy_port) as broker:
        yield broker.bootstrap_servers, proxy_port
    # (stop() waits for Tansu to drain: kill it instead when a test needs it gone)


async def test_a_producer_through_the_proxy_survives_a_lost_response_and_a_reset(
    tansu_behind_a_proxy: tuple[str, int],
) -> None:
    upstream, proxy_port = tansu_behind_a_proxy
    topic = f"proxy-{anyio.current_time():.0f}-{id(object())}"
    config = {"retry_backoff_ms": 20, "request_timeout_ms": 2000, "delivery_timeout_ms": 8000}
    with anyio.fail_after(30):
        async with (
            FaultProxy(upstream, port=proxy_port) as proxy,
            Producer(proxy.bootstrap_servers, **config) as producer,
        ):
            first = await producer.send_and_wait(topic, b"before", partition=0)
            proxy.cut_after_request(api_key=ApiKey.PRODUCE)
            second = await producer.send_and_wait(topic, b"lost response", partition=0)
            assert proxy.cuts == 1
            await proxy.reset()
            third = await producer.send_and_wait(topic, b"after reset", partition=0)
            assert proxy.accepted >= 2  # the producer came back through the proxy
    # Idempotence: the retried batch is not written twice, so the next record follows it.
    assert third.offset == first.offset + 2
    # Tansu answers the retry DUPLICATE_SEQUENCE_NUMBER without the original offset
    # (Kafka gives the offset); the producer then reports -1, as Java's does.
    assert second.offset in (first.offset + 1, -1)


async def test_a_half_close_on_a_transport_uvloop_already_closed_is_a_broken_link() -> None:
    """uvloop raises RuntimeError("... the handler is closed") from send_eof() on a
    closed transport; the proxy must treat that link as broken, not crash its task group
    (seen in CI: the Kafka failover run on uvloop)."""
    from asyncproducer.testing.proxy import _send_eof

    class ClosedUnderUs:
        async def send_eof(self) -> None:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    with pytest.raises(anyio.BrokenResourceError):
        await _send_eof(ClosedUnderUs())  # type: ignore[arg-type]
