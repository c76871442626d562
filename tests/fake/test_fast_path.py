"""The C appender (``_speedups.Appender``) is a shortcut, not a second producer: the same
sends, with it and without it, store the same records in the same partitions and
batches, and return the same metadata (fake cluster).

The unit tests of each case it declines are in tests/unit/test_appender.py; these run it
inside a producer, mixed with everything that takes the Python path.
"""

from __future__ import annotations

import random
import time
from typing import Any

import anyio
import pytest

from asyncproducer import Producer, ProducerRecord, RecordMetadata, _staging
from asyncproducer._send_batch import send_arguments
from asyncproducer.errors import (
    InvalidProducerRecordError,
    InvalidRecordTimestampError,
    KafkaError,
    PartitionOutOfRangeError,
    RecordTooLargeError,
)
from asyncproducer.partitioners import DefaultPartitioner
from asyncproducer.testing.fake import FakeCluster
from tests.pure_python import run_without_speedups

pytestmark = pytest.mark.anyio

needs_c = pytest.mark.skipif(
    _staging.Appender is None, reason="asyncproducer._speedups did not build"
)

T0 = 1_700_000_000_000


def workload() -> list[dict[str, Any]]:
    """send() keyword arguments: every kind of record the appender takes, and every kind
    it declines, interleaved (a seeded mix, so both runs send the same)."""
    rng = random.Random(7)
    sends: list[dict[str, Any]] = []
    for i in range(1_500):
        kind = rng.randrange(10)
        send: dict[str, Any] = {"topic": "t" if i % 4 else "u", "timestamp_ms": T0 + i}
        if kind < 4:
            send["value"] = b"keyless-%d" % i
        elif kind < 6:
            send["key"] = b"key-%d" % rng.randrange(20)
            send["value"] = b"keyed-%d" % i
        elif kind == 6:
            send["value"] = None  # a tombstone
            send["key"] = b"key-%d" % rng.randrange(20)
        elif kind == 7:
            send["value"] = b"explicit-%d" % i
            send["partition"] = rng.randrange(2)
        elif kind == 8:
            send["value"] = b"with-headers-%d" % i
            send["headers"] = [("n", b"%d" % i), ("none", None)]
        else:
            send["value"] = b"x" * rng.randrange(100, 3_000)  # some open a new batch
        sends.append(send)
    return sends


async def run_workload(sends: list[dict[str, Any]]) -> tuple[list[Any], dict[Any, Any]]:
    """Send everything with one producer; the results (metadata, or the error's type)
    and what each partition stored, batch by batch."""
    results: list[Any] = []
    async with FakeCluster() as cluster:
        cluster.create_topic("t", 3)
        cluster.create_topic("u", 2)
        async with Producer(
            cluster.bootstrap_servers,
            # Batches close on size only, never on time: both runs cut them alike.
            linger_ms=60_000,
            batch_size=2_000,
            partitioner=DefaultPartitioner(rng=random.Random(3)),
            # Sticky choices by the seeded draws alone: adaptive ones also weigh the
            # queues, which depend on when the sender ran.
            partitioner_adaptive_partitioning_enable=False,
        ) as producer:
            assert (producer._appender is None) == (_staging.Appender is None)
            futures = []
            for send in sends:
                try:
                    futures.append(await producer.send(**send))
                except KafkaError as exc:
                    futures.append(type(exc))
            await producer.flush()
            for future in futures:
                results.append(future if isinstance(future, type) else await future)
        stored = {
            (topic, p): (
                [(r.key, r.value, r.headers, r.timestamp) for r in cluster.records(topic, p)],
                [(batch.base_offset, batch.last_offset) for batch in cluster.batches(topic, p)],
            )
            for topic, count in (("t", 3), ("u", 2))
            for p in range(count)
        }
    return results, stored


@needs_c
async def test_sends_give_the_same_records_and_batches_with_and_without_the_appender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sends = workload()
    with anyio.fail_after(20):
        fast = await run_workload(sends)
        monkeypatch.setattr(_staging, "Appender", None)
        slow = await run_workload(sends)
    assert fast == slow
    results, stored = fast
    assert all(isinstance(r, RecordMetadata) for r in results)
    assert sum(len(records) for records, _ in stored.values()) == len(sends)
    # Batches were cut by size, several times in each partition.
    assert all(len(batches) > 3 for _, batches in stored.values())


@needs_c
async def test_what_the_appender_declines_still_raises_the_same_errors() -> None:
    with anyio.fail_after(10):
        async with FakeCluster() as cluster:
            cluster.create_topic("t", 2)
            async with Producer(cluster.bootstrap_servers, linger_ms=50) as producer:
                assert producer._appender is not None
                await (await producer.send("t", b"open a batch"))
                await producer.send("t", b"open a batch")
                with pytest.raises(PartitionOutOfRangeError):
                    await producer.send("t", b"v", partition=2)
                with pytest.raises(PartitionOutOfRangeError):
                    await producer.send("t", b"v", partition=True)
                with pytest.raises(InvalidRecordTimestampError):
                    await producer.send("t", b"v", timestamp_ms=-1)
                with pytest.raises(InvalidRecordTimestampError):
                    await producer.send("t", b"v", timestamp_ms=2**63)
                with pytest.raises(InvalidRecordTimestampError):
                    await producer.send("t", b"v", timestamp_ms=1.5)  # type: ignore[arg-type]
                with pytest.raises(RecordTooLargeError):
                    await producer.send("t", b"x" * 2_000_000)
                before = time.time_ns() // 1_000_000
                metadata = await (await producer.send("t", b"now"))
                after = time.time_ns() // 1_000_000
                assert before - 1 <= metadata.timestamp <= after + 1


@needs_c
async def test_send_batch_takes_the_appender_and_the_python_path_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Keyless records to a one-partition topic: where send_batch's batches are cut
    # depends on when the sender runs, and with it the sticky partitions. Every record
    # form, and items that are none (they fail alone, the C loop hands them back).
    records: list[Any] = []
    for i, send in enumerate(workload()):
        if not ("key" in send or "partition" in send):
            send = send | {"topic": "one"}
        record = ProducerRecord(**send)
        if i % 3 == 1:  # a tuple of send()'s arguments, as short as it can be
            fields = list(send_arguments(record))
            while len(fields) > 2 and fields[-1] is None:
                fields.pop()
            records.append(tuple(fields))
        elif i % 3 == 2:
            records.append(RecordSubclass(**send))  # not exactly a ProducerRecord
        else:
            records.append(record)
        if i % 250 == 0:
            records.extend([None, ("one",), b"not a record"])

    async def run() -> tuple[list[Any], list[Any]]:
        async with FakeCluster() as cluster:
            for topic, count in (("t", 3), ("u", 2), ("one", 1)):
                cluster.create_topic(topic, count)
            async with Producer(
                cluster.bootstrap_servers, linger_ms=5, batch_size=2_000
            ) as producer:
                results = [
                    type(r) if isinstance(r, Exception) else r
                    for r in await producer.send_batch(records)
                ]
            stored = [
                [(r.key, r.value, r.headers, r.timestamp) for r in cluster.records(topic, p)]
                for topic, count in (("t", 3), ("u", 2), ("one", 1))
                for p in range(count)
            ]
            return results, stored

    with anyio.fail_after(20):
        fast = await run()
        monkeypatch.setattr(_staging, "Appender", None)
        slow = await run()
    assert fast == slow
    kinds = [r if isinstance(r, type) else type(r) for r in fast[0]]
    assert kinds.count(InvalidProducerRecordError) == 3 * 6
    assert kinds.count(RecordMetadata) == len(records) - 3 * 6


class RecordSubclass(ProducerRecord):
    __slots__ = ()


def test_the_pure_python_path_delivers_the_same_records() -> None:
    """Without the extension: the pure-Python batch records, no appender, ``send()``
    the coroutine."""
    run_without_speedups(
        """
        import inspect

        import anyio
        from asyncproducer import Producer, ProducerRecord, _staging
        from asyncproducer._batch import ProducerBatch
        from asyncproducer.protocol.batch_records import PyBatchRecords, SPEEDUPS
        from asyncproducer.testing.fake import FakeCluster

        assert not SPEEDUPS and _staging.Appender is None
        assert PyBatchRecords in ProducerBatch.__mro__

        async def main():
            records = [
                ProducerRecord("t", b"v%d" % i, key=None if i % 3 else b"k%d" % i,
                               headers=[("h", None)] if i % 2 else None)
                for i in range(300)
            ]
            async with FakeCluster() as cluster:
                cluster.create_topic("t", 1)
                async with Producer(cluster.bootstrap_servers, linger_ms=5) as producer:
                    assert inspect.iscoroutinefunction(producer.send)  # not the C one
                    results = await producer.send_batch(records)
                    future = await producer.send("t", b"one more")
                    assert (await future).offset == 300
                stored = cluster.records("t", 0)
            assert [r.offset for r in results] == list(range(300))
            assert [(r.key, r.value, r.headers) for r in stored[:300]] == [
                (r.key, r.value, (("h", None),) if r.headers else ()) for r in records
            ]
            print("ok")

        anyio.run(main)
        """
    )
