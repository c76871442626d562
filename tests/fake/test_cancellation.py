"""Cancellation at each await point of the public API, and close(timeout) (issue 5).

The contract (docs/producer.md, "Cancellation"): ``send()`` awaits only before the record
is appended, so a ``send()`` that was cancelled has *not* enqueued its record and one that
returned has. Cancelling a task that awaits a record's future, ``send_and_wait()`` or
``flush()`` does not cancel the record: it is still sent and acknowledged. After each,
the producer stays consistent: later sends complete, ``close()`` returns in bounds, and no
background task is left. Helpers and settings are test_delivery.py's.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.abc
import pytest

from asyncproducer import RecordMetadata
from asyncproducer.errors import ProducerClosedError
from asyncproducer.producer import State
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster
from tests.fake.test_delivery import (
    BIG,
    BUFFER,
    Sends,
    assert_delivered,
    assert_failed_with,
    assert_log,
    assert_no_producer_tasks,
    bounded,
    fill_the_buffer,
    make_producer,
    running,
    wait_until_requests,
)

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------- send() waiting


@pytest.mark.parametrize("call", ["send", "send_and_wait"])
async def test_cancelled_while_waiting_for_metadata_nothing_is_enqueued(call: str) -> None:
    """The topic does not exist (auto-creation off): send() waits for its metadata and
    is cancelled there. The record was not enqueued: once the topic exists, the next
    record is the first one in its log."""
    async with FakeCluster(auto_create_topics=False) as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        producer = make_producer(cluster, max_block_ms=5000)
        async with running(producer):
            sends = Sends(producer)
            await sends.send("orders", b"running")
            started = time.monotonic()
            with anyio.move_on_after(0.3) as scope:
                await getattr(producer, call)("later", b"cancelled")
            assert scope.cancelled_caught
            assert time.monotonic() - started < 1.0
            cluster.create_topic("later", 1, leaders=[1])
            after = await sends.send("later", b"after")
            assert_delivered(await sends.outcomes(5))
            records = producer.metrics()["record-send-total"]
        await assert_no_producer_tasks()
        assert_log(cluster, "later", 0, [after])
        assert records == 2


async def test_cancelled_while_waiting_for_buffer_memory_nothing_is_enqueued_or_leaked() -> None:
    """Two sends wait for memory (the leader is black-holed, the buffer full); the first
    in line is cancelled. Its record is not enqueued, it holds no memory and does not
    block the one behind it, which proceeds once the broker answers again."""
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[2])
        producer = make_producer(
            cluster, via=0, max_block_ms=5000, delivery_timeout_ms=5000, **BUFFER
        )
        async with running(producer):
            sends = Sends(producer)
            await fill_the_buffer(cluster, sends)
            first = anyio.CancelScope()

            async def cancelled_send() -> None:
                with first:
                    await producer.send("orders", BIG + b"cancelled")

            async def waiting_send() -> None:
                await sends.send("orders", BIG + b"waited")

            with bounded(5, "a send() queued for memory behind a cancelled one"):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(cancelled_send)
                    await anyio.sleep(0.1)
                    tasks.start_soon(waiting_send)
                    await anyio.sleep(0.1)
                    first.cancel()
                    await anyio.sleep(0.1)
                    cluster.black_hole(2, enabled=False)
            assert first.cancelled_caught
            assert_delivered(await sends.outcomes(5))
            assert producer.metrics()["buffer-available-bytes"] == BUFFER["buffer_memory"]
            for i in range(4):  # all of the buffer is there
                with bounded(0.5, "a send() after the cancelled one"):
                    await sends.send("orders", BIG + b"after-%d" % i)
            assert_delivered(await sends.outcomes(5))
            assert producer.metrics()["buffer-available-bytes"] == BUFFER["buffer_memory"]
        assert_log(cluster, "orders", 0, sends.items)


# --------------------------------------------------------------------------- after the append


async def test_cancelling_the_wait_for_a_future_does_not_cancel_the_record(
    anyio_backend_name: str,
) -> None:
    """The record's request is in flight when the waiting task is cancelled: the record
    is still acknowledged and on_delivery still runs. The future itself is left alone on
    trio; on asyncio, by asyncio's own rule, cancelling a task cancels the Future it
    awaits (docs/producer.md says so and suggests asyncio.shield)."""
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        async with running(make_producer(cluster)) as producer:
            await producer.partitions_for("orders")
            cluster.delay_responses(ApiKey.PRODUCE, 0.3, count=1, broker=0)
            delivered: list[tuple[RecordMetadata | None, BaseException | None]] = []
            future = await producer.send(
                "orders", b"v", on_delivery=lambda md, exc: delivered.append((md, exc))
            )
            await wait_until_requests(cluster, ApiKey.PRODUCE, 1, broker=0)
            with anyio.move_on_after(0.05) as scope:
                await future
            assert scope.cancelled_caught
            with bounded(3, "flush() after a cancelled waiter"):
                await producer.flush()
            [(metadata, error)] = delivered
            assert error is None
            assert metadata is not None
            assert metadata.offset == 0
            if anyio_backend_name == "asyncio":
                assert future.cancelled()
            else:
                assert not future.cancelled()
                assert future.result() == metadata
            assert (await producer.send_and_wait("orders", b"after")).offset == 1
        assert [(r.offset, r.value) for r in cluster.records("orders", 0)] == [
            (0, b"v"),
            (1, b"after"),
        ]


async def test_cancelling_send_and_wait_after_the_append_still_delivers_the_record() -> None:
    """Cancelled while its request is in flight: send() had returned inside it, so the
    record was enqueued and is delivered (once) all the same. (Cancelled before the
    append, it is not: see the metadata test above.)"""
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        async with running(make_producer(cluster)) as producer:
            await producer.partitions_for("orders")
            cluster.delay_responses(ApiKey.PRODUCE, 0.3, count=1, broker=0)
            with anyio.move_on_after(0.1) as scope:
                await producer.send_and_wait("orders", b"v")
            assert scope.cancelled_caught
            with bounded(3, "flush() after a cancelled send_and_wait()"):
                await producer.flush()
            assert [r.value for r in cluster.records("orders", 0)] == [b"v"]
            assert (await producer.send_and_wait("orders", b"after")).offset == 1
        assert [r.value for r in cluster.records("orders", 0)] == [b"v", b"after"]


async def test_a_cancelled_flush_delivers_its_records_and_ends_the_flush() -> None:
    """The records the flush sent are still acknowledged; and the flush is over: a record
    sent afterwards waits for linger_ms again until the next flush."""
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        producer = make_producer(cluster, linger_ms=1000, delivery_timeout_ms=3000)
        async with running(producer):
            await producer.partitions_for("orders")
            cluster.delay_responses(ApiKey.PRODUCE, 0.3, count=1, broker=0)
            sends = Sends(producer)
            for i in range(5):
                await sends.send("orders", b"v%d" % i)
            with anyio.move_on_after(0.1) as scope:
                await producer.flush()
            assert scope.cancelled_caught
            assert_delivered(await sends.outcomes(3))
            lingering = await sends.send("orders", b"lingering")
            await anyio.sleep(0.3)
            assert not lingering.future.done()  # linger_ms applies again
            started = time.monotonic()
            with bounded(2, "a flush() after a cancelled one"):
                await producer.flush()
            assert time.monotonic() - started < 0.5
            assert lingering.future.done()
        assert_log(cluster, "orders", 0, sends.items)


async def test_cancelling_the_task_that_owns_the_producer_closes_it_promptly() -> None:
    """The task in ``async with Producer(...)`` is cancelled while a request is in flight
    (the broker holds its answer 5 s). The producer closes at once: the pending record
    fails with ProducerClosedError, no background task is left, and the cluster is as
    usable as before for a new producer."""
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        owned: dict[str, Any] = {}

        async def owner(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            async with make_producer(cluster) as producer:
                owned["producer"] = producer
                await producer.send_and_wait("orders", b"delivered")
                cluster.delay_responses(ApiKey.PRODUCE, 5.0, broker=0)
                owned["pending"] = await producer.send("orders", b"in flight")
                await wait_until_requests(cluster, ApiKey.PRODUCE, 2, broker=0)
                task_status.started()
                await anyio.sleep_forever()

        with bounded(5, "cancelling the producer's owner"):
            async with anyio.create_task_group() as tasks:
                await tasks.start(owner)
                started = time.monotonic()
                tasks.cancel_scope.cancel()
        took = time.monotonic() - started
        producer, pending = owned["producer"], owned["pending"]
        assert producer.state is State.CLOSED
        assert took < 1.0, f"closing under cancellation took {took:.2f} s"
        assert pending.done()
        assert isinstance(pending.exception(), ProducerClosedError)
        await assert_no_producer_tasks()
        with pytest.raises(ProducerClosedError):
            await producer.send("orders", b"late")
        cluster.delay_responses(ApiKey.PRODUCE, 0, broker=0)
        async with running(make_producer(cluster)) as again:
            assert (await again.send_and_wait("orders", b"again")).offset >= 1
        await assert_no_producer_tasks()


# --------------------------------------------------------------------------- close(timeout)


@pytest.mark.parametrize(("close_s", "at_least", "at_most"), [(0, 0.0, 0.5), (0.5, 0.45, 1.0)])
async def test_close_timeout_is_honoured_and_fails_what_is_pending(
    close_s: float, at_least: float, at_most: float
) -> None:
    """A request in flight (the broker holds its answer 3 s) and records queued behind it:
    close(timeout) returns within its bound (close(0): at once) and fails them all."""
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        producer = make_producer(cluster, request_timeout_ms=5000, delivery_timeout_ms=10_000)
        await producer.start()
        sends = Sends(producer)
        await producer.partitions_for("orders")
        cluster.delay_responses(ApiKey.PRODUCE, 3.0, broker=0)
        for i in range(5):
            await sends.send("orders", b"v%d" % i)
        await wait_until_requests(cluster, ApiKey.PRODUCE, 1, broker=0)
        started = time.monotonic()
        with bounded(4, f"close({close_s})"):
            await producer.close(close_s)
        took = time.monotonic() - started
        assert producer.state is State.CLOSED
        assert all(item.future.done() for item in sends.items)
        assert_failed_with(await sends.outcomes(1), ProducerClosedError)
        assert at_least <= took < at_most, f"close({close_s}) took {took:.2f} s"
        with pytest.raises(ProducerClosedError):
            await producer.send("orders", b"late")
        await assert_no_producer_tasks()


async def test_close_timeout_returns_as_soon_as_everything_is_acknowledged() -> None:
    async with FakeCluster() as cluster:
        cluster.create_topic("orders", 1, leaders=[0])
        producer = make_producer(cluster, linger_ms=50)
        await producer.start()
        sends = Sends(producer)
        await producer.partitions_for("orders")
        cluster.delay_responses(ApiKey.PRODUCE, 0.3, broker=0)
        for i in range(5):
            await sends.send("orders", b"v%d" % i)
        started = time.monotonic()
        with bounded(6, "close(timeout=5)"):
            await producer.close(timeout=5)
        assert time.monotonic() - started < 1.5
        assert_delivered(await sends.outcomes(1))
        assert_log(cluster, "orders", 0, sends.items)
        await assert_no_producer_tasks()
