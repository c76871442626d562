"""Producer.send_batch: many records, one result each, in order (fake cluster)."""

from __future__ import annotations

import anyio
import pytest

from asyncproducer import Producer, ProducerRecord, RecordMetadata
from asyncproducer.errors import (
    PartitionOutOfRangeError,
    ProducerStateError,
    SerializationError,
    TopicAuthorizationFailedError,
)
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
        ProducerRecord("t", b"last"),
    ]
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers) as producer:
                first, wrong_type, bad_partition, last = await producer.send_batch(records)
        assert isinstance(first, RecordMetadata)
        assert isinstance(last, RecordMetadata)
        assert last.offset == first.offset + 1
        assert isinstance(wrong_type, SerializationError)
        assert isinstance(bad_partition, PartitionOutOfRangeError)
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
