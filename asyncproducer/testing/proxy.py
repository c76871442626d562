"""A TCP proxy that breaks connections on command: connection faults for a real broker.

The :class:`~asyncproducer.testing.fake.FakeCluster` injects faults from inside the
broker. A real broker (Tansu, Apache Kafka) cannot be told to misbehave, so this proxy
sits between the client and the broker and misbehaves on the wire instead::

    async with FaultProxy("127.0.0.1:9092") as proxy:
        async with Producer(proxy.bootstrap_servers) as producer:
            ...
            await proxy.reset()                # drop every connection (RST), both sides
            proxy.black_hole(True)             # connections stay open, nothing gets through
            await proxy.down()                 # refuse connections, like a dead broker
            await proxy.up()
            proxy.cut_after_request(api_key=0) # the next Produce is written, its response lost
            proxy.rewrite_responses(corrupt)   # every response passes through corrupt()
            proxy.delay_responses(0.05)        # a distant broker: responses 50 ms late
            proxy.slow_requests(0.05)          # a busy broker: 50 ms a request, one at a time

A Kafka client connects to the addresses the broker *advertises* in its metadata, not to
the bootstrap address, so the broker must advertise the proxy's address (see
``TansuBroker(advertised_port=...)``); otherwise only the bootstrap connection goes
through the proxy.

Bytes are forwarded as they arrive (responses, ``delay_responses`` later; requests,
``slow_requests`` one at a time). The proxy also follows the Kafka framing (4-byte
big-endian size, then the frame) in both directions, which ``cut_after_request`` needs to
count requests and recognise the response it must swallow, ``rewrite_responses`` needs to
hand whole response frames, with the API and version of their request, to the function
that rewrites them, and ``slow_requests`` needs to tell when the broker answered a request
(and whether a Produce request expects an answer at all: its acks); any other protocol
passes through untouched as long as those faults are not used. (``delay_responses`` holds
bytes, not frames: it works on any protocol.)

``delay_responses`` and ``slow_requests`` are different kinds of slow. Kafka keeps taking
a connection's pipelined requests while their responses are on their way, so a delay on
the responses alone makes a broker far *away*: five requests in flight still take about
one delay. ``slow_requests`` makes it slow to *process*: each request reaches the broker
only once the one before was answered, then waits its processing time, so five
pipelined requests take five times that.

Works on asyncio and trio. Every wait is bounded; errors are :class:`FaultProxyError`.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections import deque
from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing._proxy_frames import (
    REQUEST_HEAD,
    RESPONSE_HEAD,
    SIZE,
    FrameSplitter,
    Piece,
    produce_acks,
    request_head,
    response_correlation_id,
)

__all__ = ["FaultProxy", "FaultProxyError", "ResponseRewriter"]

# SO_LINGER on, 0 s: close() sends RST at once instead of a FIN after the unsent data,
# which is what a crashed host or a middlebox dropping the connection looks like.
_LINGER_ABORT = struct.pack("ii", 1, 0)
_CHUNK = 65536
# How much of a Produce request slow_requests reads for its acks: past the client id and
# the transactional id (int16-sized strings both) with room to spare. A request whose
# acks is not within them is taken to expect an answer.
_ACKS_WITHIN = 1 << 17


ResponseRewriter = Callable[[int, int, bytes], bytes]
"""``rewrite(api_key, api_version, frame) -> frame``: ``frame`` is a response as the broker
sent it without its 4-byte size (so it starts with the correlation id); what it returns
is sent to the client instead, behind a size prefix that matches it."""


class FaultProxyError(RuntimeError):
    """The proxy was misused (not running), or a bounded wait of its own ran out."""


def _abort_on_close(stream: anyio.abc.SocketStream | None) -> None:
    """Make the coming close of ``stream`` a reset (RST) rather than an orderly FIN."""
    if stream is None:
        return
    # Already closed, or not a socket: then closing is all we can do. (AnyIO's stream on
    # uvloop has no socket left once the peer closed: AttributeError inside extra().)
    with contextlib.suppress(OSError, AttributeError, anyio.TypedAttributeLookupError):
        stream.extra(SocketAttribute.raw_socket).setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT
        )


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: anyio.abc.SocketStream) -> None:
        self.client = client
        self.upstream: anyio.abc.SocketStream | None = None
        self.scope = anyio.CancelScope()
        self.closed = anyio.Event()
        self.pumps: anyio.abc.TaskGroup | None = None
        self.open_directions = 2
        self.requests = FrameSplitter(REQUEST_HEAD.size)
        self.responses = FrameSplitter(RESPONSE_HEAD.size)
        # Set by cut_after_request: requests after this frame are not forwarded, and the
        # response with this correlation id closes the link instead of reaching the client.
        self.cut_frame: int | None = None
        self.cut_correlation_id: int | None = None
        # Bytes were dropped during a black hole: the streams have holes in them, so the
        # link cannot carry on when the black hole ends.
        self.tainted = False
        # While responses are rewritten: (api key, version) of each request by
        # correlation id, and the bytes of the response frame being collected.
        self.asked: dict[int, tuple[int, int]] = {}
        self.collecting: bytearray | None = None
        self.collecting_for: tuple[int, int] = (-1, -1)
        # While responses are delayed (or some still wait): what the broker sent, in
        # order, with when to pass it on; None is its EOF. An entry leaves the deque only
        # once passed on, so "empty" means nothing of the broker's is between it and the
        # client and bytes may go straight through again.
        self.delayed: deque[tuple[float, bytes | None]] = deque()
        # For slow_requests. The broker's responses as they arrive (before any delay), to
        # see its answers; the last request frame that had its turn, and the last one
        # that had it under slow_requests; the correlation id of the request the broker
        # is working on (None: none, or one that expects no answer); the first bytes of
        # a Produce request being passed on, until its acks are known; and the event
        # that wakes a request waiting for its turn.
        self.arrivals = FrameSplitter(RESPONSE_HEAD.size)
        self.turn_frame = -1
        self.paced_frame = -1
        self.awaiting: int | None = None
        self.produce_head: bytearray | None = None
        self.produce_version = 0
        self.wake: anyio.Event | None = None

    def abort(self) -> None:
        _abort_on_close(self.client)
        _abort_on_close(self.upstream)
        self.scope.cancel()

    def direction_done(self) -> None:
        """One direction ended with an orderly EOF; the link ends with the second one
        (which also stops a pending cut deadline)."""
        self.open_directions -= 1
        if not self.open_directions and self.pumps is not None:
            self.pumps.cancel_scope.cancel()


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (``"host:port"`` or a tuple), with faults.

    An async context manager. ``port=0`` (the default) picks a free port; :meth:`down`
    and :meth:`up` keep it, so clients find the proxy again. ``connect_timeout`` bounds
    connecting upstream, ``cut_timeout`` how long a cut connection waits for the response
    it must swallow, ``answer_timeout`` how long a request held by :meth:`slow_requests`
    waits for the broker to answer the one before it, and ``close_timeout`` how long
    :meth:`reset`/:meth:`down` wait for connections to close.
    """

    def __init__(
        self,
        upstream: str | tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 5.0,
        cut_timeout: float = 5.0,
        answer_timeout: float = 5.0,
        close_timeout: float = 5.0,
    ) -> None:
        self._upstream = _parse_address(upstream)
        self._host = host
        self._port = port
        self._connect_timeout = connect_timeout
        self._cut_timeout = cut_timeout
        self._answer_timeout = answer_timeout
        self._close_timeout = close_timeout
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listener_scope: anyio.CancelScope | None = None
        self._listener_closed = anyio.Event()
        self._links: set[_Link] = set()
        self._black_holed = False
        self._cut_countdown = 0
        self._cut_api_key: int | None = None
        self._rewrite: ResponseRewriter | None = None
        self._rewrite_api_key: int | None = None
        self._response_delay = 0.0
        self._processing_time = 0.0
        self.accepted: int = 0
        """Client connections accepted so far."""
        self.cuts: int = 0
        """Connections closed by :meth:`cut_after_request` so far."""
        self.requests_forwarded: int = 0
        """Request frames forwarded upstream so far (complete headers seen)."""
        self.responses_rewritten: int = 0
        """Response frames passed through :meth:`rewrite_responses`' function so far."""

    # ------------------------------------------------------------------ addresses

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect: ``(host, port)``."""
        if self._task_group is None:
            raise FaultProxyError("the FaultProxy is not running: use `async with FaultProxy()`")
        return self._host, self._port

    @property
    def bootstrap_servers(self) -> str:
        host, port = self.address
        return f"{host}:{port}"

    @property
    def upstream(self) -> tuple[str, int]:
        return self._upstream

    @property
    def connection_count(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._links)

    @property
    def is_up(self) -> bool:
        """False between :meth:`down` and :meth:`up`."""
        return self._listener_scope is not None

    @property
    def cut_pending(self) -> bool:
        """True while a :meth:`cut_after_request` has not picked its request yet."""
        return self._cut_countdown > 0

    @property
    def response_delay(self) -> float:
        """The seconds :meth:`delay_responses` holds responses back; 0 when it does not."""
        return self._response_delay

    @property
    def processing_time(self) -> float:
        """The seconds :meth:`slow_requests` makes each request take; 0 when it does not."""
        return self._processing_time

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FaultProxy:
        if self._task_group is not None:
            raise FaultProxyError("this FaultProxy is already running")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            await self._listen()
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            self._task_group = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return
        self._listener_scope = None
        for link in list(self._links):
            link.abort()
        # Cancelling closes the listener and every connection forcefully: never hangs.
        task_group.cancel_scope.cancel()
        await task_group.__aexit__(None, None, None)

    # ------------------------------------------------------------------ faults

    async def reset(self) -> int:
        """Close every current connection abruptly (RST to both the client and the
        upstream); new connections are accepted as before. Returns how many were closed."""
        links = list(self._links)
        for link in links:
            link.abort()
        await self._wait_closed(links, "reset()")
        return len(links)

    def black_hole(self, enabled: bool = True) -> None:
        """Keep connections open but forward nothing, either way: bytes sent meanwhile
        are dropped, never delivered. New connections are accepted and black-holed too.

        When the black hole ends, the connections that lost bytes are closed abruptly
        (their byte streams have holes, so no Kafka frame after them could be trusted);
        the others carry on.
        """
        self._black_holed = enabled
        if not enabled:
            for link in list(self._links):
                if link.tainted:
                    link.abort()

    async def down(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection,
        like a broker that died. :meth:`up` brings it back on the same port."""
        scope, self._listener_scope = self._listener_scope, None
        if scope is not None:
            scope.cancel()
            # The port must be free again before down() returns, or up() could not bind.
            try:
                with anyio.fail_after(self._close_timeout):
                    await self._listener_closed.wait()
            except TimeoutError:
                raise FaultProxyError(
                    f"FaultProxy.down(): the listener did not close in {self._close_timeout:g} s"
                ) from None
        await self.reset()

    async def up(self) -> None:
        """Accept connections again after :meth:`down` (no-op when already up)."""
        if self._task_group is None:
            raise FaultProxyError("the FaultProxy is not running")
        if self._listener_scope is None:
            await self._listen()

    def cut_after_request(self, n: int = 1, *, api_key: int | None = None) -> None:
        """Forward the next ``n`` request frames (only those of ``api_key`` count, if
        given), then close the connection that carried the n-th before its response
        reaches the client: the broker handled the request, the client never learns how.

        The connection closes when the response starts to arrive (or after
        ``cut_timeout`` if none does); responses to earlier requests on it still reach
        the client, and requests sent after the n-th on it are dropped. Replaces a cut
        that has not picked its request yet.
        """
        if n < 1:
            raise ValueError(f"cut_after_request: n must be >= 1, got {n}")
        self._cut_countdown = n
        self._cut_api_key = api_key

    def rewrite_responses(
        self, rewrite: ResponseRewriter | None, *, api_key: int | None = None
    ) -> None:
        """Send the client ``rewrite(api_key, api_version, frame)`` instead of each response
        frame (only those to requests of ``api_key``, if given): a broker that answers
        with corrupted, truncated, padded or otherwise unusual bytes. ``None`` stops it.

        ``frame`` is the response without its size (it starts with the correlation id);
        the proxy writes a size that matches what ``rewrite`` returns. Applies to
        responses to requests forwarded from now on; an exception from ``rewrite``
        stops the proxy (it surfaces when the ``async with`` block ends).
        """
        self._rewrite = rewrite
        self._rewrite_api_key = api_key

    def delay_responses(self, seconds: float) -> None:
        """Pass on what the broker sends ``seconds`` after it arrived: a slow broker, or a
        long way to it. ``0`` ends it.

        A latency, not a throttle: bytes keep being read from the broker as they come and
        each piece waits from its own arrival, so pipelined responses are all late by
        ``seconds``, not one after the other; their order is kept. Every response is
        delayed (whatever its API), and the broker's EOF too. Applies to bytes arriving
        from now on: those already held keep their time, and nothing overtakes them
        when the delay is shortened or ended. The faults act on bytes as they are passed
        on: a cut response is recognised, a response rewritten, a black hole drops
        bytes, when the delay is over.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"delay_responses: seconds must be finite and >= 0, got {seconds!r}")
        self._response_delay = float(seconds)

    def slow_requests(self, seconds: float) -> None:
        """Make the broker slow to process: on each connection, requests reach it one at a
        time, each once the broker answered the one before and then ``seconds`` later, like
        a broker whose request handler takes ``seconds`` more (Kafka, like this, works on
        one request per connection at a time). ``0`` ends it.

        So a request on an idle connection is answered ``seconds`` late, and ``n``
        pipelined ones take ``n`` times that, where :meth:`delay_responses` keeps them at
        about one. A request waits in the proxy with the bytes behind it: the client's
        further bytes wait in the socket buffers (TCP backpressure), in order.

        The broker's answer is recognised by its correlation id as it arrives, before
        :meth:`delay_responses` holds it (then the broker is slow *and* far away). A
        Produce request with acks=0 expects none, so the next request waits only its
        ``seconds``; any other request the broker leaves unanswered holds the next one
        for ``answer_timeout`` at most. Applies to requests passed on from now on (not
        to those already in flight); shortening or ending it applies to a waiting
        request at once. A request that waited its turn into a :meth:`black_hole` is
        dropped, as if sent during it; a cut request waits its turn like any other, and
        the requests dropped after it wait for nothing.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"slow_requests: seconds must be finite and >= 0, got {seconds!r}")
        self._processing_time = float(seconds)
        for link in self._links:
            if link.wake is not None:
                link.wake.set()

    async def heal(self) -> None:
        """End every fault: up, no black hole, no pending cut, no rewriting, no delay
        (responses already held are passed on at their time), no slow requests."""
        self._cut_countdown = 0
        self._rewrite = None
        self._response_delay = 0.0
        self.slow_requests(0)
        self.black_hole(False)
        await self.up()

    # ------------------------------------------------------------------ listening

    async def _listen(self) -> None:
        assert self._task_group is not None
        try:
            listener = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
        except OSError as exc:
            raise FaultProxyError(
                f"the FaultProxy could not listen on {self._host}:{self._port}: {exc}"
            ) from exc
        self._port = int(listener.extra(SocketAttribute.local_port))
        self._listener_closed = anyio.Event()
        self._listener_scope = await self._task_group.start(self._serve, listener)

    async def _serve(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        *,
        task_status: anyio.abc.TaskStatus[anyio.CancelScope],
    ) -> None:
        assert self._task_group is not None
        try:
            with anyio.CancelScope() as scope:
                async with listener:
                    task_status.started(scope)
                    # Connections live in the proxy's task group, not the listener's
                    # scope: down() decides separately what happens to them.
                    await listener.serve(self._handle, task_group=self._task_group)
        finally:
            self._listener_closed.set()

    async def _wait_closed(self, links: list[_Link], what: str) -> None:
        try:
            with anyio.fail_after(self._close_timeout):
                for link in links:
                    await link.closed.wait()
        except TimeoutError:
            raise FaultProxyError(
                f"FaultProxy.{what}: connections still open after {self._close_timeout:g} s"
            ) from None

    # ------------------------------------------------------------------ connections

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        link = _Link(client)
        self._links.add(link)
        self.accepted += 1
        try:
            with link.scope:
                if self._listener_scope is None:
                    link.abort()  # accepted just before down(): a dead broker says nothing
                    return
                await self._connect_upstream(link)
                if link.upstream is not None:
                    await self._run_link(link)
        finally:
            self._links.discard(link)
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(client)
                if link.upstream is not None:
                    await anyio.aclose_forcefully(link.upstream)
            link.closed.set()

    async def _connect_upstream(self, link: _Link) -> None:
        host, port = self._upstream
        try:
            with anyio.fail_after(self._connect_timeout):
                link.upstream = await anyio.connect_tcp(host, port)
        except (OSError, TimeoutError):
            # The client sees what a client of a dead broker behind a proxy sees: the
            # connection opens, then resets.
            link.abort()

    async def _run_link(self, link: _Link) -> None:
        async with anyio.create_task_group() as pumps:
            link.pumps = pumps
            pumps.start_soon(self._pump_requests, link)
            pumps.start_soon(self._pump_responses, link)

    async def _pump_requests(self, link: _Link) -> None:
        assert link.upstream is not None
        try:
            while True:
                try:
                    data = await link.client.receive(_CHUNK)
                except anyio.EndOfStream:
                    # Pass the client's orderly close on; its responses may still come.
                    await _send_eof(link.upstream)
                    link.direction_done()
                    return
                if self._black_holed:
                    link.tainted = True
                    continue
                for piece in link.requests.feed(data):
                    if piece.frame > link.turn_frame:  # a new request begins
                        link.turn_frame = piece.frame
                        if self._processing_time and link.cut_frame is None:
                            await self._take_turn(link)
                            link.paced_frame = piece.frame
                            if self._black_holed:  # opened while the request waited
                                link.tainted = True
                                break
                    if piece.head is not None:
                        self._on_request(link, piece)
                    if piece.frame == link.paced_frame:
                        self._follow_paced(link, piece)
                    if piece.data and (link.cut_frame is None or piece.frame <= link.cut_frame):
                        await link.upstream.send(piece.data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            link.abort()

    def _on_request(self, link: _Link, piece: Piece) -> None:
        """A request's header is complete: count it, and maybe make it the cut one."""
        if link.cut_frame is not None or piece.head is None:
            return  # after a cut nothing more goes upstream on this link
        self.requests_forwarded += 1
        parsed = request_head(piece.head)
        if parsed is None:
            return
        api_key, version, correlation_id = parsed
        if self._rewrite is not None and self._rewrite_api_key in (None, api_key):
            link.asked[correlation_id] = (api_key, version)
        if not self._cut_countdown:
            return
        if self._cut_api_key is not None and api_key != self._cut_api_key:
            return
        self._cut_countdown -= 1
        if not self._cut_countdown:
            link.cut_frame = piece.frame
            link.cut_correlation_id = correlation_id
            assert link.pumps is not None
            link.pumps.start_soon(self._cut_deadline, link)

    async def _take_turn(self, link: _Link) -> None:
        """Hold the link's next request until the broker answered the one before (for
        ``answer_timeout`` at most), then :attr:`processing_time`; whichever time is in
        force now (it may change meanwhile)."""
        answer_deadline = anyio.current_time() + self._answer_timeout
        turn_began: float | None = None
        while self._processing_time:
            now = anyio.current_time()
            if link.awaiting is not None and now < answer_deadline:
                until = answer_deadline
            else:
                link.awaiting = None
                if turn_began is None:
                    turn_began = now
                until = turn_began + self._processing_time
                if now >= until:
                    break
            link.wake = anyio.Event()
            with anyio.move_on_after(until - now):
                await link.wake.wait()
            link.wake = None
        link.awaiting = None
        link.produce_head = None

    @staticmethod
    def _follow_paced(link: _Link, piece: Piece) -> None:
        """A piece of a request passed on under slow_requests: note the answer to wait for
        (none for a Produce with acks=0, known once its first bytes are in)."""
        if piece.head is not None:
            parsed = request_head(piece.head)
            if parsed is None:
                return  # shorter than a request header: not one the broker can answer
            api_key, version, link.awaiting = parsed
            if api_key != ApiKey.PRODUCE:
                return
            link.produce_head = bytearray(piece.head)  # piece.data is its tail
            link.produce_version = version
        elif link.produce_head is not None:
            link.produce_head += piece.data[: _ACKS_WITHIN - len(link.produce_head)]
        else:
            return
        acks = produce_acks(link.produce_head, link.produce_version)
        if acks is not None or piece.last or len(link.produce_head) >= _ACKS_WITHIN:
            if acks == 0:
                link.awaiting = None
            link.produce_head = None

    @staticmethod
    def _on_arrival(link: _Link, data: bytes | None) -> None:
        """Bytes (None: the EOF) arrived from the broker: wake a request waiting for the
        answer they complete."""
        if data is None:
            answered = True  # nothing more will come
        else:
            heads = link.arrivals.heads(data)
            if link.awaiting is None:
                return
            answered = any(response_correlation_id(h) == link.awaiting for h in heads)
        if answered:
            link.awaiting = None
            if link.wake is not None:
                link.wake.set()

    async def _cut_deadline(self, link: _Link) -> None:
        # The broker may never answer (acks=0, or it is slow): cut anyway, bounded.
        await anyio.sleep(self._cut_timeout)
        self._cut(link)

    def _cut(self, link: _Link) -> None:
        self.cuts += 1
        link.abort()

    async def _pump_responses(self, link: _Link) -> None:
        assert link.upstream is not None
        try:
            while True:
                data: bytes | None
                try:
                    data = await link.upstream.receive(_CHUNK)
                except anyio.EndOfStream:
                    data = None  # the broker's EOF: passed on in turn, like its bytes
                self._on_arrival(link, data)
                if self._response_delay or link.delayed:
                    # Held even when the delay just ended, until what was held before
                    # it is out: nothing overtakes. Reading goes on meanwhile, so each
                    # piece is timed from its own arrival.
                    self._hold_response(link, data)
                    if data is None:
                        return
                elif not await self._forward_response(link, data):
                    return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            link.abort()

    def _hold_response(self, link: _Link, data: bytes | None) -> None:
        link.delayed.append((anyio.current_time() + self._response_delay, data))
        if len(link.delayed) == 1:  # nothing held before: no task is passing them on
            assert link.pumps is not None
            link.pumps.start_soon(self._forward_held, link)

    async def _forward_held(self, link: _Link) -> None:
        try:
            while link.delayed:
                due, data = link.delayed[0]
                await anyio.sleep(max(0.0, due - anyio.current_time()))
                if not await self._forward_response(link, data):
                    link.delayed.clear()
                    return
                link.delayed.popleft()  # only now: see _Link.delayed
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            link.abort()

    async def _forward_response(self, link: _Link, data: bytes | None) -> bool:
        """Pass on what the broker sent (None: its EOF), with the faults; False when the
        link's responses end here (EOF passed on, or the link cut)."""
        if data is None:
            await _send_eof(link.client)
            link.direction_done()
            return False
        if self._black_holed:
            link.tainted = True
            return True
        # Once a cut is armed, hold each response header back until it is known not to
        # be the one to swallow; while rewriting, until it is known whether to rewrite
        # the frame.
        hold = link.cut_correlation_id is not None or bool(link.asked)
        for piece in link.responses.feed(data, hold=hold):
            if piece.head is not None and self._is_cut_response(link, piece.head):
                self._cut(link)
                return False
            if piece.head is not None:
                self._maybe_collect(link, piece)
            if link.collecting is not None:
                await self._collect(link, piece)
            elif piece.data:
                await link.client.send(piece.data)
        return True

    @staticmethod
    def _maybe_collect(link: _Link, piece: Piece) -> None:
        """A response header is complete: collect the frame if it is to be rewritten
        (and none of it was forwarded yet: a header passed on before rewriting began)."""
        assert piece.head is not None
        correlation_id = response_correlation_id(piece.head)
        asked = link.asked.pop(correlation_id, None) if correlation_id is not None else None
        if asked is not None and piece.data == piece.head:
            link.collecting = bytearray()
            link.collecting_for = asked

    async def _collect(self, link: _Link, piece: Piece) -> None:
        assert link.collecting is not None
        link.collecting += piece.data
        if not piece.last:
            return
        frame = bytes(link.collecting[SIZE.size :])
        link.collecting = None
        rewrite = self._rewrite
        if rewrite is not None:
            api_key, version = link.collecting_for
            frame = rewrite(api_key, version, frame)
            self.responses_rewritten += 1
        await link.client.send(SIZE.pack(len(frame)) + frame)

    @staticmethod
    def _is_cut_response(link: _Link, head: bytes) -> bool:
        if link.cut_correlation_id is None:
            return False
        return response_correlation_id(head) == link.cut_correlation_id


def _parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(address, tuple):
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"FaultProxy upstream must be 'host:port', got {address!r}")
    return host.strip("[]"), int(port)


async def _send_eof(stream: anyio.abc.SocketStream) -> None:
    """Half-close ``stream``; one already closed is a broken link (uvloop raises
    RuntimeError, "the handler is closed", where asyncio's transport says nothing)."""
    try:
        await stream.send_eof()
    except RuntimeError:
        raise anyio.BrokenResourceError from None
