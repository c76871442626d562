"""Plugins a properties file names by dotted path, for tests/fake/test_java_properties.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from asyncproducer import Header, ProducerRecord, RecordMetadata


class UpperSerializer:
    """A Java-style serializer: upper-cases text; remembers how Java configured it."""

    configured: list[tuple[dict[str, Any], bool]] = []

    def configure(self, configs: Mapping[str, Any], is_key: bool) -> None:
        UpperSerializer.configured.append((dict(configs), is_key))

    def serialize(self, topic: str, headers: Sequence[Header] | None, data: Any) -> bytes:
        return str(data).upper().encode()


class LastPartition:
    """Every record to the topic's last partition."""

    def partition(
        self, topic: str, key: Any, key_bytes: Any, value: Any, value_bytes: Any, cluster: Any
    ) -> int:
        return len(cluster.topics[topic].partitions) - 1


class Counting:
    """An interceptor class (Java instantiates interceptor.classes)."""

    sent: list[str] = []
    acknowledged: list[int] = []

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        Counting.sent.append(record.topic)
        return record

    def on_acknowledgement(
        self, metadata: RecordMetadata | None, exception: BaseException | None
    ) -> None:
        if metadata is not None:
            Counting.acknowledged.append(metadata.offset)
