"""Bad input, a broker that goes away, lifecycle misuse: typed errors within stated bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from asyncproducer.errors import (
    BufferExhaustedError,
    ConfigError,
    InvalidTopicError,
    KafkaTimeoutError,
    NoBrokersAvailableError,
    PartitionOutOfRangeError,
    ProducerClosedError,
    ProducerStateError,
    RecordTooLargeError,
    SerializationError,
)
from asyncproducer.producer import Producer
from tests.conftest import ASYNCIO_BACKENDS
from tests.integration.brokers import KillableBroker
from tests.integration.independent import create_topic
from tests.network.servers import closed_port

pytestmark = pytest.mark.anyio


async def test_bad_records_fail_alone_with_typed_errors(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 3)
    async with Producer(
        kafka_bootstrap_servers, max_request_size=10_000, value_serializer="json", linger_ms=50
    ) as producer:
        with anyio.fail_after(30):
            before = [await producer.send(topic_name, {"n": i}) for i in range(100)]
            with pytest.raises(RecordTooLargeError, match=r"exceeds max_request_size=10000"):
                await producer.send(topic_name, "x" * 20_000)
            with pytest.raises(SerializationError, match=r"value of type object .*'" + topic_name):
                await producer.send(topic_name, object())
            with pytest.raises(PartitionOutOfRangeError, match=r"partition 3 .*\[0\.\.\.2\]"):
                await producer.send(topic_name, {"n": -1}, partition=3)
            with pytest.raises(SerializationError, match=r"header 'h'"):
                await producer.send(topic_name, {"n": -1}, headers=[("h", "not bytes")])  # type: ignore[list-item]
            with pytest.raises(SerializationError, match=r"headers .* pairs, got int"):
                await producer.send(topic_name, {"n": -1}, headers=5)  # type: ignore[arg-type]
            # A topic that is not a str (it would break every later metadata request if
            # the producer asked for it), and names Kafka refuses: refused before asking.
            with pytest.raises(InvalidTopicError, match=r"a topic name is a str, got int"):
                await producer.send(123, {"n": -1})  # type: ignore[arg-type]
            with pytest.raises(InvalidTopicError, match=r"a topic name is a str, got list"):
                await producer.send([topic_name], {"n": -1})  # type: ignore[arg-type]
            for name in ["", "no spaces", "x" * 250, ".."]:
                with pytest.raises(InvalidTopicError, match=r"not a legal name"):
                    await producer.send(name, {"n": -1})
            after = [await producer.send(topic_name, {"n": i}) for i in range(100)]
            acknowledged = [await f for f in before + after]
    assert len(acknowledged) == 200
    assert all(md.offset >= 0 for md in acknowledged)


def test_bad_config_names_key_value_and_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"linger_ms=-1.*>= 0"):
        Producer("localhost:9092", linger_ms=-1)
    with pytest.raises(ConfigError, match=r"did you mean linger_ms"):
        Producer("localhost:9092", lingr_ms=5)
    with pytest.raises(ConfigError, match=r"acks"):
        Producer("localhost:9092", acks=1, enable_idempotence=True)
    with pytest.raises(ConfigError, match=r"did you mean linger\.ms"):
        Producer.from_config({"bootstrap.servers": "localhost:9092", "linger.msx": "5"})


async def test_lifecycle_misuse_raises_at_once(kafka_bootstrap_servers: str) -> None:
    producer = Producer(kafka_bootstrap_servers)
    with anyio.fail_after(1):
        with pytest.raises(ProducerStateError, match="not started"):
            await producer.send("t", b"v")
        await producer.start()
        with pytest.raises(ProducerStateError):
            await producer.start()
        await producer.close()
        await producer.close()  # twice is fine
        with pytest.raises(ProducerClosedError):
            await producer.send("t", b"v")
        with pytest.raises(ProducerClosedError):
            await producer.flush()


async def test_no_broker_send_raises_within_max_block_ms() -> None:
    async with Producer(f"127.0.0.1:{closed_port()}", max_block_ms=500) as producer:
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(NoBrokersAvailableError, match="'orders'"):
            await producer.send("orders", b"v")
        assert 0.45 <= anyio.current_time() - started < 2.0


async def test_broker_stopped_bounds_send_and_delivery(killable_broker: KillableBroker) -> None:
    """With the broker gone: once the buffer is full, send() raises within max_block_ms;
    every pending future fails within delivery_timeout_ms of its send; slack 1.5 s."""
    max_block_ms, delivery_timeout_ms, slack = 800, 2_500, 1.5
    broker = killable_broker
    await anyio.to_thread.run_sync(create_topic, broker.bootstrap_servers, "down", 1)
    async with Producer(
        broker.bootstrap_servers,
        buffer_memory=64 * 1024,
        batch_size=16 * 1024,
        linger_ms=0,
        max_block_ms=max_block_ms,
        request_timeout_ms=1_000,
        delivery_timeout_ms=delivery_timeout_ms,
        retry_backoff_ms=50,
    ) as producer:
        with anyio.fail_after(10):
            await producer.send_and_wait("down", b"ok")
        broker.kill()
        sent_at: dict[int, float] = {}
        outcomes: dict[int, tuple[float, BaseException | None]] = {}
        with anyio.fail_after(20):
            for i in range(10_000):
                started = anyio.current_time()
                try:
                    future = await producer.send("down", b"x" * 1000)
                except BufferExhaustedError:
                    blocked = anyio.current_time() - started
                    assert max_block_ms / 1000 * 0.9 <= blocked < max_block_ms / 1000 + slack
                    break
                sent_at[i] = anyio.current_time()
                future.add_done_callback(
                    lambda f, i=i: outcomes.__setitem__(i, (anyio.current_time(), f.exception()))
                )
            else:
                pytest.fail("the buffer never filled up")
            while len(outcomes) < len(sent_at):
                await anyio.sleep(0.05)
        for i, (finished, error) in outcomes.items():
            assert isinstance(error, KafkaTimeoutError), error
            assert finished - sent_at[i] < delivery_timeout_ms / 1000 + slack
        assert "delivery_timeout_ms" in str(outcomes[0][1])


async def test_close_timeout_fails_what_is_left(killable_broker: KillableBroker) -> None:
    broker = killable_broker
    await anyio.to_thread.run_sync(create_topic, broker.bootstrap_servers, "closing", 1)
    producer = Producer(broker.bootstrap_servers, linger_ms=0, delivery_timeout_ms=60_000)
    await producer.start()
    await producer.send_and_wait("closing", b"ok")
    broker.kill()
    futures = [await producer.send("closing", b"v") for _ in range(10)]
    started = anyio.current_time()
    with anyio.fail_after(5):
        await producer.close(timeout=0.5)
    assert anyio.current_time() - started < 2
    for future in futures:
        assert isinstance(future.exception(), ProducerClosedError)


@pytest.mark.parametrize("anyio_backend", ASYNCIO_BACKENDS)  # asyncio-only API surface
async def test_futures_work_with_asyncio_combinators(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 2)
    async with Producer(kafka_bootstrap_servers) as producer:
        futures = [await producer.send(topic_name, f"{i}".encode()) for i in range(50)]
        assert all(isinstance(f, asyncio.Future) for f in futures)
        gathered = await asyncio.wait_for(asyncio.gather(*futures), 30)
        assert len({(md.partition, md.offset) for md in gathered}) == 50
        more = [await producer.send(topic_name, b"w") for _ in range(10)]
        done, pending = await asyncio.wait(more, timeout=30)
        assert len(done) == 10
        assert not pending
        last = [await producer.send(topic_name, b"c") for _ in range(10)]
        offsets = [(await f).offset for f in asyncio.as_completed(last, timeout=30)]
        assert len(offsets) == 10


async def test_close_while_sends_wait_for_memory_releases_everything(
    killable_broker: KillableBroker,
) -> None:
    broker = killable_broker
    await anyio.to_thread.run_sync(create_topic, broker.bootstrap_servers, "squeeze", 1)
    producer = Producer(
        broker.bootstrap_servers, buffer_memory=32 * 1024, batch_size=16 * 1024, linger_ms=0
    )
    await producer.start()
    await producer.send_and_wait("squeeze", b"ok")
    broker.kill()
    outcomes: list[BaseException] = []
    futures: list[Any] = []

    async def sender() -> None:
        try:
            for _ in range(1_000):
                futures.append(await producer.send("squeeze", b"x" * 1_000))
        except (ProducerClosedError, BufferExhaustedError) as exc:
            outcomes.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(sender)
            await anyio.sleep(0.3)  # the buffer is full and the senders wait
            await producer.close(timeout=0.2)
    assert [type(e) for e in outcomes] == [ProducerClosedError] * 3
    assert futures  # the buffer filled before close
    assert all(isinstance(f.exception(), ProducerClosedError) for f in futures)
    assert producer.metrics()["buffer-available-bytes"] == 32 * 1024


async def test_cancelling_a_waiter_does_not_cancel_the_record(
    kafka_bootstrap_servers: str, topic_name: str, anyio_backend_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 1)
    delivered: list[int] = []
    async with Producer(kafka_bootstrap_servers, linger_ms=200) as producer:
        future = await producer.send(
            topic_name, b"v", on_delivery=lambda md, exc: delivered.append(md.offset)
        )
        with anyio.move_on_after(0.05):
            await future  # cancelled while the record lingers
        await producer.flush()
    assert delivered == [0]  # sent, and reported, all the same
    # asyncio's rule: cancelling a task that awaits a Future cancels that Future.
    assert future.cancelled() is (anyio_backend_name == "asyncio")
