"""Producing to librdkafka's mock cluster, read back with confluent-kafka (issue 16).

librdkafka starts an in-process mock cluster when a client is configured with
``test.mock.num.brokers``; many users test against it, and it is a broker implementation
this project did not write, with its own quirks:

* asked ApiVersions v3/v4, it answers UNSUPPORTED_VERSION with a body that parses at no
  version (the producer retries at v0);
* flexible Metadata answers (v9+) carry one byte after the body (ignored, as Java does);
* it has no CreateTopics handler: topics are created on first use, with the mock's
  default of 4 partitions, led by different brokers;
* it speaks InitProducerId up to v4, so the idempotent producer works (and is tested).

Its brokers' addresses come from ``list_topics()`` on the client that hosts it; the mock
cluster lives as long as that client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
import confluent_kafka
import pytest

from asyncproducer import Producer, RecordMetadata
from tests.integration.independent import consume

pytestmark = pytest.mark.anyio

BROKERS = 3
RECORDS = 40
BASE_TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def mock_cluster() -> Iterator[str]:
    """The bootstrap servers of a 3-broker librdkafka mock cluster."""
    host = confluent_kafka.Producer({"test.mock.num.brokers": BROKERS, "log_level": 3})
    metadata = host.list_topics(timeout=10)
    brokers = sorted((b.host, b.port) for b in metadata.brokers.values())
    assert len(brokers) == BROKERS
    yield ",".join(f"{h}:{p}" for h, p in brokers)
    host.flush(5)


def _record(i: int) -> tuple[bytes | None, bytes, list[tuple[str, bytes | None]]]:
    key = None if i % 5 == 0 else f"key-{i % 7}".encode()
    value = bytes([i % 256]) * (i % 3) + f"value-{i}".encode() + b"\x00\xff"
    headers = [("trace", f"t{i}".encode()), ("empty", b"")] if i % 2 else []
    return key, value, headers


@pytest.mark.parametrize("idempotence", [True, False])
async def test_records_reach_the_mock_cluster_and_read_back_exactly(
    mock_cluster: str, idempotence: bool
) -> None:
    topic = f"mock-{uuid.uuid4().hex[:10]}"
    acknowledged: dict[bytes, RecordMetadata] = {}
    async with Producer(
        mock_cluster, linger_ms=5, enable_idempotence=idempotence, request_timeout_ms=10_000
    ) as producer:
        with anyio.fail_after(30):
            partitions = [p.partition for p in await producer.partitions_for(topic)]
            futures = []
            for i in range(RECORDS):
                key, value, headers = _record(i)
                explicit = i % len(partitions) if i % 4 == 3 else None
                futures.append(
                    await producer.send(
                        topic,
                        value,
                        key=key,
                        partition=explicit,
                        timestamp_ms=BASE_TS + i,
                        headers=headers,
                    )
                )
            for i, future in enumerate(futures):
                metadata = await future
                acknowledged[_record(i)[1]] = metadata
                if i % 4 == 3:
                    assert metadata.partition == i % len(partitions)

    assert len(partitions) > 1  # the mock's default for a topic created on first use
    consumed = await anyio.to_thread.run_sync(consume, mock_cluster, topic, partitions, RECORDS)
    assert len(consumed) == RECORDS
    assert {(r.partition, r.offset) for r in consumed} == {
        (m.partition, m.offset) for m in acknowledged.values()
    }
    assert len({r.partition for r in consumed}) > 1
    for record in consumed:
        assert record.value is not None
        i = int(record.value.split(b"value-")[1].split(b"\x00")[0])
        key, value, headers = _record(i)
        metadata = acknowledged[value]
        assert (record.partition, record.offset) == (metadata.partition, metadata.offset)
        assert record.key == key
        assert record.value == value
        assert record.headers == tuple(headers)
        assert record.timestamp == BASE_TS + i
    # Keyed records of one key share a partition, in the order they were sent.
    by_key: dict[bytes, list[tuple[int, int, int]]] = {}
    for record in consumed:
        assert record.value is not None
        i = int(record.value.split(b"value-")[1].split(b"\x00")[0])
        if record.key is not None and i % 4 != 3:
            by_key.setdefault(record.key, []).append((i, record.partition, record.offset))
    for entries in by_key.values():
        assert len({partition for _, partition, _ in entries}) == 1
        assert [i for i, _, _ in sorted(entries, key=lambda e: e[2])] == sorted(
            i for i, _, _ in entries
        )
