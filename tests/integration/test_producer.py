"""The Producer against a real broker, read back by confluent-kafka (librdkafka)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
import warnings
from collections import defaultdict

import anyio
import pytest

from asyncproducer import RecordMetadata
from asyncproducer._types import ProducerRecord
from asyncproducer.partitioners import UniformStickyPartitioner
from asyncproducer.producer import Producer
from tests.integration.independent import ConsumedRecord, consume, create_topic, fetch_batches

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

pytestmark = pytest.mark.anyio

PARTITIONS = 6
TASKS = 50
PER_TASK = 2_000  # 100,000 records in all
BASE_TS = 1_700_000_000_000


def java_partition(key: bytes, partitions: int) -> int:
    """The partition Java's producer picks for ``key``, computed by kafka-python's murmur2
    (an implementation we did not write); the unit tests pin Java's own vectors."""
    return (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions


def record_for(task: int, seq: int) -> tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]:
    """Odd sequence numbers are keyless; keys are per task, so per-key order is defined."""
    key = None if seq % 2 else f"t{task}-k{seq % 10}".encode()
    value = f"{task}:{seq}:".encode() + b"x" * 60
    headers: list[tuple[str, bytes | None]] = [("task", str(task).encode()), ("n", None)]
    return key, value, headers


async def produce_all(producer: Producer, topic: str) -> dict[bytes, RecordMetadata]:
    futures: dict[bytes, object] = {}

    async def task(task_id: int) -> None:
        for seq in range(PER_TASK):
            key, value, headers = record_for(task_id, seq)
            futures[value] = await producer.send(
                topic, value, key=key, headers=headers, timestamp_ms=BASE_TS + seq
            )

    async with anyio.create_task_group() as tg:
        for task_id in range(TASKS):
            tg.start_soon(task, task_id)
    return {value: await future for value, future in futures.items()}  # type: ignore[misc]


@pytest.mark.parametrize("acks", ["all", 1, 0])
@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_100k_records_from_50_tasks_arrive_exactly_once_in_order(
    kafka_bootstrap_servers: str, topic_name: str, acks: str | int, compression: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, PARTITIONS)
    with anyio.fail_after(120):
        async with Producer(
            kafka_bootstrap_servers,
            acks=acks,
            compression_type=compression,
            linger_ms=5,
            # Idempotence (the default) needs acks=all; the other acks run without it.
            enable_idempotence=acks == "all",
        ) as producer:
            acknowledged = await produce_all(producer, topic_name)
    assert len(acknowledged) == TASKS * PER_TASK

    consumed = await anyio.to_thread.run_sync(
        consume, kafka_bootstrap_servers, topic_name, list(range(PARTITIONS)), len(acknowledged)
    )
    by_value: dict[bytes, ConsumedRecord] = {}
    for record in consumed:
        assert record.value is not None
        assert record.value not in by_value, f"duplicate {record.value!r}"
        by_value[record.value] = record
    assert by_value.keys() == acknowledged.keys()

    last_seq_per_key: dict[bytes, int] = defaultdict(lambda: -1)
    for record in consumed:  # sorted by (partition, offset)
        task_id, seq = (int(x) for x in record.value.split(b":")[:2])  # type: ignore[union-attr]
        key, _, headers = record_for(task_id, seq)
        assert record.key == key
        assert record.headers == tuple(headers)
        assert record.timestamp == BASE_TS + seq
        metadata = acknowledged[record.value]  # type: ignore[index]
        assert metadata.partition == record.partition
        assert metadata.offset == (record.offset if acks != 0 else -1)
        assert metadata.timestamp == BASE_TS + seq
        if key is not None:
            assert record.partition == java_partition(key, PARTITIONS)
            assert seq > last_seq_per_key[key], f"key {key!r} out of order"
            last_seq_per_key[key] = seq


async def test_keyless_records_fill_one_partition_batch_at_a_time(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, PARTITIONS)
    records, value = 3_000, b"v" * 100
    async with Producer(
        kafka_bootstrap_servers, linger_ms=100, batch_size=16_384, enable_idempotence=False
    ) as producer:
        with anyio.fail_after(30):
            futures = [await producer.send(topic_name, value) for _ in range(records)]
            partitions = [(await f).partition for f in futures]
            metrics = producer.metrics()
            sent_bytes = producer.topic_metrics()[topic_name]["byte-total"]
    # ~120 bytes per record in a 16 KiB batch: ~135 records each. Round robin over 6
    # partitions would cut the same records into at least 6 times as many small batches.
    full_batches = -(-records * 120 // 16_384)
    batches = round(sent_bytes / metrics["batch-size-avg"])  # every batch, one window
    assert batches <= full_batches + PARTITIONS, metrics
    assert metrics["record-send-total"] == records
    # Stickiness: the partition changes only when a batch is full.
    switches = sum(1 for a, b in itertools.pairwise(partitions) if a != b)
    assert switches <= batches
    assert len(set(partitions)) > 1  # ...and it does move on


async def test_large_compressed_batches_from_the_worker_thread_read_back(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    """Batches above the compression worker's threshold (zstd: 64 KiB) are compressed in
    a thread, off the loop (_compression_worker): librdkafka reads every record back."""
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 1)
    values = [b"record %05d of a large batch " % i * 20 for i in range(600)]  # ~600 B each
    async with Producer(
        kafka_bootstrap_servers, compression_type="zstd", batch_size=256 * 1024, linger_ms=50
    ) as producer:
        with anyio.fail_after(30):
            futures = [await producer.send(topic_name, value) for value in values]
            offsets = [(await future).offset for future in futures]
    assert offsets == list(range(len(values)))
    consumed = await anyio.to_thread.run_sync(
        consume, kafka_bootstrap_servers, topic_name, [0], len(values)
    )
    assert [record.value for record in consumed] == values


async def test_small_buffer_memory_makes_senders_wait_and_loses_nothing(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 3)
    async with Producer(
        kafka_bootstrap_servers,
        buffer_memory=64 * 1024,
        batch_size=16 * 1024,
        linger_ms=20,
        enable_idempotence=False,
    ) as producer:
        results: list[RecordMetadata] = []

        async def sender(task_id: int) -> None:
            for i in range(500):
                future = await producer.send(topic_name, f"{task_id}-{i}".encode() * 20)
                future.add_done_callback(lambda f: results.append(f.result()))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for task_id in range(20):
                    tg.start_soon(sender, task_id)
            await producer.flush()
        assert producer.metrics()["buffer-available-bytes"] == 64 * 1024
    assert len(results) == 20 * 500
    consumed = await anyio.to_thread.run_sync(
        consume, kafka_bootstrap_servers, topic_name, [0, 1, 2], 20 * 500
    )
    assert len({r.value for r in consumed}) == 20 * 500


async def test_idempotent_batches_carry_producer_id_and_contiguous_sequences(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 2)
    async with Producer(kafka_bootstrap_servers, batch_size=2_000, linger_ms=1) as producer:
        assert producer.config.idempotence_enabled  # on by default, as in Java >= 3.0
        with anyio.fail_after(30):
            futures = [
                await producer.send(topic_name, b"v" * 50, key=str(i).encode())
                for i in range(2_000)
            ]
            acknowledged = [await f for f in futures]
    stored = await fetch_batches(kafka_bootstrap_servers, topic_name, [0, 1])
    assert sum(len(b.records) for batches in stored.values() for b in batches) == 2_000
    producer_ids = {b.producer_id for batches in stored.values() for b in batches}
    assert len(producer_ids) == 1
    assert producer_ids.pop() >= 0
    for partition, batches in stored.items():
        assert len(batches) > 1, "the test needs several batches per partition"
        expected_sequence = 0
        for batch in batches:
            assert batch.base_sequence == expected_sequence
            expected_sequence += len(batch.records)
        assert expected_sequence == sum(1 for md in acknowledged if md.partition == partition)


async def test_a_tight_send_loop_does_not_starve_the_sender(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 1)
    async with Producer(kafka_bootstrap_servers, linger_ms=0) as producer:
        await producer.send_and_wait(topic_name, b"warm-up")
        with anyio.fail_after(60):
            first = await producer.send(topic_name, b"x" * 100)
            for _ in range(20_000):
                await producer.send(topic_name, b"x" * 100)
            assert first.done()  # acknowledged while the loop was still sending
            await producer.flush()


async def test_interceptors_partitioner_and_callbacks_end_to_end(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 3)
    acknowledged: list[int] = []
    delivered: dict[int, list[int]] = defaultdict(list)

    class Stamp:
        def on_send(self, record: ProducerRecord) -> ProducerRecord:
            headers = [*(record.headers or ()), ("stamped", b"yes")]
            return dataclasses.replace(record, headers=headers)

        def on_acknowledgement(self, metadata: RecordMetadata | None, exc: object) -> None:
            assert metadata is not None
            acknowledged.append(metadata.offset)

    class EvenOdd:
        def partition(self, topic, key, key_bytes, value, value_bytes, cluster):  # type: ignore[no-untyped-def]
            return int(value) % 2  # never partition 2

    async with Producer(
        kafka_bootstrap_servers,
        interceptors=[Stamp()],
        partitioner=EvenOdd(),
        value_serializer=lambda n: str(n).encode(),
        linger_ms=20,
    ) as producer:
        with anyio.fail_after(30):
            for n in range(1_000):
                await producer.send(
                    topic_name,
                    n,
                    on_delivery=lambda md, exc, n=n: delivered[md.partition].append(n),
                )
            await producer.flush()
    assert sorted(acknowledged) == sorted([*range(500), *range(500)])  # 0..499 per partition
    assert delivered[0] == list(range(0, 1_000, 2))  # once each, in send order
    assert delivered[1] == list(range(1, 1_000, 2))
    consumed = await anyio.to_thread.run_sync(
        consume, kafka_bootstrap_servers, topic_name, [0, 1, 2], 1_000
    )
    assert {r.partition for r in consumed} == {0, 1}
    assert all(r.headers == (("stamped", b"yes"),) for r in consumed)
    assert all(int(r.value or b"") % 2 == r.partition for r in consumed)


async def test_uniform_sticky_moves_on_for_keyed_records_too(
    kafka_bootstrap_servers: str, topic_name: str
) -> None:
    await anyio.to_thread.run_sync(create_topic, kafka_bootstrap_servers, topic_name, 3)
    with anyio.fail_after(30):
        async with Producer(
            kafka_bootstrap_servers, partitioner=UniformStickyPartitioner, batch_size=1_000
        ) as producer:
            futures = [await producer.send(topic_name, b"v" * 50, key=b"same") for _ in range(100)]
            partitions = [(await f).partition for f in futures]
    # The same key everywhere, yet batches of ~12 records move between partitions.
    assert len(set(partitions)) > 1
    assert partitions[:10] == [partitions[0]] * 10


async def test_log_append_time_topics_report_the_brokers_time(
    kafka_bootstrap_servers: str, topic_name: str, broker_kind: str
) -> None:
    """With message.timestamp.type=LogAppendTime the broker stamps each batch; the
    producer must report that time, not the one it sent. Tansu ignores the setting."""
    await anyio.to_thread.run_sync(
        functools.partial(
            create_topic,
            kafka_bootstrap_servers,
            topic_name,
            1,
            configs={"message.timestamp.type": "LogAppendTime"},
        )
    )
    before_ms = time.time() * 1000
    async with Producer(kafka_bootstrap_servers, linger_ms=0) as producer:
        with anyio.fail_after(30):
            told = [
                await producer.send_and_wait(topic_name, b"v", timestamp_ms=BASE_TS)
                for _ in range(3)
            ]
    after_ms = time.time() * 1000
    (stored, *_) = await anyio.to_thread.run_sync(
        consume, kafka_bootstrap_servers, topic_name, [0], 3
    )
    if broker_kind == "tansu":
        assert [md.timestamp for md in told] == [BASE_TS] * 3
        assert (stored.timestamp_type, stored.timestamp) == (1, BASE_TS)  # CreateTime
        return
    for metadata in told:
        assert before_ms - 1_000 <= metadata.timestamp <= after_ms + 1_000
    assert stored.timestamp_type == 2  # LogAppendTime, as confluent-kafka reads it
    assert stored.timestamp == told[0].timestamp
