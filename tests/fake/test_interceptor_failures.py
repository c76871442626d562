"""A record that fails after it was enqueued reaches the interceptors with metadata, as
Java's ``InterceptorCallback`` gives it: its topic and partition, -1 for the rest (a
record refused inside ``send()`` gets the same, see tests/unit/test_interceptors.py)."""

from __future__ import annotations

import pytest

from asyncproducer import Producer, RecordMetadata
from asyncproducer.errors import CorruptRecordError
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing import FakeCluster, MockProducer

pytestmark = pytest.mark.anyio

CORRUPT_MESSAGE = 2  # with retries=0, the first refusal fails the record


class Recorder:
    def __init__(self) -> None:
        self.acks: list[tuple[RecordMetadata | None, BaseException | None]] = []

    def on_acknowledgement(
        self, metadata: RecordMetadata | None, exception: BaseException | None
    ) -> None:
        self.acks.append((metadata, exception))


async def test_a_record_the_broker_refuses_is_told_with_its_topic_and_partition() -> None:
    recorder = Recorder()
    async with FakeCluster(brokers=1) as cluster:
        cluster.create_topic("t", 3)
        async with Producer(
            cluster.bootstrap_servers, interceptors=[recorder], retries=0, linger_ms=0
        ) as producer:
            await producer.send_and_wait("t", b"ok", partition=1)
            cluster.fail_next(ApiKey.PRODUCE, CORRUPT_MESSAGE)
            future = await producer.send("t", b"refused", partition=2)
            with pytest.raises(CorruptRecordError):
                await future
    (ok, _), (failed, error) = recorder.acks
    assert ok is not None
    assert (ok.topic, ok.partition, ok.offset) == ("t", 1, 0)
    assert isinstance(error, CorruptRecordError)
    assert failed == RecordMetadata("t", 2, -1, -1, -1, -1)


async def test_the_mock_producer_tells_a_failure_the_same_way() -> None:
    recorder = Recorder()
    async with MockProducer(interceptors=[recorder], auto_complete=False) as producer:
        future = await producer.send("t", b"v", partition=1)
        producer.error_next(CorruptRecordError("refused"))
        with pytest.raises(CorruptRecordError):
            await future
    ((metadata, error),) = recorder.acks
    assert metadata == RecordMetadata("t", 1, -1, -1, -1, -1)
    assert isinstance(error, CorruptRecordError)
