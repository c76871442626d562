"""The per-record future ``send()`` returns, on whichever event loop is running.

On asyncio it is a real :class:`asyncio.Future`, so it works with ``asyncio.gather``,
``asyncio.wait`` and ``asyncio.as_completed``. Trio has no future type; there it is a
:class:`TrioFuture` with the same ``done()/result()/exception()/add_done_callback()``
surface, awaitable from any task.

With the C extension, ``send()`` makes its asyncio futures untracked by the cycle
collector (:func:`untrackable_futures`; why, and why it is safe: ``_speedups_untracked.c``).
So each way a future is completed here tracks it again where it may come to be part of a
cycle: :func:`fail` (an exception holds frames), :func:`complete` and
:func:`set_results` when its owner cancelled it, :func:`set_results` when it has
attributes.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

import sniffio

from asyncproducer._native import speedups

T = TypeVar("T")

# Without the C extension no future is untracked: nothing to track again.
_track: Callable[[object], None] = speedups.track if speedups is not None else lambda _: None
_track_decorated: Callable[[list[Any]], None] = (
    speedups.track_decorated if speedups is not None else lambda _: None
)


class InvalidStateError(RuntimeError):
    """``result()``/``exception()`` on a future that is not done (asyncio's name)."""


_ALREADY_DONE = (asyncio.InvalidStateError, InvalidStateError)


class TrioFuture(Generic[T]):
    """A minimal future for trio: completed once, awaited by any number of tasks."""

    __slots__ = ("_callbacks", "_done", "_event", "_exception", "_result")

    def __init__(self) -> None:
        self._done = False
        self._result: T | None = None
        self._exception: BaseException | None = None
        self._callbacks: list[Callable[[TrioFuture[T]], object]] | None = None
        self._event: Any = None  # a trio.Event, made only if someone awaits before completion

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return False  # only the producer completes these; there is no cancel()

    def result(self) -> T:
        if not self._done:
            raise InvalidStateError("the record has not been acknowledged yet")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        if not self._done:
            raise InvalidStateError("the record has not been acknowledged yet")
        return self._exception

    def add_done_callback(self, callback: Callable[[TrioFuture[T]], object]) -> None:
        if self._done:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def set_result(self, result: T) -> None:
        self._result = result
        self._finish()

    def set_exception(self, exception: BaseException) -> None:
        self._exception = exception
        self._finish()

    def _finish(self) -> None:
        if self._done:
            raise InvalidStateError("the future is already done")
        self._done = True
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback(self)

    def __await__(self) -> Generator[Any, None, T]:
        if not self._done:
            import trio

            if self._event is None:
                self._event = trio.Event()
            yield from self._event.wait().__await__()
        return self.result()


FutureFactory = Callable[[], "asyncio.Future[Any] | TrioFuture[Any]"]


def future_factory() -> FutureFactory:
    """A constructor of futures for the event loop running now (call from async code)."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        loop = asyncio.get_running_loop()
        if type(loop).create_future is asyncio.BaseEventLoop.create_future:
            # The stock loop's create_future is a Python frame around the C Future type:
            # calling the type directly costs less. A partial copies its keywords into a
            # new dict at every call; the C extension's FutureMaker does not (a future
            # made and freed: ~120 ns, against ~165 through the partial and ~190
            # through create_future).
            if speedups is not None:
                return speedups.FutureMaker(asyncio.Future, loop)  # type: ignore[no-any-return]
            return functools.partial(asyncio.Future, loop=loop)
        return loop.create_future  # uvloop and other loops: their own futures
    if library == "trio":
        return TrioFuture
    raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")


Checkpoint = Callable[[], Awaitable[None]]


def checkpoint_factory() -> Checkpoint:
    """``anyio.lowlevel.checkpoint`` of the running event loop (a yield to the loop, and
    a cancellation point), without looking up the backend on every call: that lookup
    took a third of the cost of the send path's yield, once a batch. Call from async
    code."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        return _sleep_0
    if library == "trio":
        import trio

        return trio.lowlevel.checkpoint
    raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")


def _sleep_0() -> Awaitable[None]:
    return asyncio.sleep(0)  # what AnyIO's checkpoint awaits on asyncio


EventFactory = Callable[[], Any]


def event_factory() -> EventFactory:
    """A constructor of the running event loop's own events (``set``/``is_set``/``wait``):
    what ``anyio.Event()`` returns, without looking up the backend on every call, which
    per request and per sender turn is a measurable share of a small request's cost.
    Both are cancelled by AnyIO cancel scopes like any await. Call from async code."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        return functools.partial(LoopEvent, asyncio.get_running_loop())
    if library == "trio":
        import trio

        return trio.Event
    raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")


class LoopEvent:
    """:class:`asyncio.Event` for a loop known when it is made. asyncio's looks up the
    running loop at every ``wait()``, and on Python 3.11 that lookup is a ``getpid()``
    system call (1.5 % of a producer's CPU at full speed: the sender waits on a new event
    every turn). Each waiter gets a future of its own, as with asyncio's, so a cancelled
    waiter does not cancel the others."""

    __slots__ = ("_loop", "_set", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        if self._set:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)


def complete(future: asyncio.Future[Any] | TrioFuture[Any], result: Any) -> None:
    """Set a result unless the user cancelled the (asyncio) future meanwhile."""
    if future.done():
        _track(future)  # cancelled: its CancelledError may hold frames that hold it
    else:
        future.set_result(result)


def fail(future: asyncio.Future[Any] | TrioFuture[Any], error: BaseException) -> None:
    _track(future)  # the exception's traceback may hold frames that hold the future
    if not future.done():
        future.set_exception(error)


def mark_retrieved(future: asyncio.Future[Any] | TrioFuture[Any] | None) -> None:
    """Count a failed future's exception as seen: its record's ``on_delivery`` callback
    was given it. Otherwise asyncio logs "Future exception was never retrieved" when the
    future is collected, as for a failure nobody heard of (a fire-and-forget ``send()``
    with a callback never awaits its future)."""
    if future is not None and future.done() and not future.cancelled():
        future.exception()


def set_results(futures: list[Any], results: Sequence[Any]) -> None:
    """Set each future's result, in order, skipping futures the user cancelled."""
    if not futures:
        return
    try:
        # One C-level loop: the common case, where no future was cancelled.
        deque(map(type(futures[0]).set_result, futures, results), maxlen=0)
    except _ALREADY_DONE:
        for future, result in zip(futures, results, strict=True):
            complete(future, result)
    _track_decorated(futures)


def untrackable_futures(new_future: FutureFactory) -> bool:
    """Whether ``send()`` in C may make ``new_future``'s futures untracked by the cycle
    collector: asyncio's own C futures, on the Python versions whose futures' fields
    ``_speedups_untracked.c`` accounts for."""
    if speedups is None or sys.version_info >= (3, 14):
        return False
    probe = new_future()
    return type(probe) is asyncio.Future and type(probe).__module__ == "_asyncio"


def loop_clock() -> Callable[[], float]:
    """The running event loop's clock (``anyio.current_time()`` without looking up the
    backend on every call: the connection reads it per request). Call from async code."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        return asyncio.get_running_loop().time
    if library == "trio":
        import trio

        return trio.current_time
    raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")


TimedWait = Callable[[Any, float], Awaitable[None]]


def timed_wait_factory() -> TimedWait:
    """``wait(event, timeout_s)``: wait until ``event`` (one of :func:`event_factory`'s)
    is set or ``timeout_s`` passes, whichever is first (then the event is set, on
    asyncio). What ``with anyio.move_on_after(t): await event.wait()`` does, for the
    sender's loop, which sleeps so on every turn: on asyncio a cancel scope costs several
    times a timer handle. Still cancellable by enclosing AnyIO cancel scopes. Call from
    async code."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        loop = asyncio.get_running_loop()

        async def wait_on_asyncio(event: Any, timeout_s: float) -> None:
            timer = loop.call_later(timeout_s, event.set)
            try:
                await event.wait()
            finally:
                timer.cancel()

        return wait_on_asyncio
    if library == "trio":
        import trio

        async def wait_on_trio(event: Any, timeout_s: float) -> None:
            with trio.move_on_after(timeout_s):
                await event.wait()

        return wait_on_trio
    raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")


class Parking:
    """The leanest timed wait there is, for tasks parked by the thousand (``send()``
    waiting for buffer memory): ``token = new()``, ``await wait(token, timeout_s)``
    returns when ``wake(token)`` is called or ``timeout_s`` passes, whichever is first;
    ``wake`` may be called any number of times, before or after. On asyncio a future and
    a timer handle, ~1.7 KiB less per task than an event under a cancel scope; on trio a
    trio event under trio's own cancel scope. Still cancellable by enclosing AnyIO cancel
    scopes. Made with :func:`parking`, from async code."""

    __slots__ = ("new", "wait", "wake")

    def __init__(
        self,
        new: Callable[[], Any],
        wait: Callable[[Any, float], Awaitable[None]],
        wake: Callable[[Any], None],
    ) -> None:
        self.new, self.wait, self.wake = new, wait, wake


def parking() -> Parking:
    """The running event loop's :class:`Parking`."""
    library = sniffio.current_async_library()
    if library == "asyncio":
        loop = asyncio.get_running_loop()

        async def wait_on_asyncio(future: asyncio.Future[None], timeout_s: float) -> None:
            timer = loop.call_later(timeout_s, _complete_if_pending, future)
            try:
                await future
            finally:
                timer.cancel()

        return Parking(loop.create_future, wait_on_asyncio, _complete_if_pending)
    if library == "trio":
        import trio

        async def wait_on_trio(event: trio.Event, timeout_s: float) -> None:
            with trio.move_on_after(timeout_s):
                await event.wait()

        return Parking(trio.Event, wait_on_trio, trio.Event.set)
    raise RuntimeError(f"asyncproducer runs on asyncio or trio, not {library}")


def _complete_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():  # its time ran out, or its task was cancelled
        future.set_result(None)
