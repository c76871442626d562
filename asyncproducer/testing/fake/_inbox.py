"""A fake broker connection's incoming requests, each stamped with when it was read.

A broker reads a connection's next request once the one before it is done. While a
connection is throttled (KIP-219) Kafka reads nothing at all; the fake still takes what
arrives off the socket, stamped, and serves it when the throttle is over, so a test can
tell a client that sent during its throttle time from one that waited (the quota
bookkeeping is in :mod:`._quotas`).
"""

from __future__ import annotations

import time
from collections import deque

import anyio
import anyio.abc
import anyio.lowlevel

from asyncproducer.protocol.framing import FrameDecoder

__all__ = ["Inbox"]

DRAIN_QUIET_S = 0.02
"""How long a client must send nothing for the drain to take it as having sent all it had:
longer than a client takes to read a response, since a client whose last throttle ends
about now may send its next request now, not yet knowing of the next throttle."""
DRAIN_MAX_S = 0.1
_IO_ROUNDS = 5
"""Loop turns after each quiet wait, so that bytes already in the socket buffer are read:
on uvloop a timer can fire before the same turn polls the sockets."""
_TICK = 1e-6


class Inbox:
    """The requests of one connection, in arrival order, with the time each was read."""

    def __init__(self, stream: anyio.abc.ByteStream, connection: int) -> None:
        self.stream = stream
        self.connection = connection
        self._decoder = FrameDecoder()
        self._frames: deque[tuple[bytes, float]] = deque()
        self._ended = False
        self._reads = 0
        self._last_stamp = float("-inf")
        self._failure: Exception | None = None

    def stamp(self) -> float:
        """``time.monotonic()``, strictly increasing on this connection so that the order
        of a read and a write always shows. (Not the loop's clock: uvloop's moves in whole
        milliseconds, read at the start of each loop turn.)"""
        now = max(time.monotonic(), self._last_stamp + _TICK)
        self._last_stamp = now
        return now

    async def next(self) -> tuple[bytes, float]:
        """The next request and when it was read; EndOfStream once none is left."""
        while not self._frames:
            if self._ended:
                raise anyio.EndOfStream
            await self._read()
        return self._frames.popleft()

    async def read_until(self, deadline: float) -> None:
        """Take what arrives until ``deadline`` (a :meth:`stamp`), to be served after it."""
        with anyio.move_on_after(deadline - time.monotonic()):
            await self._read_on()

    async def drain(self) -> None:
        """Take everything the client has written so far: read until it has been quiet
        for a moment (at most ``DRAIN_MAX_S``). What is read after this was written
        after it."""
        async with anyio.create_task_group() as reader:
            reader.start_soon(self._read_on_keeping_failure)
            with anyio.move_on_after(DRAIN_MAX_S):
                while not self._ended:
                    reads = self._reads
                    await anyio.sleep(DRAIN_QUIET_S)
                    for _ in range(_IO_ROUNDS):
                        await anyio.lowlevel.checkpoint()
                    if self._reads == reads:
                        break
            # A receive cancelled while it waits takes nothing from the stream.
            reader.cancel_scope.cancel()
        if self._failure is not None:
            raise self._failure

    async def _read_on_keeping_failure(self) -> None:
        try:
            await self._read_on()
        except Exception as exc:
            # Raised by drain() itself, unwrapped: the connection's handler closes the
            # connection on the stream's errors, not on a task group's ExceptionGroup.
            self._failure = exc
            self._ended = True

    async def _read_on(self) -> None:
        while not self._ended:
            await self._read()

    async def _read(self) -> None:
        try:
            data = await self.stream.receive()
        except anyio.EndOfStream:
            # Requests read before the client closed are still served (acks=0 ones held
            # back by a throttle, say).
            self._ended = True
            return
        self._reads += 1
        at = self.stamp()
        self._frames.extend((frame, at) for frame in self._decoder.feed(data))
