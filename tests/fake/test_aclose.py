"""``aclose()``: ``close()`` under the async-resource name (``contextlib.aclosing``)."""

from __future__ import annotations

import contextlib

import pytest

from asyncproducer import Producer
from asyncproducer.errors import ProducerClosedError
from asyncproducer.producer import State
from asyncproducer.testing import FakeCluster, MockProducer

pytestmark = pytest.mark.anyio


async def test_aclosing_a_producer_delivers_then_closes() -> None:
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        producer = Producer(cluster.bootstrap_servers, linger_ms=60_000)
        await producer.start()
        async with contextlib.aclosing(producer):
            future = await producer.send("t", b"flushed by aclose")
        assert producer.state is State.CLOSED
        assert (await future).offset == 0  # aclose sent what was buffered
        assert [r.value for r in cluster.records("t", 0)] == [b"flushed by aclose"]
        with pytest.raises(ProducerClosedError):
            await producer.send("t", b"late")
        await producer.aclose()  # twice is fine, as close()


async def test_a_mock_producer_acloses_too() -> None:
    producer = MockProducer()
    await producer.start()
    async with contextlib.aclosing(producer):
        await producer.send("t", b"v")
    with pytest.raises(ProducerClosedError):
        await producer.send("t", b"late")
