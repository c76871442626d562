"""Reading a fault run's topic back with confluent-kafka (librdkafka), a client this
project did not write; shared by the Tansu and the Apache Kafka scenarios."""

from __future__ import annotations

import socket
import time

from benchmarks._faults_ledger import Stored

READ_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def read_log(bootstrap_servers: str, topic: str, partitions: int) -> tuple[list[Stored], str]:
    """Every record stored in ``topic``, read with confluent-kafka until each partition
    reports its end; and which partitions did not get there within ``READ_TIMEOUT_S``.

    The end is the partition EOF that librdkafka reports from a Fetch response's high
    watermark, not ``get_watermark_offsets``: Tansu answers ListOffsets(latest) with the
    last batch's base offset + 1, which hides all but the first record of that batch.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
    from confluent_kafka import TopicPartition as CkTopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"faults-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "log_level": 4,
        }
    )
    try:
        consumer.assign([CkTopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        stored: list[Stored] = []
        behind = set(range(partitions))
        deadline = time.monotonic() + READ_TIMEOUT_S
        while behind and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(error)
            partition, offset = message.partition(), message.offset()
            assert partition is not None  # set on every record and EOF, None on errors
            assert offset is not None
            if error is not None:  # nothing is produced any more: the end is the end
                behind.discard(partition)
            else:
                stored.append(Stored(partition, offset, message.value()))
        return stored, ", ".join(f"partition {p}" for p in sorted(behind))
    finally:
        consumer.close()
