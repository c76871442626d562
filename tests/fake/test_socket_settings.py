"""Socket-level settings the producer acts on: ``send_buffer_bytes`` and
``receive_buffer_bytes`` (SO_SNDBUF / SO_RCVBUF), and ``connections_max_idle_ms``."""

from __future__ import annotations

import socket
import sys
from typing import Any

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.testing import FakeCluster

pytestmark = pytest.mark.anyio


def client_sockets(producer: Producer) -> list[Any]:
    return [c._transport.raw_socket() for c in producer._pool.open_connections]  # type: ignore[union-attr]


@pytest.mark.skipif(sys.platform != "linux", reason="Linux reports twice the size set")
async def test_socket_buffers_are_the_sizes_asked_for() -> None:
    async with (
        FakeCluster(brokers=1) as cluster,
        Producer(
            cluster.bootstrap_servers, send_buffer_bytes=65_536, receive_buffer_bytes=16_384
        ) as producer,
    ):
        await producer.send_and_wait("t", b"v")
        [sock] = client_sockets(producer)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 65_536
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 16_384


@pytest.mark.skipif(sys.platform != "linux", reason="Linux reports twice the size set")
async def test_javas_defaults_act_and_minus_one_leaves_the_os_its_own() -> None:
    sizes = {}
    async with FakeCluster(brokers=1) as cluster:
        for label, settings in (
            ("java", {}),  # send.buffer.bytes 131072, receive.buffer.bytes 32768
            ("os", {"send_buffer_bytes": -1, "receive_buffer_bytes": -1}),
        ):
            async with Producer(cluster.bootstrap_servers, **settings) as producer:
                await producer.send_and_wait("t", b"v")
                [sock] = client_sockets(producer)
                sizes[label] = (
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                )
    assert sizes["java"] == (2 * 131_072, 2 * 32_768)
    assert sizes["os"] != sizes["java"]  # not set: the kernel sizes (and tunes) them


async def test_an_idle_connection_is_closed_and_the_next_send_reconnects() -> None:
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        async with Producer(cluster.bootstrap_servers, connections_max_idle_ms=200) as producer:
            await producer.send_and_wait("t", b"first")
            with anyio.fail_after(3):
                while producer.metrics()["connection-count"]:
                    await anyio.sleep(0.02)
            assert (await producer.send_and_wait("t", b"second")).offset == 1
        assert [r.value for r in cluster.records("t", 0)] == [b"first", b"second"]


async def test_connections_stay_open_by_default() -> None:
    async with (
        FakeCluster(brokers=1) as cluster,
        Producer(cluster.bootstrap_servers) as producer,
    ):
        await producer.send_and_wait("t", b"v")
        await anyio.sleep(0.3)
        assert producer.metrics()["connection-count"] == 1  # 540,000 ms by default
