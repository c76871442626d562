"""``send_offsets_to_transaction()``'s arguments, as users bring them (pure): offsets from
our types, aiokafka's or confluent-kafka's, and the group as an id, a
:class:`ConsumerGroupMetadata`, or what a consumer of the peers hands out.

Each is read by what it holds, and refused with a ``TypeError``/``ValueError`` naming the
entry when it cannot be a position to commit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from asyncproducer._types import ConsumerGroupMetadata, OffsetAndMetadata

Offsets = dict[tuple[str, int], tuple[int, int, str | None]]
"""(topic, partition) -> (offset, leader epoch or -1, metadata): what TxnOffsetCommit sends."""

_CONFLUENT_MAGIC = b"CGMDv2:"
"""librdkafka's serialized group metadata (``Consumer.consumer_group_metadata()`` returns
these bytes): the magic, int32 generation id in the host's byte order, group id and member
id each NUL-terminated, one byte that is 1 when there is no group instance id, else the
instance id NUL-terminated (rdkafka_cgrp.c, rd_kafka_consumer_group_metadata_write)."""


def read_group_metadata(group: object) -> ConsumerGroupMetadata:
    """The group as a ConsumerGroupMetadata: from one, from a group id (a str), from
    confluent-kafka's ``consumer_group_metadata()`` bytes, or from any object with
    ``group_id`` (and optionally ``generation_id``, ``member_id``, ``group_instance_id``)."""
    if isinstance(group, ConsumerGroupMetadata):
        _group_id(group.group_id)
        return group
    if isinstance(group, str):
        return ConsumerGroupMetadata(_group_id(group))
    if isinstance(group, (bytes, bytearray)) and bytes(group).startswith(_CONFLUENT_MAGIC):
        return _from_librdkafka(bytes(group))
    group_id = getattr(group, "group_id", None)
    if isinstance(group_id, str):
        return ConsumerGroupMetadata(
            _group_id(group_id),
            int(getattr(group, "generation_id", -1)),
            str(getattr(group, "member_id", "") or ""),
            getattr(group, "group_instance_id", None),
        )
    raise TypeError(
        "group_metadata must be a group id (str), a ConsumerGroupMetadata, or a consumer's "
        f"group metadata (confluent-kafka's consumer_group_metadata()), not {type(group).__name__}"
    )


def _group_id(group_id: str) -> str:
    if not group_id:
        raise ValueError("the consumer group id must not be empty")
    return group_id


def _from_librdkafka(data: bytes) -> ConsumerGroupMetadata:
    try:
        (generation,) = struct.unpack_from("=i", data, len(_CONFLUENT_MAGIC))
        group_id, member_id, rest = data[len(_CONFLUENT_MAGIC) + 4 :].split(b"\0", 2)
        if rest == b"\1":
            instance = None
        elif len(rest) > 1 and rest[0] == 0 and rest[-1] == 0 and b"\0" not in rest[1:-1]:
            instance = rest[1:-1].decode()
        else:
            raise ValueError("no group instance id flag, or an unterminated instance id")
        return ConsumerGroupMetadata(
            _group_id(group_id.decode()), generation, member_id.decode(), instance
        )
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"unreadable librdkafka group metadata {data[:40]!r}: {exc}") from exc


def offsets_to_commit(offsets: Mapping[Any, Any] | Iterable[Any]) -> Offsets:
    """``{TopicPartition: offset | OffsetAndMetadata}`` (aiokafka's TopicPartition and
    OffsetAndMetadata, and ``(offset, metadata)`` pairs, too), or confluent-kafka's list of
    ``TopicPartition`` with their offsets, as (topic, partition) -> (offset, leader
    epoch, metadata)."""
    # confluent-kafka's list: TopicPartition(topic, partition, offset, metadata, leader_epoch)
    entries: Iterable[tuple[Any, Any]] = (
        offsets.items() if isinstance(offsets, Mapping) else ((tp, tp) for tp in offsets)
    )
    result: Offsets = {}
    for where, position in entries:
        topic, partition = _topic_partition(where)
        result[topic, partition] = _position(topic, partition, position)
    return result


def _topic_partition(where: Any) -> tuple[str, int]:
    topic, partition = getattr(where, "topic", None), getattr(where, "partition", None)
    if topic is None and isinstance(where, tuple) and len(where) == 2:
        topic, partition = where
    if not isinstance(topic, str) or not topic or type(partition) is not int or partition < 0:
        raise TypeError(
            f"an offset's key must be a TopicPartition(topic, partition), not {where!r}"
        )
    return topic, partition


def _position(topic: str, partition: int, position: Any) -> tuple[int, int, str | None]:
    if type(position) is int:
        offset, metadata, epoch = position, None, -1
    elif isinstance(position, OffsetAndMetadata):
        offset, metadata, epoch = position.offset, position.metadata, position.leader_epoch
    elif isinstance(position, tuple) and len(position) == 2 and not hasattr(position, "offset"):
        offset, metadata, epoch = position[0], position[1], -1
    elif hasattr(position, "offset"):  # aiokafka's OffsetAndMetadata, confluent's TopicPartition
        offset = position.offset
        metadata = getattr(position, "metadata", None)
        epoch = getattr(position, "leader_epoch", -1)
        epoch = -1 if epoch is None else epoch
    else:
        raise TypeError(
            f"the offset for {topic}-{partition} must be an int or an OffsetAndMetadata, "
            f"not {position!r}"
        )
    if type(epoch) is not int:
        raise TypeError(f"the leader epoch for {topic}-{partition} must be an int, not {epoch!r}")
    if type(offset) is not int or offset < 0:
        raise ValueError(
            f"the offset for {topic}-{partition} must be an int >= 0 (the next record to "
            f"read), not {offset!r}"
        )
    if metadata is not None and not isinstance(metadata, str):
        raise TypeError(f"the metadata for {topic}-{partition} must be a str or None")
    return offset, epoch, metadata
