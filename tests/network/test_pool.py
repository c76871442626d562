"""ConnectionPool: one connection per broker, shared connect attempts, reconnect backoff."""

from __future__ import annotations

import anyio
import pytest

from asyncproducer._cluster import BrokerAddress
from asyncproducer._connection import ConnectionSettings
from asyncproducer._pool import ConnectionPool
from asyncproducer.errors import KafkaConnectionError
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
