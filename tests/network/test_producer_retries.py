"""The producer's retry and failure paths, driven by a broker with scripted answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.errors import (
    InvalidRecordError,
    KafkaTimeoutError,
    NotEnoughReplicasError,
    ProducerStateError,
)
from asyncproducer.producer import State
from asyncproducer.protocol.versions import ApiKey
from tests.network.scripted_broker import ScriptedBroker
from tests.network.servers import serve

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def scripted(
    script: list[int], log_append_time_ms: int | None = None
) -> AsyncIterator[ScriptedBroker]:
    broker = ScriptedBroker("t", 1, script, log_append_time_ms)
    async with serve(broker.handle) as (_, port, _):
        broker.port = port
        yield broker


async def test_leader_error_refreshes_metadata_and_retries_to_success() -> None:
    # NOT_LEADER_OR_FOLLOWER twice, then success
    async with (
        scripted([6, 6]) as broker,
        Producer(f"127.0.0.1:{broker.port}", retry_backoff_ms=10) as producer,
    ):
        with anyio.fail_after(10):
            metadata = await producer.send_and_wait("t", b"v")
        stats = producer.metrics()
    assert metadata.offset == 0
    assert broker.requests[ApiKey.PRODUCE] == 3
    assert stats["record-retry-total"] == 2
    # the first lookup, then a refresh after each leader error
    assert broker.requests[ApiKey.METADATA] >= 3


async def test_retries_back_off_exponentially() -> None:
    # NOT_ENOUGH_REPLICAS (retriable) three times
    async with (
        scripted([19, 19, 19]) as broker,
        Producer(
            f"127.0.0.1:{broker.port}", retry_backoff_ms=100, retry_backoff_max_ms=1000
        ) as producer,
    ):
        started = anyio.current_time()
        with anyio.fail_after(10):
            await producer.send_and_wait("t", b"v")
        elapsed = anyio.current_time() - started
    # 100 + 200 + 400 ms, each -20 %: at least 560 ms
    assert elapsed >= 0.56


async def test_retries_stop_at_the_retries_setting_with_the_typed_error() -> None:
    async with (
        scripted([19, 19, 19, 19]) as broker,
        Producer(
            f"127.0.0.1:{broker.port}", retries=2, retry_backoff_ms=10, enable_idempotence=False
        ) as producer,
    ):
        with anyio.fail_after(10), pytest.raises(NotEnoughReplicasError, match=r"producing to t-0"):
            await producer.send_and_wait("t", b"v")
    assert broker.requests[ApiKey.PRODUCE] == 3


async def test_non_retriable_error_fails_at_once_and_others_go_on() -> None:
    # INVALID_RECORD, then success
    async with (
        scripted([87]) as broker,
        Producer(f"127.0.0.1:{broker.port}", linger_ms=0) as producer,
    ):
        with anyio.fail_after(10):
            first = await producer.send("t", b"bad")
            with pytest.raises(InvalidRecordError, match="scripted error 87"):
                await first
            second = await producer.send_and_wait("t", b"good")
    assert second.offset >= 0
    assert broker.requests[ApiKey.PRODUCE] == 2


async def test_a_dead_sender_fails_pending_records_and_later_sends() -> None:
    async with scripted([]) as broker:
        producer = Producer(f"127.0.0.1:{broker.port}", linger_ms=60_000)
        await producer.start()
        with anyio.fail_after(10):
            pending = await producer.send("t", b"v")  # lingers: not sent yet

            def broken(requests: object) -> float:
                raise RuntimeError("boom")

            producer._sender._run_once = broken  # type: ignore[method-assign]
            producer._sender.wakeup()
            with pytest.raises(ProducerStateError, match="boom"):
                await pending
            with pytest.raises(ProducerStateError, match="boom"):
                await producer.send("t", b"later")
            await producer.close()


async def test_log_append_time_replaces_the_create_time() -> None:
    async with (
        scripted([], log_append_time_ms=1_800_000_000_123) as broker,
        Producer(f"127.0.0.1:{broker.port}") as producer,
    ):
        with anyio.fail_after(10):
            futures = [await producer.send("t", b"v", timestamp_ms=1_000) for _ in range(3)]
            stamped = [await f for f in futures]
    assert [md.timestamp for md in stamped] == [1_800_000_000_123] * 3


class Escape(BaseException):
    """Not an Exception: passes every ``except Exception`` guard around user code."""


async def test_user_code_escaping_every_guard_strands_no_future() -> None:
    # (KeyboardInterrupt itself would stop asyncio's event loop, by asyncio's design.)
    class Interrupting:
        def on_acknowledgement(self, metadata: object, exception: object) -> None:
            raise Escape

    async with scripted([]) as broker:
        producer = Producer(f"127.0.0.1:{broker.port}", interceptors=[Interrupting()])
        await producer.start()
        with anyio.fail_after(5):
            futures = [await producer.send("t", b"v") for _ in range(3)]
            await producer.flush()
            assert [(await f).offset for f in futures] == [0, 1, 2]
            while producer.state is not State.FAILED:
                await anyio.sleep(0.01)
            with pytest.raises(ProducerStateError, match="Escape"):
                await producer.send("t", b"later")
            await producer.close()


async def test_a_leaderless_partition_does_not_flood_the_broker_with_metadata() -> None:
    broker = ScriptedBroker("t", 1, [], leaderless=True)
    async with serve(broker.handle) as (_, port, _):
        broker.port = port
        async with Producer(
            f"127.0.0.1:{port}", retry_backoff_ms=100, delivery_timeout_ms=1_000,
            request_timeout_ms=500, linger_ms=0,
        ) as producer:  # fmt: skip
            with anyio.fail_after(10):
                future = await producer.send("t", b"v", partition=0)
                with pytest.raises(KafkaTimeoutError):
                    await future
    # ~1 s of waiting for a leader at one refresh per 100 ms (+-20 % jitter), not thousands
    assert broker.requests[ApiKey.METADATA] <= 15


async def test_a_custom_partitioner_is_configured_and_closed_once() -> None:
    class Recording:
        def __init__(self) -> None:
            self.configured: list[dict[str, object]] = []
            self.closed = 0

        def configure(self, configs: dict[str, object]) -> None:
            self.configured.append(configs)

        def partition(self, topic, key, key_bytes, value, value_bytes, cluster):  # type: ignore[no-untyped-def]
            return 0

        def close(self) -> None:
            self.closed += 1

    partitioner = Recording()
    async with (
        scripted([]) as broker,
        Producer(f"127.0.0.1:{broker.port}", partitioner=partitioner, linger_ms=7) as producer,
    ):
        with anyio.fail_after(10):
            await producer.send_and_wait("t", b"v")
    assert len(partitioner.configured) == 1
    assert partitioner.configured[0]["linger_ms"] == 7
    assert partitioner.closed == 1
