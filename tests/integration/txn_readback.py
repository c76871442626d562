"""Reading back what transactions left in a topic, with a client this project did not
write (librdkafka), for the transaction tests on Kafka (one node, three) and Tansu.

A consumer cannot tell "nothing more is coming" from "not there yet", so every read ends
at a sentinel: librdkafka writes one record to each partition after the transactions under
test have ended, and the consumer reads until it has seen it in every partition. A
read_committed consumer only gets past a transaction once the transaction is decided (the
last stable offset), so what it saw before the sentinel is everything that will ever be
visible there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

import anyio
from confluent_kafka import Consumer, KafkaException
from confluent_kafka import Producer as CkProducer
from confluent_kafka import TopicPartition as CkTopicPartition

from asyncproducer import RecordMetadata
from asyncproducer.errors import TransactionAbortedError

SENTINEL = b"sentinel-"
RUNS_AT_ONCE_S = 1.0  # "raises at once": well under any network round trip's retry budget


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Seen:
    offset: int
    key: bytes | None
    value: bytes


def read_to_sentinel(
    bootstrap_servers: str, topic: str, partitions: Sequence[int], isolation: str
) -> dict[int, list[Seen]]:
    """Every data record of ``partitions`` that a librdkafka consumer at ``isolation``
    sees, up to a sentinel written now (sentinels of earlier reads left out)."""
    token = SENTINEL + uuid.uuid4().hex.encode()
    producer = CkProducer({"bootstrap.servers": bootstrap_servers})
    for partition in partitions:
        producer.produce(topic, token, partition=partition)
    if producer.flush(20) != 0:
        raise AssertionError(f"librdkafka could not write the sentinels to {topic}")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": new_name("verify"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
        }
    )
    seen: dict[int, list[Seen]] = {p: [] for p in partitions}
    done: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        consumer.assign([CkTopicPartition(topic, p, 0) for p in partitions])
        while done != set(partitions):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{isolation} consumer of {topic} did not reach the sentinel of "
                    f"partitions {sorted(set(partitions) - done)} in 30 s (a transaction "
                    f"left open?); seen: { {p: len(s) for p, s in seen.items()} }"
                )
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            value, where, offset = message.value(), message.partition(), message.offset()
            assert value is not None
            assert where is not None
            assert offset is not None
            if value == token:
                done.add(where)
            elif not value.startswith(SENTINEL):
                seen[where].append(Seen(offset, message.key(), value))
    finally:
        consumer.close()
    return seen


def values(seen: dict[int, list[Seen]]) -> list[bytes]:
    return [record.value for partition in sorted(seen) for record in seen[partition]]


async def settle(futures: Sequence[Awaitable[RecordMetadata]]) -> list[RecordMetadata]:
    return [await future for future in futures]


async def written_or_dropped(future: Awaitable[RecordMetadata]) -> bool:
    """An aborted transaction's record: written before the abort (its future has its
    metadata), or dropped unsent by it (TransactionAbortedError). Awaited either way: on
    asyncio an exception never retrieved is reported by the loop (and fails the test)."""
    try:
        await future
    except TransactionAbortedError:
        return False
    return True


def group_offsets(
    bootstrap_servers: str,
    group_id: str,
    partitions: Sequence[tuple[str, int]],
    isolation: str = "read_committed",
) -> dict[tuple[str, int], int]:
    """The group's committed offsets as librdkafka's ``committed()`` reads them (-1001:
    none). At read_committed its OffsetFetch asks require_stable, so an undecided
    transaction's offsets are waited for; at read_uncommitted the answer is what is
    committed now.

    Offsets only: confluent-kafka reads a committed offset's metadata as a NUL-terminated
    C string, and librdkafka writes its own with the NUL while Java (and we) do not, so it
    reads past the end of ours (kafka-python reads the metadata)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    try:
        found = consumer.committed([CkTopicPartition(t, p) for t, p in partitions], timeout=20)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        consumer.close()


async def wait_for_offsets(
    bootstrap_servers: str,
    group_id: str,
    expected: dict[tuple[str, int], int],
    isolation: str = "read_committed",
) -> None:
    """Kafka writes a commit's markers to __consumer_offsets after EndTxn returns: ask
    until the group's offsets are ``expected`` (or 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        found = await anyio.to_thread.run_sync(
            group_offsets, bootstrap_servers, group_id, list(expected), isolation
        )
        if found == expected or time.monotonic() > deadline:
            break
        await anyio.sleep(0.2)
    assert found == expected, f"group {group_id}"
