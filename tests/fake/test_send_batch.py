"""Producer.send_batch: many records, one result each, in order (fake cluster)."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from asyncproducer import Producer, ProducerRecord, RecordMetadata, RecordTuple, _staging
from asyncproducer.errors import (
    InvalidProducerRecordError,
    InvalidRecordTimestampError,
    InvalidTopicError,
    PartitionOutOfRangeError,
    ProducerStateError,
    SendBatchAbortedError,
    SerializationError,
    TopicAuthorizationFailedError,
)
from asyncproducer.interceptors import ProducerInterceptor
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing.fake import FakeCluster

pytestmark = pytest.mark.anyio

TOPIC_AUTHORIZATION_FAILED = 29


async def test_results_in_order_with_keys_headers_and_timestamps() -> None:
    records = [
        ProducerRecord(
            "a" if i % 2 else "b",
            b"v%d" % i,
            key=b"k%d" % (i % 5),
            timestamp_ms=1_700_000_000_000 + i,
            headers=[("n", b"%d" % i), ("none", None)],
        )
        for i in range(200)
    ]
    records.append(ProducerRecord("a", b"explicit", partition=2))
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("a", 3)
            cluster.create_topic("b", 3)
            async with Producer(cluster.bootstrap_servers, linger_ms=5) as producer:
                results = await producer.send_batch(records)
            assert len(results) == len(records)
            for record, result in zip(records, results, strict=True):
                assert isinstance(result, RecordMetadata), result
                assert result.topic == record.topic
                if record.partition is not None:
                    assert result.partition == record.partition
                stored = {r.offset: r for r in cluster.records(result.topic, result.partition)}[
                    result.offset
                ]
                assert stored.value == record.value
                assert stored.key == record.key
                assert stored.headers == tuple(record.headers or ())
                if record.timestamp_ms is not None:
                    assert stored.timestamp == record.timestamp_ms == result.timestamp


async def test_a_record_that_cannot_be_sent_fails_alone() -> None:
    records = [
        ProducerRecord("t", b"first"),
        ProducerRecord("t", 12345),  # not bytes: the default serializer refuses it
        ProducerRecord("t", b"bad partition", partition=7),
        ProducerRecord("t", b"bad timestamp", timestamp_ms=-5),
        ProducerRecord("bad topic!", b"bad topic"),
        ProducerRecord(["t"], b"unhashable topic"),  # type: ignore[arg-type]
        ProducerRecord("t", b"bad headers", headers=5),  # type: ignore[arg-type]
        ProducerRecord("t", b"last"),
    ]
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers) as producer:
                results = await producer.send_batch(records)
        first, wrong_type, bad_partition, bad_timestamp, *bad_topics, bad_headers, last = results
        assert isinstance(first, RecordMetadata)
        assert isinstance(last, RecordMetadata)
        assert last.offset == first.offset + 1
        assert isinstance(wrong_type, SerializationError)
        assert isinstance(bad_partition, PartitionOutOfRangeError)
        assert isinstance(bad_timestamp, InvalidRecordTimestampError)
        assert [type(error) for error in bad_topics] == [InvalidTopicError] * 2
        assert isinstance(bad_headers, SerializationError)
        assert [r.value for r in cluster.records("t", 0)] == [b"first", b"last"]


async def test_a_record_refused_by_the_broker_fails_alone() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=2) as cluster:
            cluster.create_topic("ok", 1, leaders=[0])
            cluster.create_topic("denied", 1, leaders=[1])
            async with Producer(cluster.bootstrap_servers) as producer:
                await producer.partitions_for("denied")
                cluster.fail_next(ApiKey.PRODUCE, TOPIC_AUTHORIZATION_FAILED, broker=1)
                ok, denied = await producer.send_batch(
                    [ProducerRecord("ok", b"yes"), ProducerRecord("denied", b"no")]
                )
        assert isinstance(ok, RecordMetadata)
        assert isinstance(denied, TopicAuthorizationFailedError)
        assert "denied-0" in str(denied)
        assert denied.possibly_written is False


async def test_raises_at_once_if_the_producer_is_not_running() -> None:
    producer = Producer("127.0.0.1:9")
    with pytest.raises(ProducerStateError):
        await producer.send_batch([ProducerRecord("t", b"v")])


async def test_results_survive_a_split_of_the_batch_the_broker_found_too_large() -> None:
    """MESSAGE_TOO_LARGE splits a batch: the halves keep reporting to the call's results
    (its sinks), and the call waits for both halves."""
    records = [ProducerRecord("t", b"%04d" % i + b"." * 96) for i in range(16)]
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1, max_message_bytes=1_000)
            async with Producer(cluster.bootstrap_servers, linger_ms=50) as producer:
                results = await producer.send_batch(records)
                split = producer.metrics()["batch-split-total"]
        assert split >= 1
        assert all(isinstance(r, RecordMetadata) for r in results), results
        stored = {r.offset: r.value for r in cluster.records("t", 0)}
        assert [stored[r.offset] for r in results] == [r.value for r in records]  # type: ignore[union-attr]


async def test_flush_waits_for_both_halves_of_a_split_batch() -> None:
    with anyio.fail_after(10):
        async with FakeCluster(brokers=1) as cluster:
            cluster.create_topic("t", 1, max_message_bytes=1_000)
            async with Producer(cluster.bootstrap_servers, linger_ms=1_000) as producer:
                futures = [await producer.send("t", b"." * 100) for _ in range(16)]
                await producer.flush(timeout=5)
                assert all(f.done() for f in futures)
                assert producer.metrics()["batch-split-total"] >= 1


async def test_headers_are_fixed_at_send_whatever_sequence_holds_them() -> None:
    class Raw(bytes):
        """A bytes subclass: accepted as a header value, stored as plain bytes."""

    headers: list[tuple[str, bytes | None]] = [("a", Raw(b"1")), ("é", None)]
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, linger_ms=50) as producer:
                future = await producer.send("t", b"v", headers=headers)
                headers.append(("late", b"x"))  # after send(): not part of the record
                headers[0] = ("changed", b"2")
                metadata = await future
            [stored] = cluster.records("t", 0)
            assert metadata.offset == stored.offset
            assert stored.headers == (("a", b"1"), ("é", None))


class Counting(ProducerInterceptor):
    """Sees every record: send_batch then goes through send(), one future each."""

    def __init__(self) -> None:
        self.seen: list[ProducerRecord] = []

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        self.seen.append(record)
        return record


@pytest.mark.parametrize("intercepted", [False, True], ids=["direct", "intercepted"])
async def test_tuples_of_sends_arguments_are_records_too(intercepted: bool) -> None:
    """A tuple holds send()'s first 2 to 6 arguments in order; the rest are None."""
    headers = [("h", b"x")]
    records: list[ProducerRecord | RecordTuple] = [
        ("t", b"two"),
        ("t", b"three", b"key"),
        ("t", b"four", None, 1),
        ("t", b"five", b"k5", 0, 1_700_000_000_005),
        ("t", b"six", None, 1, 1_700_000_000_006, headers),
        ProducerRecord("t", b"record", partition=0),
    ]
    interceptor = Counting()
    config = {"interceptors": [interceptor]} if intercepted else {}
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 2)
            async with Producer(cluster.bootstrap_servers, **config) as producer:  # type: ignore[arg-type]
                results = await producer.send_batch(records)
        assert len(interceptor.seen) == (6 if intercepted else 0)
        stored = {(p, r.offset): r for p in (0, 1) for r in cluster.records("t", p)}
        got = []
        for result in results:
            assert isinstance(result, RecordMetadata), result
            record = stored[(result.partition, result.offset)]
            got.append((record.value, record.key, record.headers, result.partition))
        assert got[0][:3] == (b"two", None, ())
        assert got[1][:3] == (b"three", b"key", ())
        assert got[2] == (b"four", None, (), 1)
        assert got[3] == (b"five", b"k5", (), 0)
        assert got[4] == (b"six", None, (("h", b"x"),), 1)
        assert got[5] == (b"record", None, (), 0)
        assert stored[(0, results[3].offset)].timestamp == 1_700_000_000_005  # type: ignore[union-attr]
        assert stored[(1, results[4].offset)].timestamp == 1_700_000_000_006  # type: ignore[union-attr]


@pytest.mark.parametrize("intercepted", [False, True], ids=["direct", "intercepted"])
async def test_an_item_that_is_not_a_record_fails_alone(intercepted: bool) -> None:
    not_records: list[Any] = [("t",), ("t", b"v", None, None, None, None, "7th"), b"t", None]
    records = [("t", b"first"), *not_records, ProducerRecord("t", b"last")]
    config = {"interceptors": [Counting()]} if intercepted else {}
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, **config) as producer:  # type: ignore[arg-type]
                first, *failed, last = await producer.send_batch(records)
        assert isinstance(first, RecordMetadata)
        assert isinstance(last, RecordMetadata)
        assert [type(error) for error in failed] == [InvalidProducerRecordError] * 4
        assert all(isinstance(error, TypeError) for error in failed)
        assert "got a tuple of 1: ('t',)" in str(failed[0])
        assert "got a tuple of 7" in str(failed[1])
        assert "got a bytes: b't'" in str(failed[2])
        assert "got a NoneType" in str(failed[3])
        assert [r.value for r in cluster.records("t", 0)] == [b"first", b"last"]


async def test_its_batches_go_without_waiting_out_linger_ms() -> None:
    """The caller waits for every record it gave: once all are enqueued, lingering would
    only delay it. Other records still linger."""
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 3)
            async with Producer(cluster.bootstrap_servers, linger_ms=60_000) as producer:
                lingering = await producer.send("t", b"lingers", partition=0)
                with anyio.fail_after(5):  # not the 60 s linger
                    batch = [("t", b"%d" % i, None, 1 + i % 2) for i in range(50)]
                    results = await producer.send_batch(batch)
                assert all(isinstance(r, RecordMetadata) for r in results)
                await anyio.sleep(0.2)
                assert not lingering.done()
                await producer.flush(timeout=5)
                assert lingering.done()


class Topic(enum.StrEnum):
    ORDERS = "orders"


async def test_a_topic_that_is_a_str_subclass_such_as_a_str_enum_is_a_topic() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("orders", 1)
            async with Producer(cluster.bootstrap_servers) as producer:
                first = await producer.send_and_wait(Topic.ORDERS, b"sent")
                [second] = await producer.send_batch([(Topic.ORDERS, b"batched")])
            assert [r.value for r in cluster.records("orders", 0)] == [b"sent", b"batched"]
            assert first.topic == second.topic == "orders"  # type: ignore[union-attr]


@pytest.mark.parametrize("appender", [True, False], ids=["c-loop", "python-loop"])
async def test_records_that_raise_midway_leave_the_producer_working(
    appender: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records enqueued before the iterator raised are delivered, and their batch
    completes as every other (before, it had no sink and killed the sender task); the
    call raises SendBatchAbortedError with their results (issue 16)."""
    if not appender:
        monkeypatch.setattr(_staging, "Appender", None)

    def records() -> Iterator[RecordTuple]:
        for i in range(5):
            yield ("t", b"%d" % i)
        raise RuntimeError("the caller's generator broke")

    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, linger_ms=5) as producer:
                with pytest.raises(SendBatchAbortedError, match="generator broke") as raised:
                    await producer.send_batch(records())
                after = await producer.send_and_wait("t", b"after")
            assert isinstance(raised.value.__cause__, RuntimeError)
            assert [r.offset for r in raised.value.results] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
            assert [r.value for r in cluster.records("t", 0)] == [
                b"0", b"1", b"2", b"3", b"4", b"after"
            ]  # fmt: skip
            assert after.offset == 5
