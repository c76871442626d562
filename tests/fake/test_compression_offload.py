"""Large batches are compressed in worker threads, off the event loop
(``asyncproducer/_compression_worker.py``): which batches go there, that their records
arrive whole and in order, and that a batch which ends while its records are in a thread
(delivery timeout, close) is failed as any other, on every loop."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

import asyncproducer._compression_worker as worker_module
from asyncproducer import Producer
from asyncproducer._compression_worker import OFFLOAD_BYTES
from asyncproducer.errors import KafkaTimeoutError, ProducerClosedError
from asyncproducer.protocol.compression import CompressionType, compress
from asyncproducer.testing import FakeCluster

pytestmark = pytest.mark.anyio

VALUE = b"a compressible record value, " * 35  # ~1 KiB


@pytest.fixture
def compressions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Each compression the worker ran: (uncompressed bytes, the thread it ran in)."""
    seen: list[tuple[int, str]] = []

    def spy(codec: CompressionType, data: bytes, level: int | None) -> bytes:
        seen.append((len(data), threading.current_thread().name))
        return compress(codec, data, level)

    monkeypatch.setattr(worker_module, "compress", spy)
    return seen


@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4"])
async def test_large_batches_compress_in_a_thread_and_arrive_whole_in_order(
    codec: str, compressions: list[tuple[int, str]]
) -> None:
    threshold = OFFLOAD_BYTES[CompressionType.from_name(codec)]
    records = 3 * threshold // len(VALUE) + 10  # three large batches and a bit
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        async with Producer(
            cluster.bootstrap_servers,
            compression_type=codec,
            batch_size=threshold + 2048,
            linger_ms=1_000,  # full batches go at once; the last one at close()
        ) as producer:
            futures = [await producer.send("t", VALUE + b"%d" % i) for i in range(records)]
        offsets = [(await f).offset for f in futures]
        assert offsets == list(range(records))
        stored = cluster.records("t", 0)
        assert [r.value for r in stored] == [VALUE + b"%d" % i for i in range(records)]
    # The full batches went to the worker's threads, never the loop's own.
    assert len(compressions) >= 3
    assert all(size >= threshold for size, _ in compressions)
    assert threading.main_thread().name not in {thread for _, thread in compressions}


async def test_small_batches_stay_on_the_loop(compressions: list[tuple[int, str]]) -> None:
    async with (
        FakeCluster(brokers=1) as cluster,
        Producer(cluster.bootstrap_servers, compression_type="zstd", linger_ms=0) as producer,
    ):
        for i in range(50):
            await producer.send_and_wait("t", VALUE + b"%d" % i, partition=0)
    assert compressions == []  # default batch_size: far below every threshold


async def test_a_batch_that_lingers_past_the_threshold_goes_to_the_thread(
    compressions: list[tuple[int, str]],
) -> None:
    """Not full, but ready (its linger is over) and large: sealed by the sender's check
    and handed over, not compressed inline when drained."""
    threshold = OFFLOAD_BYTES[CompressionType.ZSTD]
    async with FakeCluster(brokers=1) as cluster, Producer(
        cluster.bootstrap_servers, compression_type="zstd", batch_size=4 * threshold,
        linger_ms=20,
    ) as producer:  # fmt: skip
        futures = [await producer.send("t", VALUE, partition=0) for _ in range(80)]
        assert [(await f).offset for f in futures] == list(range(80))
    assert [size >= threshold for size, _ in compressions] == [True]


@pytest.fixture
def slow_compression(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Compression in the worker waits for the returned event (at most 5 s)."""
    release = threading.Event()

    def slow(codec: CompressionType, data: bytes, level: int | None) -> bytes:
        release.wait(5)
        return compress(codec, data, level)

    monkeypatch.setattr(worker_module, "compress", slow)
    return release


async def test_a_batch_expiring_while_compressed_fails_in_time(
    slow_compression: threading.Event,
) -> None:
    threshold = OFFLOAD_BYTES[CompressionType.LZ4]
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        async with Producer(
            cluster.bootstrap_servers, compression_type="lz4", batch_size=threshold + 2048,
            linger_ms=0, request_timeout_ms=200, delivery_timeout_ms=300,
        ) as producer:  # fmt: skip
            started = time.monotonic()
            futures = [await producer.send("t", VALUE) for _ in range(threshold // len(VALUE) + 5)]
            with anyio.fail_after(3), pytest.raises(KafkaTimeoutError):
                await futures[0]
            assert time.monotonic() - started < 2  # its delivery timeout, not the thread's
            slow_compression.set()  # the records come back to a failed batch: ignored
            await producer.send_and_wait("t", b"later")
            outcomes: list[int | KafkaTimeoutError] = []
            for future in futures:
                try:
                    outcomes.append((await future).offset)
                except KafkaTimeoutError as error:
                    outcomes.append(error)
        # The batch in the thread expired whole and was never written. The small one
        # behind it went when its turn came: acknowledged, or (its own delivery timeout
        # running out in flight, as on a slow machine) failed as possibly written.
        first_batch = threshold // len(VALUE)
        stored = [r.value for r in cluster.records("t", 0)]
        assert stored[-1] == b"later"
        assert stored[:-1] == [VALUE] * (len(stored) - 1)
        assert len(stored) - 1 <= len(futures) - first_batch
        assert all(isinstance(o, KafkaTimeoutError) for o in outcomes[:first_batch])
        written = outcomes[len(futures) - (len(stored) - 1) :]
        assert all(
            o == index or (isinstance(o, KafkaTimeoutError) and o.possibly_written)
            for index, o in enumerate(written)
        ), written


async def test_close_does_not_wait_for_a_batch_in_a_thread(
    slow_compression: threading.Event,
) -> None:
    threshold = OFFLOAD_BYTES[CompressionType.ZSTD]
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 1)
        producer = Producer(
            cluster.bootstrap_servers, compression_type="zstd", batch_size=threshold + 2048,
            linger_ms=0,
        )  # fmt: skip
        await producer.start()
        futures = [await producer.send("t", VALUE) for _ in range(threshold // len(VALUE) + 5)]
        with anyio.fail_after(3):
            await producer.close(timeout=0.2)
        slow_compression.set()
        for future in futures:
            with pytest.raises((ProducerClosedError, KafkaTimeoutError)):
                await future
