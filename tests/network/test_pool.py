"""ConnectionPool: one connection per broker, shared connect attempts, reconnect backoff."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import ConnectionSettings
from asyncproducer._pool import ConnectionPool
from asyncproducer.errors import ConnectionSetupTimeoutError, KafkaConnectionError
from asyncproducer.protocol.messages import api_versions_request
from tests.network.servers import ServerConnection, closed_port, serve

pytestmark = pytest.mark.anyio

SETTINGS = ConnectionSettings(request_timeout_ms=1000, socket_connection_setup_timeout_ms=1000)


async def test_concurrent_callers_share_one_connection() -> None:
    async def handler(conn: ServerConnection) -> None:
        await anyio.sleep(0.05)  # slow handshake: every caller arrives while it connects
        await conn.answer_api_versions()
        await anyio.sleep_forever()

    async with serve(handler) as (host, port, accepted), ConnectionPool(SETTINGS) as pool:
        results = []

        async def get() -> None:
            results.append(await pool.get(BrokerAddress(host, port)))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(get)
        assert len(results) == 10
        assert len({id(c) for c in results}) == 1
        assert len(accepted) == 1


async def test_failed_connects_back_off_exponentially() -> None:
    address = BrokerAddress("127.0.0.1", closed_port())
    async with ConnectionPool(
        SETTINGS, reconnect_backoff_ms=200, reconnect_backoff_max_ms=10_000
    ) as pool:
        times = []
        with anyio.fail_after(5):
            for _ in range(3):
                with pytest.raises(KafkaConnectionError, match="cannot connect"):
                    await pool.get(address)
                times.append(anyio.current_time())
        first_gap, second_gap = times[1] - times[0], times[2] - times[1]
        # 200 ms then 400 ms, each with +-20 % jitter.
        assert 0.16 <= first_gap < 0.6
        assert 0.32 <= second_gap < 1.0


async def test_dropped_connection_is_reopened_after_backoff() -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        if len(accepted) == 1:
            return  # the first connection drops right after the handshake
        await anyio.sleep_forever()

    async with (
        serve(handler) as (host, port, accepted),
        ConnectionPool(SETTINGS, reconnect_backoff_ms=100, reconnect_backoff_max_ms=1000) as pool,
    ):
        address = BrokerAddress(host, port)
        with anyio.fail_after(5):
            first = await pool.get(address)
            while not first.closed:
                await anyio.sleep(0.01)
            assert pool.connection_if_open(address) is None
            dropped_at = anyio.current_time()
            second = await pool.get(address)
        assert second is not first
        assert not second.closed
        assert anyio.current_time() - dropped_at >= 0.07
        assert len(accepted) == 2


async def test_pool_refuses_use_after_close() -> None:
    async with ConnectionPool(SETTINGS) as pool:
        pass
    with pytest.raises(KafkaConnectionError, match="closed"):
        await pool.get(BrokerAddress("127.0.0.1", 1))


async def test_the_setup_timeout_grows_per_failed_attempt_up_to_its_maximum() -> None:
    """Java's socket.connection.setup.timeout.max.ms: 100 ms, then ~200 (20 % jitter),
    then capped at 300, for a broker whose connect never completes."""

    async def never_connects(host: str, port: int) -> anyio.abc.ByteStream:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    settings = ConnectionSettings(
        connector=never_connects,
        socket_connection_setup_timeout_ms=100,
        socket_connection_setup_timeout_max_ms=300,
    )
    timeouts = []
    async with ConnectionPool(settings, reconnect_backoff_ms=1, reconnect_backoff_max_ms=1) as pool:
        for _ in range(5):
            with anyio.fail_after(2), pytest.raises(ConnectionSetupTimeoutError) as raised:
                await pool.get(BrokerAddress("127.0.0.1", 9))
            timeouts.append(int(str(raised.value).rsplit("=", 1)[1]))
    assert timeouts[0] == 100
    assert 160 <= timeouts[1] <= 240
    assert 240 <= timeouts[2] <= 300
    assert all(t <= 300 for t in timeouts[3:])


async def test_an_idle_connection_is_closed_and_reopened_without_backoff() -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep_forever()

    async with (
        serve(handler) as (host, port, accepted),
        ConnectionPool(
            SETTINGS,
            reconnect_backoff_ms=5_000,  # a reopen after a failure would wait this long
            reconnect_backoff_max_ms=5_000,
            connections_max_idle_ms=200,
        ) as pool,
    ):
        address = BrokerAddress(host, port)
        first = await pool.get(address)
        with anyio.fail_after(2):
            while not first.closed:  # idle: closed by the pool within a few checks
                await anyio.sleep(0.02)
        assert pool.connection_if_open(address) is None
        with anyio.fail_after(1):  # at once: no reconnect backoff for an idle close
            second = await pool.get(address)
        assert second is not first
        assert len(accepted) == 2


async def test_a_connection_in_use_is_not_idle() -> None:
    async def handler(conn: ServerConnection) -> None:
        await conn.answer_api_versions()
        await anyio.sleep_forever()  # the next request is never answered

    async with (
        serve(handler) as (host, port, _),
        ConnectionPool(
            ConnectionSettings(request_timeout_ms=5_000), connections_max_idle_ms=100
        ) as pool,
    ):
        connection = await pool.get(BrokerAddress(host, port))
        connection.submit(api_versions_request(3, "x"), lambda *_: None)
        await anyio.sleep(0.5)  # five idle periods, with a request out all along
        assert not connection.closed
