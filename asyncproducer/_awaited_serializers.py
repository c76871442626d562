"""Awaiting a producer's asynchronous key and value serializers inside ``send()``
(``SendPath._enqueue_awaiting``), each within what is left of ``max_block_ms``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Generator, Sequence
from typing import Any

import sniffio

from asyncproducer._types import Header
from asyncproducer.errors import KafkaError
from asyncproducer.serializers import AwaitedSerializer, Serializer, reason_of


async def serialize_awaiting(
    serializers: tuple[Serializer | AwaitedSerializer, Serializer | AwaitedSerializer],
    topic: str,
    headers: Sequence[Header],
    key: Any,
    value: Any,
    deadline: float,
) -> tuple[bytes | None, bytes | None]:
    """The record's key and value bytes, by the key's and the value's serializer in turn
    (Java's order): a synchronous one called, an asynchronous one awaited
    (:func:`awaited_bytes`, each by ``deadline``)."""
    key_serializer, value_serializer = serializers
    if type(key_serializer) is AwaitedSerializer:
        key_bytes = await awaited_bytes(key_serializer, topic, headers, key, deadline)
    else:
        key_bytes = key_serializer(topic, headers, key)  # type: ignore[operator]
    if type(value_serializer) is AwaitedSerializer:
        value_bytes = await awaited_bytes(value_serializer, topic, headers, value, deadline)
    else:
        value_bytes = value_serializer(topic, headers, value)  # type: ignore[operator]
    return key_bytes, value_bytes


async def awaited_bytes(
    serializer: AwaitedSerializer,
    topic: str,
    headers: Sequence[Header],
    data: Any,
    deadline: float,
) -> bytes | None:
    """Await an asynchronous serializer, by ``deadline`` (``time.monotonic()``: the end of
    ``send()``'s ``max_block_ms``; Java has no asynchronous serializers, and this is how
    ``send()`` bounds its other waits). SerializationError, naming the role, the topic
    and the data's type, if it raises an ``Exception``, returns anything but bytes or
    None, is cancelled by anything but the caller, or is not done by ``deadline``. The
    caller's cancellation goes through (the record is not enqueued).

    Its first step runs at once, as ``await`` would run it, and most calls finish there
    (a schema registered already, say). On asyncio only one that waits gets a timer
    (:class:`_Resumed` awaits the rest): a cancel scope around every call would cost more
    than such a serializer itself (measured: several microseconds a scope). On trio,
    whose cancel scopes must nest, every call is in a scope, given the deadline only if
    it waits."""
    coroutine = _steps(serializer, serializer.start(topic, headers, data), topic, data)
    if sniffio.current_async_library() == "trio":
        return await _awaited_on_trio(serializer, coroutine, topic, data, deadline)
    try:
        suspended = coroutine.send(None)
    except StopIteration as done:
        return serializer.result(topic, data, done.value)
    except Exception as exc:
        raise serializer.error(topic, data, reason_of(exc)) from exc
    except asyncio.CancelledError as exc:
        if _cancelled_by_caller():
            raise
        raise _cancelled(serializer, topic, data, exc) from exc
    # It waits. A timeout (a timer that cancels the task), unlike a cancel scope, may
    # start after the coroutine has: it may be inside cancel scopes of its own by now.
    loop = asyncio.get_running_loop()
    timeout = asyncio.timeout_at(loop.time() + deadline - time.monotonic())
    try:
        async with timeout:
            result = await _Resumed(coroutine, suspended)
    except Exception as exc:  # TimeoutError too: asyncio.timeout's, or its own
        if timeout.expired():
            raise _too_slow(serializer, topic, data) from exc
        raise serializer.error(topic, data, reason_of(exc)) from exc
    except asyncio.CancelledError as exc:
        if _cancelled_by_caller():
            raise
        raise _cancelled(serializer, topic, data, exc) from exc
    return serializer.result(topic, data, result)


def _steps(
    serializer: AwaitedSerializer, awaitable: Awaitable[object], topic: str, data: object
) -> Generator[Any, Any, object]:
    """What ``await awaitable`` steps through (for a coroutine, itself, wrapped)."""
    try:
        return awaitable.__await__()
    except Exception as exc:  # not awaitable (a function marked as a coroutine function)
        raise serializer.error(
            topic, data, f"it returned {type(awaitable).__qualname__}, not an awaitable"
        ) from exc


async def _awaited_on_trio(
    serializer: AwaitedSerializer,
    coroutine: Generator[Any, Any, object],
    topic: str,
    data: Any,
    deadline: float,
) -> bytes | None:
    """:func:`awaited_bytes` on trio, whose cancel scopes must nest: the scope is entered
    before the coroutine starts, and given the deadline only if it waits."""
    import trio

    with trio.CancelScope() as scope:
        try:
            try:
                suspended = coroutine.send(None)
            except StopIteration as done:
                result = done.value
            else:
                scope.deadline = trio.current_time() + deadline - time.monotonic()
                result = await _Resumed(coroutine, suspended)
        except Exception as exc:
            if scope.cancel_called:  # it turned the deadline's Cancelled into its own error
                raise _too_slow(serializer, topic, data) from exc
            raise serializer.error(topic, data, reason_of(exc)) from exc
        # trio.Cancelled goes through: only a cancel scope raises it, never the
        # serializer itself; this one's stops here (cancelled_caught).
    if scope.cancelled_caught:
        raise _too_slow(serializer, topic, data)
    return serializer.result(topic, data, result)


def _too_slow(serializer: AwaitedSerializer, topic: str, data: object) -> KafkaError:
    return serializer.error(
        topic, data, "it did not finish within max_block_ms (send()'s bound on all its waits)"
    )


def _cancelled_by_caller() -> bool:
    """An asyncio cancellation came out of a serializer: is it the caller's (one requested
    of this task, as anyio's cancel scopes request them too), which must go on, rather
    than the serializer's own doing (it awaited something another task cancelled)?"""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _cancelled(
    serializer: AwaitedSerializer, topic: str, data: object, exc: BaseException
) -> KafkaError:
    return serializer.error(topic, data, f"it was cancelled ({reason_of(exc)})")


class _Resumed:
    """``await`` on a coroutine whose first step ran already and suspended, yielding
    ``suspended`` for the event loop: what ``await coroutine`` would have done from
    there on, passing each value, exception and close between the loop and it."""

    __slots__ = ("_coroutine", "_suspended")

    def __init__(self, coroutine: Generator[Any, Any, object], suspended: object) -> None:
        self._coroutine = coroutine
        self._suspended = suspended

    def __await__(self) -> Generator[Any, Any, object]:
        coroutine, message = self._coroutine, self._suspended
        while True:
            try:
                sent = yield message
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    message = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    message = coroutine.send(sent)
                except StopIteration as done:
                    return done.value
