"""``send()`` in C: with the extension, ``producer.send`` is the appender's ``send``, which
returns a ``_speedups.SendCall``, not a coroutine. It must behave as the coroutine
``Producer.send`` does: nothing happens until it is awaited; awaited, it enqueues the
record and returns its future; it runs as a task on asyncio and trio; it raises what the
coroutine raises, when the coroutine raises it; never awaited, it warns. The records it
declines, and its cancellation while it waits, are the coroutine's (test_fast_path.py,
test_cancellation.py); this file covers the awaitable inside a producer, and
tests/unit/test_send_call.py drives it step by step.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import warnings
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import sniffio

from asyncproducer import Producer, RecordMetadata, _staging
from asyncproducer._batch import RECORDS_PER_CHARGE
from asyncproducer.errors import (
    KafkaTimeoutError,
    ProducerClosedError,
    ProducerStateError,
    TransactionStateError,
)
from asyncproducer.testing.fake import FakeCluster
from tests.fake.test_delivery import bounded
from tests.fake.test_many_tasks import Yields

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(_staging.Appender is None, reason="asyncproducer._speedups did not build"),
]


class Stages:
    """Counts the records that took the Python path (``RecordStager.stage``)."""

    def __init__(self, producer: Producer) -> None:
        self.count = 0
        stage = producer._stager.stage

        def counting(*args: Any) -> Any:
            self.count += 1
            return stage(*args)

        producer._stager.stage = counting  # type: ignore[method-assign]


@asynccontextmanager
async def warm_producer(**config: Any) -> AsyncIterator[tuple[FakeCluster, Producer, Stages]]:
    """A running producer whose topic ``t`` (1 partition) has an open batch, so that
    the next records take the C shortcut; batches go only when flushed."""
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        producer = Producer(cluster.bootstrap_servers, linger_ms=60_000, **config)
        async with producer:
            with bounded(5, "the first send()"):
                await producer.send("t", b"opens the batch")
            yield cluster, producer, Stages(producer)


def queued(producer: Producer) -> int:
    return sum(b.record_count for q in producer._accumulator.queues.values() for b in q)


async def acknowledged(producer: Producer, future: Any) -> RecordMetadata:
    with bounded(5, "flush() and the record's acknowledgement"):
        await producer.flush()
        metadata: RecordMetadata = await future
    return metadata


def stored_values(cluster: FakeCluster) -> list[bytes | None]:
    return [record.value for record in cluster.records("t", 0)]


def test_send_is_the_c_awaitable_with_the_coroutine_s_signature() -> None:
    producer = Producer("localhost:9092")
    assert producer.send == producer._appender.send
    assert not inspect.iscoroutinefunction(producer.send)
    expected = list(inspect.signature(Producer.send).parameters)[1:]  # without self
    assert list(inspect.signature(producer.send).parameters) == expected


def test_a_subclass_that_overrides_send_keeps_its_own() -> None:
    class Wrapping(Producer):
        async def send(self, *args: Any, **kwargs: Any) -> Any:
            return await super().send(*args, **kwargs)

    producer = Wrapping("localhost:9092")
    assert "send" not in vars(producer)
    assert inspect.iscoroutinefunction(producer.send)


async def test_nothing_is_enqueued_until_it_is_awaited() -> None:
    async with warm_producer() as (cluster, producer, stages):
        call = producer.send("t", b"awaited later")
        assert isinstance(call, Coroutine)
        assert queued(producer) == 1
        future = await call
        assert queued(producer) == 2
        assert stages.count == 0  # the C shortcut took it
        metadata = await acknowledged(producer, future)
        assert (metadata.topic, metadata.partition, metadata.offset) == ("t", 0, 1)
        assert stored_values(cluster) == [b"opens the batch", b"awaited later"]


async def test_keyword_arguments_on_delivery_and_names_built_at_run_time() -> None:
    delivered: list[Any] = []
    async with warm_producer() as (cluster, producer, stages):
        names = {"to" + "pic": "t", "val" + "ue": b"by keyword", "k" + "ey": b"k"}
        future = await producer.send(
            **names, on_delivery=lambda metadata, error: delivered.append((metadata, error))
        )
        assert stages.count == 0
        metadata = await acknowledged(producer, future)
        assert delivered == [(metadata, None)]
        assert cluster.records("t", 0)[1].key == b"k"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing required argument 'topic'"),
        ((), {"value": b"v"}, "missing required argument 'topic'"),
        (("t", b"v"), {"colour": 1}, "unexpected keyword argument 'colour'"),
        (("t", b"v"), {"value": b"w"}, "multiple values for argument 'value'"),
        (("t",) * 8, {}, "at most 7 arguments"),
    ],
)
def test_wrong_arguments_raise_type_error_at_the_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    producer = Producer("localhost:9092")
    with pytest.raises(TypeError, match=message):
        producer.send(*args, **kwargs)


async def test_it_runs_as_a_task() -> None:
    async with warm_producer() as (cluster, producer, stages):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(producer.send, "t", b"from a task group")
        expected = [b"opens the batch", b"from a task group"]
        if sniffio.current_async_library() == "asyncio":
            await asyncio.create_task(producer.send("t", b"from asyncio.create_task"))
            expected.append(b"from asyncio.create_task")
        with bounded(5, "flush()"):
            await producer.flush()
        assert stored_values(cluster) == expected
        assert stages.count == 0


async def test_awaiting_it_twice_raises() -> None:
    async with warm_producer() as (cluster, producer, _):
        call = producer.send("t", b"once")
        await call
        with pytest.raises(RuntimeError, match="cannot reuse already awaited send"):
            await call
        with bounded(5, "flush()"):
            await producer.flush()
        assert stored_values(cluster) == [b"opens the batch", b"once"]


async def test_never_awaited_it_warns_and_sends_nothing() -> None:
    async with warm_producer() as (cluster, producer, _):
        with pytest.warns(RuntimeWarning, match=r"Producer.send\('t', ...\) was never awaited"):
            producer.send("t", b"never")  # dropped at once: no reference is left
        with bounded(5, "flush()"):
            await producer.flush()
        assert stored_values(cluster) == [b"opens the batch"]


async def test_closed_or_thrown_into_before_it_is_awaited_it_sends_nothing() -> None:
    async with warm_producer() as (cluster, producer, _):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither is "never awaited"
            closed = producer.send("t", b"closed")
            closed.close()
            with pytest.raises(RuntimeError, match="cannot reuse"):
                await closed
            thrown = producer.send("t", b"thrown")
            with pytest.raises(ValueError, match="thrown in"):
                thrown.throw(ValueError("thrown in"))
            with pytest.raises(RuntimeError, match="cannot reuse"):
                await thrown
            del closed, thrown
            gc.collect()
        with bounded(5, "flush()"):
            await producer.flush()
        assert stored_values(cluster) == [b"opens the batch"]


async def test_before_start_and_after_close_it_raises_when_awaited() -> None:
    async with FakeCluster(brokers=1) as cluster:
        producer = Producer(cluster.bootstrap_servers)
        early = producer.send("t", b"too early")
        with pytest.raises(ProducerStateError, match="not started"):
            await early
        async with producer:
            pass
        late = producer.send("t", b"too late")
        with pytest.raises(ProducerClosedError):
            await late


async def test_it_holds_no_reference_to_its_arguments_after_it_is_awaited() -> None:
    async with warm_producer(batch_size=1 << 20) as (cluster, producer, stages):
        # Made at run time, so that only this test refers to them (not "t": a one-character
        # str is CPython's shared cached object, whose count others change meanwhile).
        topic, value, key = "-".join(["t", "refs"]), bytes(range(40)), bytes(range(5))
        cluster.create_topic(topic, 1)
        await producer.send(topic, value, key)  # opens its batch (the Python path)
        await producer.send(topic, value, key)  # the appender caches the topic it saw last
        stages.count = 0
        before = [sys.getrefcount(obj) for obj in (topic, value, key)]
        futures = [await producer.send(topic, value, key) for _ in range(1_000)]
        # The C shortcut took them all but the few at which the batch paid for more
        # records (16 up front, then as many again: at 16, 32, ..., 512 of its 1,003).
        assert stages.count <= (1_003 // RECORDS_PER_CHARGE).bit_length()
        assert [sys.getrefcount(obj) for obj in (topic, value, key)] == before
        await acknowledged(producer, futures[-1])


# ----------------------------------------------------------------------- a new batch


async def test_records_opening_batches_are_staged_once_in_c_and_delivered() -> None:
    """A record whose partition's batch is full goes to ``_send_to_new_batch`` as the C
    shortcut staged it (not staged again in Python), opens the next batch, and is
    delivered with its callback, in order with the others."""
    values = [b"%03d" % i + b"x" * 97 for i in range(120)]
    delivered: list[tuple[int, Any]] = []
    async with warm_producer(batch_size=1_000) as (cluster, producer, stages):
        opened = producer._send_to_new_batch
        calls = 0

        async def counting(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            return await opened(*args)

        producer._appender.python_new_batch = counting
        futures = [
            await producer.send(
                "t", value, on_delivery=lambda m, e: delivered.append((m.offset, e))
            )
            for value in values
        ]
        assert stages.count == 0
        assert calls >= len(values) // 10  # ~9 records of 110 B a batch of 1,000
        with bounded(5, "flush() and the acknowledgements"):
            await producer.flush()
            offsets = [(await future).offset for future in futures]
        assert offsets == list(range(1, 121))
        assert sorted(delivered) == [(offset, None) for offset in offsets]
        assert stored_values(cluster) == [b"opens the batch", *values]


async def test_a_timeout_opening_a_batch_spoils_the_transaction() -> None:
    """No buffer memory for the new batch within ``max_block_ms`` (the broker answers
    nothing): the record fails with KafkaTimeoutError and, as Java's ``doSend``, the
    transaction must be aborted; on the path a record takes when the C shortcut staged
    it."""
    with anyio.fail_after(20):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1)
            producer = Producer(
                cluster.bootstrap_servers,
                transactional_id="tx",
                linger_ms=0,
                batch_size=16_384,
                buffer_memory=40_000,
                max_block_ms=300,
                request_timeout_ms=1_000,
                retry_backoff_ms=10,
            )
            async with producer:
                await producer.begin_transaction()
                await (await producer.send("t", b"registers the partition"))
                stages = Stages(producer)
                cluster.black_hole(cluster.broker_ids[0])
                # Each opens a batch: the third finds no memory.
                await producer.send("t", b"v" * 10_000)
                await producer.send("t", b"v" * 10_000)
                with pytest.raises(KafkaTimeoutError):
                    await producer.send("t", b"v" * 10_000)
                assert stages.count == 0
                with pytest.raises(TransactionStateError, match="must be aborted"):
                    await producer.send("t", b"after")
                cluster.black_hole(cluster.broker_ids[0], enabled=False)


async def test_a_tight_send_loop_yields_to_the_sender_once_per_full_batch() -> None:
    """The records that open batches take ``_send_to_new_batch``; it must yield to the
    sender once per batch filled, as send() does (the first record's batch is
    acknowledged while the loop still sends), and only then."""
    async with warm_producer(batch_size=1_000) as (cluster, producer, stages):
        yields = Yields(producer)
        with bounded(10, "2,000 sends"):
            first = await producer.send("t", b"x" * 90)
            for _ in range(2_000):
                await producer.send("t", b"x" * 90)
            assert first.done()
            await producer.flush()
        assert stages.count == 0
        batches = len(cluster.batches("t", 0))
        assert batches > 150  # ~10 records a batch
        # One yield per batch another followed, but the warm producer's first: it was
        # not full when the loop began.
        assert batches - 2 <= yields.count <= batches - 1
