"""Helpers built on confluent-kafka (librdkafka): a client this project did not write."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer._connection import ConnectionSettings
from asyncproducer._pool import ConnectionPool
from asyncproducer.protocol.messages import fetch_request
from asyncproducer.protocol.records import DecodedBatch, decode_batches
from asyncproducer.protocol.versions import ApiKey


@dataclass(frozen=True)
class ConsumedRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    timestamp_type: int


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int,
    timeout: float = 30,
    configs: dict[str, str] | None = None,
) -> None:
    """Create ``name`` and return once every partition's leader serves it.

    Apache Kafka lists a new partition's leader in Metadata a moment before that broker
    acts as its leader (it answers NOT_LEADER_OR_FOLLOWER meanwhile, and drops an acks=0
    request's records with the connection), so creation alone is not readiness.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new_topic = NewTopic(
        name, num_partitions=partitions, replication_factor=1, config=configs or {}
    )
    futures = admin.create_topics([new_topic])
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": f"ready-{name}"})
    try:
        for partition in range(partitions):
            while True:
                try:  # a ListOffsets the partition's leader answers
                    consumer.get_watermark_offsets(CkTopicPartition(name, partition), timeout=2)
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        consumer.close()


def consume(
    bootstrap_servers: str,
    topic: str,
    partitions: list[int],
    expected: int,
    timeout: float = 30,
    extra: dict[str, str] | None = None,
) -> list[ConsumedRecord]:
    """Read ``expected`` records from offset 0 of ``partitions``; fail if fewer arrive.
    ``extra``: more consumer settings (security.protocol, ...)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"verify-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            **(extra or {}),
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


async def fetch_batches(
    bootstrap_servers: str, topic: str, partitions: list[int]
) -> dict[int, list[DecodedBatch]]:
    """The record batches as the broker stores them (producer id, sequences, ...), read
    with a Fetch from offset 0. confluent-kafka does not expose batch headers, so this uses
    our own request and decoder, which the codec tests cross-check with kafka-python."""
    address = parse_bootstrap_servers(bootstrap_servers)[0]
    stored: dict[int, list[DecodedBatch]] = {}
    async with ConnectionPool(ConnectionSettings()) as pool:
        connection = await pool.get(address)
        version = connection.versions.version_for(ApiKey.FETCH)
        for partition in partitions:
            stored[partition] = []
            offset = 0
            while True:
                response = await connection.send(
                    fetch_request(version, {topic: {partition: offset}})
                )
                blob = response.responses[0].partitions[0].records or b""  # type: ignore[union-attr]
                batches = decode_batches(blob) if blob else []
                if not batches:
                    break
                stored[partition] += batches
                offset = batches[-1].base_offset + batches[-1].last_offset_delta + 1
    return stored
