"""MockProducer: the Producer surface without a broker (asyncio and trio)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asyncproducer import RecordMetadata
from asyncproducer._types import ProducerRecord
from asyncproducer.errors import (
    ConfigError,
    InvalidProducerRecordError,
    InvalidRecordTimestampError,
    InvalidTopicError,
    KafkaTimeoutError,
    NotLeaderOrFollowerError,
    PartitionerError,
    PartitionOutOfRangeError,
    ProducerClosedError,
    ProducerStateError,
    RecordTooLargeError,
    SerializationError,
    UnknownTopicOrPartitionError,
)
from asyncproducer.interceptors import ProducerInterceptor
from asyncproducer.partitioners import RoundRobinPartitioner, partition_for_key
from asyncproducer.producer import State
from asyncproducer.testing.mock import MockProducer, SentRecord

pytestmark = pytest.mark.anyio


async def test_auto_complete_counts_offsets_per_partition() -> None:
    async with MockProducer() as producer:
        first = await producer.send_and_wait("orders", b"a", partition=1, timestamp_ms=7)
        second = await producer.send_and_wait("orders", b"b", partition=1)
        other = await producer.send_and_wait("orders", b"c", partition=2)
        elsewhere = await producer.send_and_wait("audit", b"d", partition=1)
    assert first == RecordMetadata("orders", 1, 0, 7, -1, 1)
    assert (second.offset, other.offset, elsewhere.offset) == (1, 0, 0)


async def test_history_records_serialized_bytes() -> None:
    async with MockProducer(key_serializer="str", value_serializer="json") as producer:
        future = await producer.send(
            "orders", {"id": 1}, key="k", headers=[("trace", b"x")], timestamp_ms=5
        )
        assert future.done()
        metadata = await future
        assert (metadata.serialized_key_size, metadata.serialized_value_size) == (1, 8)
    [record] = producer.history()
    assert record == SentRecord(
        "orders",
        partition_for_key(b"k", 3),
        "k",
        {"id": 1},
        (("trace", b"x"),),
        5,
        b"k",
        b'{"id":1}',
    )


async def test_serializer_errors_raise_from_send_and_record_nothing() -> None:
    async with MockProducer(value_serializer="json") as producer:
        with pytest.raises(SerializationError, match="'orders'"):
            await producer.send("orders", {"when": object()})
        with pytest.raises(SerializationError, match="header 'h'"):
            await producer.send("orders", 1, headers=[("h", "not bytes")])  # type: ignore[list-item]
        assert producer.history() == []


async def test_the_real_producers_checks_of_topic_headers_and_timestamp() -> None:
    async with MockProducer() as producer:
        with pytest.raises(InvalidTopicError, match="a topic name is a str, got int"):
            await producer.send(7, b"v")  # type: ignore[arg-type]
        with pytest.raises(InvalidTopicError, match="'no spaces' is not a legal name"):
            await producer.send("no spaces", b"v")
        with pytest.raises(SerializationError, match="pairs, got int"):
            await producer.send("orders", b"v", headers=5)  # type: ignore[arg-type]
        with pytest.raises(InvalidRecordTimestampError, match="got -1"):
            await producer.send("orders", b"v", timestamp_ms=-1)
        assert producer.history() == []


async def test_unusual_arguments_fail_as_in_the_real_producer() -> None:
    """The same typed errors as Producer.send() for arguments whose own methods raise
    (issue 16): nothing the caller's objects raise comes out raw."""

    class Loud(str):
        def __repr__(self) -> str:
            raise RuntimeError("repr")

    class NoTruth(list[Any]):
        def __bool__(self) -> bool:
            raise RuntimeError("bool")

    class Refuses:
        def partition(self, *args: object) -> int:
            raise RuntimeError("no partition for you")

    async with MockProducer() as producer:
        metadata = await producer.send_and_wait(Loud("orders"), b"v")  # its text counts
        assert metadata.topic == "orders"
        assert type(metadata.topic) is str
        with pytest.raises(InvalidTopicError, match="not a legal name"):
            await producer.send(Loud("no spaces"), b"v")
        stored = await producer.send_and_wait("orders", b"v", headers=NoTruth())
        assert stored.topic == "orders"
    async with MockProducer(partitioner=Refuses()) as producer:
        with pytest.raises(PartitionerError, match="no partition for you") as caught:
            await producer.send("orders", b"v")
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert producer.history() == []


async def test_partition_choice() -> None:
    async with MockProducer(partitions={"orders": 4}) as producer:
        keyless = [(await producer.send_and_wait("orders", b"v")).partition for _ in range(6)]
        keyed = await producer.send_and_wait("orders", b"v", key=b"customer-42")
        assert keyless == [0, 1, 2, 3, 0, 1]
        assert keyed.partition == partition_for_key(b"customer-42", 4)
        assert [p.partition for p in await producer.partitions_for("orders")] == [0, 1, 2, 3]
        with pytest.raises(PartitionOutOfRangeError, match=r"\[0...3\]"):
            await producer.send("orders", b"v", partition=4)
        with pytest.raises(UnknownTopicOrPartitionError, match="'nope'"):
            await producer.send("nope", b"v")


async def test_ignore_keys_and_custom_partitioner() -> None:
    async with MockProducer(partitioner_ignore_keys=True) as producer:
        parts = [(await producer.send_and_wait("t", b"v", key=b"same")).partition for _ in range(3)]
        assert parts == [0, 1, 2]
    async with MockProducer(partitioner=RoundRobinPartitioner, partitions=2) as producer:
        parts = [(await producer.send_and_wait("t", b"v", key=b"k")).partition for _ in range(3)]
        assert parts == [0, 1, 0]


async def test_a_partitioner_named_as_in_java_and_the_same_refusals_as_the_producer() -> None:
    named = "org.apache.kafka.clients.producer.RoundRobinPartitioner"
    async with MockProducer(partitioner=named, partitions=2) as producer:
        parts = [(await producer.send_and_wait("t", b"v")).partition for _ in range(3)]
        assert parts == [0, 1, 0]
    # As the real producer: the availability timeout belongs to the default partitioner.
    with pytest.raises(ConfigError, match="partitioner_availability_timeout_ms=100"):
        MockProducer(partitioner=RoundRobinPartitioner, partitioner_availability_timeout_ms=100)


async def test_record_too_large() -> None:
    async with MockProducer(max_request_size=1000) as producer:
        with pytest.raises(RecordTooLargeError, match="max_request_size=1000"):
            await producer.send("t", b"x" * 2000)


async def test_manual_completion_fifo() -> None:
    delivered: list[tuple[RecordMetadata | None, BaseException | None]] = []
    async with MockProducer(auto_complete=False) as producer:
        futures = [
            await producer.send(
                "t", b"v", partition=0, on_delivery=lambda m, e: delivered.append((m, e))
            )
            for _ in range(4)
        ]
        assert not any(f.done() for f in futures)
        assert producer.pending_count == 4
        assert not producer.flushed
        assert producer.complete_next()
        assert producer.error_next(NotLeaderOrFollowerError("moved"))
        assert producer.complete_next()
        assert producer.fail_all(KafkaTimeoutError("expired")) == 1
        assert not producer.complete_next()
        assert not producer.error_next(ValueError())
        assert producer.flushed
        assert (await futures[0]).offset == 0
        with pytest.raises(NotLeaderOrFollowerError):
            await futures[1]
        # A failed record takes no offset, as on a broker.
        assert (await futures[2]).offset == 1
        assert isinstance(futures[3].exception(), KafkaTimeoutError)
    assert [m.offset if m else type(e).__name__ for m, e in delivered] == [
        0,
        "NotLeaderOrFollowerError",
        1,
        "KafkaTimeoutError",
    ]
    assert producer.metrics()["record-send-total"] == 4
    assert producer.metrics()["record-error-total"] == 2


async def test_send_and_wait_waits_for_the_test() -> None:
    async with MockProducer(auto_complete=False) as producer:
        results: list[RecordMetadata] = []

        async def app() -> None:
            results.append(await producer.send_and_wait("t", b"v"))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app)
            with anyio.fail_after(2):
                while producer.pending_count == 0:
                    await anyio.lowlevel.checkpoint()
            assert results == []
            assert producer.complete_all() == 1
    assert results[0].offset == 0


async def test_send_batch_gives_one_result_per_record_in_order() -> None:
    async with MockProducer(auto_complete=False, partitions=2) as producer:
        results: list[Any] = []

        async def app() -> None:
            records: list[Any] = [
                ("t", b"a", None, 1),
                ProducerRecord("t", b"b", partition=1, headers=[("h", b"1")]),
                ("t", b"c", None, 5),  # no such partition: fails alone
                ("t",),  # not a record
                ("t", b"d", None, 0, 7),
            ]
            results.extend(await producer.send_batch(records))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app)
            with anyio.fail_after(2):
                while producer.pending_count < 3:
                    await anyio.lowlevel.checkpoint()
            assert results == []  # waits for the test to complete them
            assert producer.complete_next()
            assert producer.error_next(NotLeaderOrFollowerError("moved"))
            assert producer.complete_next()
    first, moved, no_partition, not_a_record, last = results
    assert first == RecordMetadata("t", 1, 0, first.timestamp, -1, 1)
    assert isinstance(moved, NotLeaderOrFollowerError)
    assert isinstance(no_partition, PartitionOutOfRangeError)
    assert isinstance(not_a_record, InvalidProducerRecordError)
    assert last == RecordMetadata("t", 0, 0, 7, -1, 1)
    assert [(r.value, r.partition, r.headers) for r in producer.history()] == [
        (b"a", 1, ()),
        (b"b", 1, (("h", b"1"),)),
        (b"d", 0, ()),
    ]


async def test_flush_completes_pending() -> None:
    async with MockProducer(auto_complete=False) as producer:
        future = await producer.send("t", b"v")
        await producer.flush()
        assert future.done()
        assert producer.flushed
        assert producer.flush_count == 1


async def test_lifecycle_errors() -> None:
    producer = MockProducer()
    assert producer.state.value == "new"  # (not `is State.NEW`: mypy would narrow state)
    with pytest.raises(ProducerStateError, match="not started"):
        await producer.send("t", b"v")
    await producer.start()
    with pytest.raises(ProducerStateError):
        await producer.start()
    producer.auto_complete = False
    pending = await producer.send("t", b"v")
    await producer.close()
    await producer.close()  # twice is fine
    assert producer.closed
    assert producer.state is State.CLOSED
    assert isinstance(pending.exception(), ProducerClosedError)
    with pytest.raises(ProducerClosedError):
        await producer.send("t", b"v")
    with pytest.raises(ProducerClosedError):
        await producer.flush()


async def test_futures_match_the_backend(anyio_backend_name: str) -> None:
    async with MockProducer() as producer:
        future = await producer.send("t", b"v")
    assert isinstance(future, asyncio.Future) == (anyio_backend_name == "asyncio")
    seen: list[Any] = []
    future.add_done_callback(seen.append)
    await anyio.lowlevel.checkpoint()  # asyncio runs done-callbacks on the next loop turn
    assert seen == [future]
    assert future.result().offset == 0


async def test_send_exception_and_clear() -> None:
    async with MockProducer() as producer:
        await producer.send_and_wait("t", b"v")
        producer.clear()
        producer.send_exception = KafkaTimeoutError("buffer full")
        with pytest.raises(KafkaTimeoutError, match="buffer full"):
            await producer.send("t", b"v")
        producer.send_exception = None
        metadata = await producer.send_and_wait("t", b"v", partition=0)
        assert len(producer.history()) == 1
        assert metadata.offset == 1  # offsets keep counting after clear()


async def test_interceptors_run_like_the_real_producer() -> None:
    events: list[str] = []

    class Tag(ProducerInterceptor):
        def configure(self, configs: Any) -> None:
            events.append("configure")

        def on_send(self, record: ProducerRecord) -> ProducerRecord:
            record.headers = [("tag", b"1")]
            return record

        def on_acknowledgement(
            self, metadata: RecordMetadata | None, exception: BaseException | None
        ) -> None:
            events.append("ack" if exception is None else f"error {type(exception).__name__}")

        def close(self) -> None:
            events.append("close")

    async with MockProducer(interceptors=[Tag()], value_serializer="json") as producer:
        await producer.send_and_wait("t", 1)
        with pytest.raises(SerializationError):
            await producer.send("t", float("nan"))
    assert producer.history()[0].headers == (("tag", b"1"),)
    assert events == ["configure", "ack", "error SerializationError", "close"]


async def test_bad_config_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="linger_ms"):
        MockProducer(linger_ms=-1)
    with pytest.raises(ValueError, match="partitions"):
        MockProducer(partitions={"t": 0})
    producer = MockProducer.from_config({"linger.ms": "5"})
    assert producer.config.linger_ms == 5
    assert producer.config.bootstrap_servers
