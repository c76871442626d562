"""``metadata_max_idle_ms``: a topic not sent to for that long leaves the metadata
requests and the snapshot; one with records still out stays; a later send fetches it
again. The manager's clock is moved forward by the test (the setting's floor, Java's,
is 5 s)."""

from __future__ import annotations

import time

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing import FakeCluster

pytestmark = pytest.mark.anyio

IDLE_MS = 5_000


class Clock:
    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead_s


async def refreshed(producer: Producer) -> None:
    await producer._metadata.refresh()


async def test_an_idle_topic_is_forgotten_and_fetched_again_when_used() -> None:
    clock = Clock()
    async with FakeCluster(brokers=1) as cluster:
        for topic in ("idle", "busy", "held"):
            cluster.create_topic(topic, 1)
        async with Producer(
            cluster.bootstrap_servers, metadata_max_idle_ms=IDLE_MS, linger_ms=0
        ) as producer:
            producer._metadata._clock = clock
            for topic in ("idle", "busy", "held"):
                await producer.send_and_wait(topic, b"first")
            clock.ahead_s = IDLE_MS / 1000 - 1
            await producer.send_and_wait("busy", b"again")  # a new batch: used now
            cluster.delay_responses(ApiKey.PRODUCE, 0.5, count=1)
            held = await producer.send("held", b"out")  # not acknowledged yet
            clock.ahead_s = IDLE_MS / 1000 + 1
            await refreshed(producer)
            assert producer._metadata.topics_in_use == ("busy", "held")
            assert "idle" not in producer._metadata.snapshot.topics
            assert "idle" not in producer._metadata.partition_counts
            with anyio.fail_after(5):
                assert (await held).offset == 1
                # Used again: fetched again (the send waits for it), then delivered.
                assert (await producer.send_and_wait("idle", b"back")).offset == 1
            assert "idle" in producer._metadata.topics_in_use


async def test_a_topic_used_within_the_default_five_minutes_stays() -> None:
    clock = Clock()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        async with Producer(cluster.bootstrap_servers) as producer:  # 300,000 ms
            producer._metadata._clock = clock
            await producer.send_and_wait("t", b"v")
            clock.ahead_s = 299.0
            await refreshed(producer)
            assert producer._metadata.topics_in_use == ("t",)
