"""Two probes beside loop_lag's heartbeat: what a request arriving on a socket waits, and
what the garbage collector's full collections take.

Why a second measure of lag. The heartbeat asks the loop for a timer 1 ms ahead, and
asyncio's selector rounds every timeout *up* to a whole millisecond (epoll's unit; libuv's
timers are in milliseconds too). When anything else wakes the loop 0.2 ms before the
heartbeat is due, the loop then sleeps a full millisecond: the heartbeat is 0.8 ms late
while the loop sat idle. The more often other work wakes the loop, the more often that
happens, whoever's work it is. A request arriving on a socket is not rounded: the loop
wakes when its bytes arrive. So :class:`RequestProbe` sends a timestamp every millisecond
from another process (not a thread of this one: a thread would need the GIL to take its
timestamp, and would take it only once the loop let go) and measures how long each waited
before the loop read it: what the loop's occupancy added to a request.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# The sender, in its own interpreter: a timestamp (perf_counter_ns, CLOCK_MONOTONIC on
# Linux, one clock for every process) every ``period`` seconds until it is ended.
_SENDER = """
import socket, sys, time
sock = socket.socket(fileno=int(sys.argv[1]))
period = float(sys.argv[2])
due = time.perf_counter()
while True:
    due += period
    time.sleep(max(0.0, due - time.perf_counter()))
    try:
        sock.sendall(time.perf_counter_ns().to_bytes(8, "little"))
    except OSError:
        break
"""


class RequestProbe(asyncio.Protocol):
    """Timestamps from another process every ``period`` seconds; ``lags_ms``: how long
    each waited on the socket before the loop read it, while ``recording``."""

    def __init__(self, place: Callable[[int], None] | None = None) -> None:
        """``place``: called with the sender's pid as soon as it started (to pin it)."""
        self.lags_ms: list[float] = []
        self.recording = False
        self._place = place
        self._partial = b""
        self._transport: asyncio.BaseTransport | None = None
        self._sender: subprocess.Popen[bytes] | None = None
        self._first: asyncio.Future[None] | None = None

    async def start(self, period: float = 0.001) -> None:
        """Start the sender, and return once its first timestamp arrived: before the
        measured window (the fork holds the loop, the interpreter's start a core)."""
        ours = self._spawn_sender(period)
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._transport, _ = await loop.connect_accepted_socket(lambda: self, ours)
        await asyncio.wait_for(self._first, timeout=30)

    def _spawn_sender(self, period: float) -> socket.socket:
        ours, theirs = socket.socketpair()
        with theirs:
            self._sender = subprocess.Popen(
                [sys.executable, "-c", _SENDER, str(theirs.fileno()), str(period)],
                pass_fds=[theirs.fileno()],
            )
        if self._place is not None:
            self._place(self._sender.pid)
        return ours

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        data = self._partial + data
        whole = len(data) - len(data) % 8
        if self.recording:
            for at in range(0, whole, 8):
                sent = int.from_bytes(data[at : at + 8], "little")
                self.lags_ms.append(max(0, now - sent) / 1e6)
        self._partial = data[whole:]

    def close(self) -> None:
        if self._sender is not None:
            # Ended here: closing the transport alone would close the socket only on the
            # loop's next turn, and the sender would not notice before then.
            self._sender.kill()
            self._sender.wait()
        if self._transport is not None:
            self._transport.close()


class FullCollections:
    """The collector's full (oldest-generation) collections while entered: how many, and
    the longest, in ms. They walk every object the process holds, the application's as
    much as the producer's, so their length is the heap's, their frequency the rate at
    which objects outlive the younger generations."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._observe)
