"""send_batch() when a record, the user's code or the iterable fails midway (issue 16,
defect 5).

A record that cannot be sent fails alone, in its own slot, with a typed error, whatever
raised (reading a released memoryview, encoding a header name, reading a record's
fields, the caller's partitioner); the records around it are delivered once. An
iterable that raises midway ends the call: the records taken before are delivered, and
the caller gets their results on the typed ``SendBatchAbortedError`` (chained from what
the iterable raised), so that nothing enqueued is left without a result and a retry need
not duplicate them. The same through the C loop, the Python loop, ``send()`` per record
(interceptors) and ``MockProducer``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from asyncproducer import Producer, ProducerRecord, RecordMetadata, _staging
from asyncproducer._cluster import ClusterSnapshot
from asyncproducer.errors import (
    InvalidProducerRecordError,
    KafkaError,
    PartitionerError,
    SendBatchAbortedError,
    SerializationError,
)
from asyncproducer.interceptors import ProducerInterceptor
from asyncproducer.testing.fake import FakeCluster
from asyncproducer.testing.mock import MockProducer
from tests.send_arguments import released

pytestmark = pytest.mark.anyio

PATHS = ["c-loop", "python-loop", "intercepted"]


class Passing(ProducerInterceptor):
    """An interceptor: send_batch() then goes through send(), one future per record."""

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        return record


class Picky:
    """A custom partitioner that raises a plain RuntimeError for values starting "boom"."""

    def partition(
        self,
        topic: str,
        key: object,
        key_bytes: bytes | None,
        value: object,
        value_bytes: bytes | None,
        cluster: ClusterSnapshot,
    ) -> int:
        if value_bytes is not None and value_bytes.startswith(b"boom"):
            raise RuntimeError("the partitioner refuses")
        return 0


def configure(path: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if path == "python-loop":
        monkeypatch.setattr(_staging, "Appender", None)
    elif path == "c-loop" and _staging.Appender is None:
        pytest.skip("asyncproducer._speedups did not build")
    return {"interceptors": [Passing()]} if path == "intercepted" else {}


def broken_record() -> ProducerRecord:
    record = ProducerRecord("t", b"fields unset")
    del record.headers  # a slots field left unset: reading it raises AttributeError
    return record


@pytest.mark.parametrize("path", PATHS)
async def test_a_bad_record_fails_alone_whatever_raised(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(path, monkeypatch)
    records: list[Any] = [
        ("t", b"0"),
        ("t", released()),  # ValueError from bytes(): before the fix, it escaped raw
        ("t", b"2", None, None, None, [("\ud800", b"x")]),  # UnicodeEncodeError, raw before
        ("t", b"3"),
        broken_record(),  # AttributeError reading its fields
        ("t", b"5"),
    ]
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, linger_ms=5, **config) as producer:
                results = await producer.send_batch(records)
                after = await producer.send_and_wait("t", b"after")
            stored = [r.value for r in cluster.records("t", 0)]
    kinds = [type(r) for r in results]
    assert kinds == [
        RecordMetadata,
        SerializationError,
        SerializationError,
        RecordMetadata,
        InvalidProducerRecordError,
        RecordMetadata,
    ]
    bad_value, bad_header = results[1:3]
    assert isinstance(bad_value, SerializationError)
    assert "value" in str(bad_value)
    assert isinstance(bad_value.__cause__, ValueError)
    assert "headers[0]" in str(bad_header)
    assert stored == [b"0", b"3", b"5", b"after"]
    assert [r.offset for r in results if isinstance(r, RecordMetadata)] == [0, 1, 2]
    assert after.offset == 3


@pytest.mark.parametrize("path", PATHS)
async def test_a_partitioner_that_raises_fails_only_its_record(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(path, monkeypatch)
    records = [("t", b"ok-%d" % i) if i % 3 else ("t", b"boom-%d" % i) for i in range(9)]
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 2)
            async with Producer(
                cluster.bootstrap_servers, linger_ms=5, partitioner=Picky(), **config
            ) as producer:
                results = await producer.send_batch(records)
                with pytest.raises(PartitionerError, match="partition") as raised:
                    await producer.send("t", b"boom")
            stored = [r.value for r in cluster.records("t", 0)]
    assert isinstance(raised.value.__cause__, RuntimeError)
    for i, result in enumerate(results):
        if i % 3:
            assert isinstance(result, RecordMetadata)
        else:
            assert isinstance(result, PartitionerError)
            assert "Picky.partition()" in str(result)
            assert "the partitioner refuses" in str(result)
    assert stored == [b"ok-%d" % i for i in range(9) if i % 3]


def breaking(count: int, error: Exception) -> Iterator[Any]:
    for i in range(count):
        yield ("t", b"%d" % i)
        if i == 1:
            yield ("t", 12345)  # fails alone: SerializationError
    raise error


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "error", [RuntimeError("the caller's generator broke"), SerializationError("its own")]
)
async def test_an_iterable_that_raises_midway_ends_the_call_with_every_result(
    path: str, error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records taken before are delivered (once), and their results are on the
    typed error, in order; the producer goes on working."""
    config = configure(path, monkeypatch)
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 1)
            async with Producer(cluster.bootstrap_servers, linger_ms=5, **config) as producer:
                with pytest.raises(SendBatchAbortedError) as raised:
                    await producer.send_batch(breaking(5, error))
                after = await producer.send_and_wait("t", b"after")
            stored = [r.value for r in cluster.records("t", 0)]
    aborted = raised.value
    assert isinstance(aborted, KafkaError)
    assert aborted.__cause__ is error
    assert "records" in str(aborted)
    kinds = [type(r) for r in aborted.results]
    assert kinds == [RecordMetadata] * 2 + [SerializationError] + [RecordMetadata] * 3
    assert [r.offset for r in aborted.results if isinstance(r, RecordMetadata)] == [
        0, 1, 2, 3, 4
    ]  # fmt: skip
    assert stored == [b"0", b"1", b"2", b"3", b"4", b"after"]
    assert after.offset == 5


async def test_mock_producer_send_batch_behaves_the_same() -> None:
    async with MockProducer(partitions=1) as producer:
        results = await producer.send_batch([("t", b"0"), ("t", released()), ("t", b"2")])
        assert [type(r) for r in results] == [RecordMetadata, SerializationError, RecordMetadata]
        with pytest.raises(SendBatchAbortedError) as raised:
            await producer.send_batch(breaking(3, RuntimeError("broke")))
        assert [type(r) for r in raised.value.results] == (
            [RecordMetadata] * 2 + [SerializationError] + [RecordMetadata]
        )
        assert [r.value for r in producer.history()] == [b"0", b"2", b"0", b"1", b"2"]
