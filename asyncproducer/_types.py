"""Small value types shared by every layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

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


@dataclass(slots=True)
class ProducerRecord:
    """A record as ``send()`` received it, before serialization (what interceptors see).

    ``on_send`` interceptors may return a different ``ProducerRecord`` to send instead.
    """

    topic: str
    value: Any = None
    key: Any = None
    partition: int | None = None
    timestamp_ms: int | None = None
    headers: Sequence[Header] | None = None


RecordTuple: TypeAlias = (
    tuple[str, Any]
    | tuple[str, Any, Any]
    | tuple[str, Any, Any, int | None]
    | tuple[str, Any, Any, int | None, int | None]
    | tuple[str, Any, Any, int | None, int | None, Sequence[Header] | None]
)
"""A record for ``send_batch()`` as a plain tuple: ``send()``'s first 2 to 6 arguments
(topic, value, key, partition, timestamp_ms, headers), the ones left out None. Cheaper to
build than a ProducerRecord, and once the garbage collector has seen a tuple of
immutable items it no longer tracks it."""


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A consumer's position to commit in a transaction: the offset of the *next* record
    to read (last processed + 1), optional metadata, and the leader epoch of the record
    processed last (-1: unknown), as Java's ``OffsetAndMetadata``."""

    offset: int
    metadata: str | None = None
    leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadata:
    """The consumer group whose offsets a transaction commits, as Java's
    ``ConsumerGroupMetadata``. With the generation and member id of the consumer that read
    the records (KIP-447), the group coordinator refuses the commit of a consumer that has
    lost its partitions (a zombie); with only the group id it cannot tell."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    """A broker as the cluster metadata describes it, as Java's ``Node``. A replica the
    metadata names but whose broker it does not list (it is down) has ``host`` "" and
    ``port`` -1, as in Java."""

    id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition of a topic, as Java's ``PartitionInfo`` (what ``partitions_for()``
    returns): its leader (None while it has none), its replicas, the in-sync ones, and the
    offline ones."""

    topic: str
    partition: int
    leader: Node | None
    replicas: tuple[Node, ...]
    in_sync_replicas: tuple[Node, ...]
    offline_replicas: tuple[Node, ...] = ()
