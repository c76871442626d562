"""Small value types shared by every layer."""

from __future__ import annotations

from typing import NamedTuple, TypeAlias

Header: TypeAlias = tuple[str, bytes | None]
"""A record header: a UTF-8 key and a value that may be None (as in Java)."""


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class RecordMetadata(NamedTuple):
    """Where and when a record was written, as the broker acknowledged it.

    ``offset`` is -1 for ``acks=0`` (the broker does not answer). ``timestamp`` is the
    record's create time, or the broker's LogAppendTime when the topic uses it.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    serialized_key_size: int
    serialized_value_size: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)
