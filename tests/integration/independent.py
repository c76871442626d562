"""Helpers built on confluent-kafka (librdkafka): a client this project did not write."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


@dataclass(frozen=True)
class ConsumedRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    timestamp_type: int


def create_topic(bootstrap_servers: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)


def consume(
    bootstrap_servers: str, topic: str, partitions: list[int], expected: int, timeout: float = 30
) -> list[ConsumedRecord]:
    """Read ``expected`` records from offset 0 of ``partitions``; fail if fewer arrive."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"verify-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        consumer.assign([CkTopicPartition(topic, p, 0) for p in partitions])
        records: list[ConsumedRecord] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            timestamp_type, timestamp = message.timestamp()
            records.append(
                ConsumedRecord(
                    partition=message.partition(),
                    offset=message.offset(),
                    key=message.key(),
                    value=message.value(),
                    headers=tuple(message.headers() or ()),
                    timestamp=timestamp,
                    timestamp_type=timestamp_type,
                )
            )
        if len(records) < expected:
            raise AssertionError(f"consumed {len(records)} of {expected} records from {topic}")
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
