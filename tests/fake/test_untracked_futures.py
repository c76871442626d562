"""The futures ``send()`` makes in C are not walked by the cycle collector
(``asyncproducer/_speedups_untracked.c``: why, and why it is safe); the producer tracks
one again before letting it go where it may come to be part of a cycle: failed, cancelled
by its owner, or given attributes. Each test that builds a cycle checks it is freed, which
it would not be through an untracked future.

asyncio and uvloop only, but for the last tests: trio's futures are ``TrioFuture``, left
as they are, and so are the futures of a producer without the C extension.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from asyncproducer import Producer, _staging
from asyncproducer.errors import TopicAuthorizationFailedError
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from tests.conftest import ASYNCIO_BACKENDS
from tests.fake.test_delivery import bounded
from tests.pure_python import run_without_speedups

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(_staging.Appender is None, reason="asyncproducer._speedups did not build"),
]
on_asyncio = pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)

TOPIC_AUTHORIZATION_FAILED = 29  # not retriable: the batch fails at once

ATTRIBUTES_AT_A_FIXED_PLACE = asyncio.Future.__dictoffset__ > 0
"""Python 3.11 and 3.12. From 3.13 an asyncio future's attributes have no fixed place, so
whether it has any cannot be read cheaply: every completed future is tracked again."""


class Holder:
    """An object of a cycle through a future: freed only if the collector sees it all."""

    future: Any = None


@asynccontextmanager
async def warm_producer(cluster: FakeCluster) -> AsyncIterator[tuple[Producer, Any]]:
    """A running producer whose topic ``t`` has an open batch, so that the next records
    take the C shortcut, and the future of the record that opened it (the Python path's);
    batches go only when flushed."""
    cluster.create_topic("t", 1)
    async with Producer(cluster.bootstrap_servers, linger_ms=60_000) as producer:
        with bounded(5, "the first send()"):
            opener = await producer.send("t", b"opens the batch")
        yield producer, opener


def cycle_through(future: Any, back: Callable[[Any, Holder], object]) -> weakref.ref[Holder]:
    """A holder of ``future`` that ``back(future, holder)`` makes the future hold in turn;
    a weak reference to it (the holder lives on only in the cycle)."""
    holder = Holder()
    holder.future = future
    back(future, holder)
    return weakref.ref(holder)


def freed(ref: weakref.ref[Holder]) -> bool:
    gc.collect()
    return ref() is None


@on_asyncio
async def test_a_future_is_untracked_while_pending_and_once_acknowledged() -> None:
    async with FakeCluster(brokers=1) as cluster, warm_producer(cluster) as (producer, _opener):
        future = await producer.send("t", b"v")
        assert not gc.is_tracked(future)
        with bounded(5, "the acknowledgement"):
            await producer.flush()
            metadata = await future
        assert metadata.offset == 1
        assert gc.is_tracked(future) is not ATTRIBUTES_AT_A_FIXED_PLACE
        assert not gc.is_tracked(metadata)  # the result holds no container either


@on_asyncio
async def test_an_untracked_future_awaited_by_a_task_is_freed_with_it() -> None:
    # While pending, the task awaiting it and the future refer to each other (its
    # callbacks): a cycle the batch keeps reachable, broken when the future completes.
    async with FakeCluster(brokers=1) as cluster, warm_producer(cluster) as (producer, _opener):
        future = await producer.send("t", b"v")
        waiter = asyncio.ensure_future(asyncio.shield(future))
        await asyncio.sleep(0)
        with bounded(5, "the acknowledgement"):
            await producer.flush()
            await waiter
        await asyncio.sleep(0)  # the callbacks the completion scheduled run
        ref = weakref.ref(future)
        del future, waiter
        assert freed(ref)


def _raise_in_a_cycle(future: Any) -> weakref.ref[Holder]:
    """Retrieve the future's exception by raising it here: its traceback then holds this
    frame, whose locals hold the future, through a holder too."""
    holder = Holder()
    holder.future = future
    try:
        future.result()
    except TopicAuthorizationFailedError:
        return weakref.ref(holder)
    raise AssertionError("the future did not fail")


@on_asyncio
async def test_a_failed_future_is_tracked_again_so_its_traceback_s_cycle_is_freed() -> None:
    async with FakeCluster(brokers=1) as cluster, warm_producer(cluster) as (producer, opener):
        future = await producer.send("t", b"v")
        cluster.fail_next(ApiKey.PRODUCE, TOPIC_AUTHORIZATION_FAILED)
        with bounded(5, "the failure"):
            await producer.flush()
            await asyncio.wait([future])
        assert isinstance(opener.exception(), TopicAuthorizationFailedError)  # retrieved
        assert gc.is_tracked(future)
        ref = _raise_in_a_cycle(future)
        del future
        assert freed(ref)


@on_asyncio
async def test_a_cancelled_future_is_tracked_again_when_its_batch_completes() -> None:
    async with FakeCluster(brokers=1) as cluster, warm_producer(cluster) as (producer, _opener):
        future = await producer.send("t", b"v")
        ref = cycle_through(future, lambda f, holder: f.cancel(msg=holder))  # it keeps its message
        with bounded(5, "the acknowledgement"):
            await producer.flush()
        assert gc.is_tracked(future)
        del future
        assert freed(ref)


@on_asyncio
async def test_a_future_given_attributes_is_tracked_again_when_acknowledged() -> None:
    async with FakeCluster(brokers=1) as cluster, warm_producer(cluster) as (producer, _opener):
        plain = await producer.send("t", b"plain")
        future = await producer.send("t", b"decorated")
        ref = cycle_through(future, lambda f, holder: setattr(f, "holder", holder))
        with bounded(5, "the acknowledgement"):
            await producer.flush()
            await future
        assert gc.is_tracked(future)
        # Its batch-mate without attributes stays untracked, where that can be seen.
        assert gc.is_tracked(plain) is not ATTRIBUTES_AT_A_FIXED_PLACE
        del future
        assert freed(ref)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_futures_are_left_tracked() -> None:
    async with FakeCluster(brokers=1) as cluster, warm_producer(cluster) as (producer, _opener):
        future = await producer.send("t", b"v")
        assert gc.is_tracked(future)


def test_without_the_c_extension_futures_are_left_tracked() -> None:
    run_without_speedups(
        """
        import asyncio, gc
        from asyncproducer import Producer
        from asyncproducer.testing.fake import FakeCluster

        async def main():
            async with FakeCluster(brokers=1) as cluster:
                cluster.create_topic("t", 1)
                async with Producer(cluster.bootstrap_servers, linger_ms=60_000) as producer:
                    await producer.send("t", b"opens the batch")
                    future = await producer.send("t", b"v")
                    assert gc.is_tracked(future)
            print("ok")

        asyncio.run(main())
        """
    )
