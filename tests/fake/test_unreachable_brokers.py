"""Brokers that cannot be reached: one advertising an impossible address, or none at all.

A broker whose advertised address no connection can be opened to (port 70000, host
``"a..b"``) is a broker that is down: its records fail typed, naming it and why; the
other brokers keep working. With no broker reachable at all, ``send()`` and
``partitions_for()`` say so (``NoBrokersAvailableError``, naming each bootstrap server
and its last error), within ``max_block_ms``.
"""

from __future__ import annotations

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NoBrokersAvailableError,
)
from asyncproducer.testing.fake import FakeCluster
from tests.network.servers import closed_port

pytestmark = pytest.mark.anyio

FAST = {
    "retry_backoff_ms": 20,
    "retry_backoff_max_ms": 100,
    "reconnect_backoff_ms": 20,
    "reconnect_backoff_max_ms": 100,
    "linger_ms": 0,
    "request_timeout_ms": 500,
    "delivery_timeout_ms": 1_500,
}


@pytest.mark.parametrize(
    ("host", "port", "reason"),
    [
        (None, 70000, "70000"),
        (None, -1, "-1"),
        ("a..b", None, "a..b"),
        ("x" * 300, None, "300 characters"),
    ],
)
async def test_a_broker_advertising_an_impossible_address_is_unreachable(
    host: str | None, port: int | None, reason: str
) -> None:
    with anyio.fail_after(15):
        async with FakeCluster(brokers=2) as cluster:
            cluster.create_topic("t", 2, leaders=[0, 1])
            cluster.advertise(1, host, port)
            async with Producer(cluster.bootstrap_servers, **FAST) as producer:
                doomed = await producer.send("t", b"lost", partition=1)
                assert (await producer.send_and_wait("t", b"a", partition=0)).offset == 0
                with pytest.raises(KafkaError) as info:
                    await doomed
                error = info.value
                assert isinstance(error, KafkaTimeoutError | KafkaConnectionError), error
                assert "(node 1)" in str(error)
                assert reason in str(error)
                # The producer is alive: the healthy broker keeps taking records.
                assert (await producer.send_and_wait("t", b"b", partition=0)).offset == 1
            assert [r.value for r in cluster.records("t", 0)] == [b"a", b"b"]
            assert cluster.records("t", 1) == []


async def test_no_broker_reachable_says_so_naming_each_bootstrap_server() -> None:
    first, second = closed_port(), closed_port()
    bootstrap = f"127.0.0.1:{first},127.0.0.1:{second}"
    async with Producer(bootstrap, max_block_ms=500, **FAST) as producer:
        for call in (lambda: producer.send("orders", b"v"), lambda: producer.partitions_for("o")):
            started = anyio.current_time()
            with anyio.fail_after(5), pytest.raises(NoBrokersAvailableError) as info:
                await call()
            assert 0.45 <= anyio.current_time() - started < 2.0
            message = str(info.value)
            assert message.startswith("no broker could be reached"), message
            assert f"127.0.0.1:{first}" in message
            assert f"127.0.0.1:{second}" in message
            assert "max_block_ms=500" in message
            assert message.count("refused") >= 2 or message.count("failed") >= 2, message


async def test_a_bootstrap_server_that_never_answers_is_named_too() -> None:
    """The bound runs out while the only broker is still being asked: the message says
    which one and that it has not answered, rather than blaming the topic."""
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.black_hole(0)
            async with Producer(
                cluster.bootstrap_servers, max_block_ms=400, request_timeout_ms=30_000
            ) as producer:
                with pytest.raises(NoBrokersAvailableError) as info:
                    await producer.send("t", b"v")
            assert cluster.bootstrap_servers in str(info.value)
            assert "no answer yet" in str(info.value)
