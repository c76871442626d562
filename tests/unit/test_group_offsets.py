"""``send_offsets_to_transaction()``'s arguments (``_group_offsets``): the consumer group
in each form users bring it (a group id, a ConsumerGroupMetadata, a consumer's metadata
object, confluent-kafka's bytes), and the offsets as our, aiokafka's and confluent-kafka's
types; what cannot be a position to commit is refused, naming the entry."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import aiokafka.structs
import confluent_kafka
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncproducer._group_offsets import offsets_to_commit, read_group_metadata
from asyncproducer._types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition

# --------------------------------------------------------------------------- the group


def librdkafka_bytes(group_id: str, generation: int, member_id: str, instance: str | None) -> bytes:
    """rd_kafka_consumer_group_metadata_write's layout: the magic, the generation as a
    native int32, group id and member id NUL-terminated, then 1 (no instance id) or 0 and
    the instance id NUL-terminated."""
    tail = b"\x01" if instance is None else b"\x00" + instance.encode() + b"\x00"
    return (
        b"CGMDv2:"
        + struct.pack("=i", generation)
        + group_id.encode()
        + b"\x00"
        + member_id.encode()
        + b"\x00"
        + tail
    )


def consumer_group_metadata(**config: str) -> bytes:
    """What a real confluent-kafka consumer hands out; it needs no broker (the group is
    not joined: generation -1, no member id)."""
    consumer = confluent_kafka.Consumer(
        {"group.id": "g1", "bootstrap.servers": "127.0.0.1:1", "log_level": 0, **config}
    )
    try:
        metadata = consumer.consumer_group_metadata()
    finally:
        consumer.close()
    assert isinstance(metadata, bytes)
    return metadata


@pytest.fixture(scope="module")
def confluent_metadata() -> bytes:
    return consumer_group_metadata()


@pytest.fixture(scope="module")
def confluent_static_metadata() -> bytes:
    return consumer_group_metadata(**{"group.instance.id": "instance-7"})


def test_a_real_confluent_consumers_metadata(confluent_metadata: bytes) -> None:
    assert read_group_metadata(confluent_metadata) == ConsumerGroupMetadata("g1", -1, "", None)
    # The layout the module reads is the one librdkafka writes.
    assert confluent_metadata == librdkafka_bytes("g1", -1, "", None)


def test_a_real_static_members_metadata(confluent_static_metadata: bytes) -> None:
    assert read_group_metadata(confluent_static_metadata) == ConsumerGroupMetadata(
        "g1", -1, "", "instance-7"
    )
    assert confluent_static_metadata == librdkafka_bytes("g1", -1, "", "instance-7")


@pytest.mark.parametrize(
    "expected",
    [
        ConsumerGroupMetadata("orders", 12, "consumer-1-6f2c", None),
        ConsumerGroupMetadata("orders", 2**31 - 1, "m", "static-1"),
        ConsumerGroupMetadata("grüppe", 0, "mémber", "ïnstance"),  # UTF-8
    ],
    ids=["joined", "static-member", "utf8"],
)
def test_librdkafka_bytes_of_a_joined_member(expected: ConsumerGroupMetadata) -> None:
    data = librdkafka_bytes(
        expected.group_id, expected.generation_id, expected.member_id, expected.group_instance_id
    )
    assert read_group_metadata(data) == expected
    assert read_group_metadata(bytearray(data)) == expected


def test_a_group_id() -> None:
    assert read_group_metadata("orders") == ConsumerGroupMetadata("orders", -1, "", None)


def test_a_consumer_group_metadata_is_taken_as_it_is() -> None:
    group = ConsumerGroupMetadata("orders", 3, "member-1", "static-1")
    assert read_group_metadata(group) is group


@dataclass
class ConsumerMetadata:
    """A consumer's group metadata object (Java's ConsumerGroupMetadata, as other clients
    hand it out)."""

    group_id: Any
    generation_id: Any = 5
    member_id: Any = "member-5"
    group_instance_id: Any = "static-5"


@dataclass
class OnlyAGroupId:
    group_id: str


def test_an_object_with_the_group_fields() -> None:
    assert read_group_metadata(ConsumerMetadata("orders")) == ConsumerGroupMetadata(
        "orders", 5, "member-5", "static-5"
    )
    assert read_group_metadata(ConsumerMetadata("orders", 0, None, None)) == (
        ConsumerGroupMetadata("orders", 0, "", None)
    )
    assert read_group_metadata(OnlyAGroupId("orders")) == ConsumerGroupMetadata("orders")


@pytest.mark.parametrize(
    "group",
    [
        "",
        ConsumerGroupMetadata(""),
        OnlyAGroupId(""),
        librdkafka_bytes("", -1, "", None),
    ],
    ids=["str", "ConsumerGroupMetadata", "object", "librdkafka-bytes"],
)
def test_an_empty_group_id_is_refused_in_every_form(group: object) -> None:
    with pytest.raises(ValueError, match="group id must not be empty"):
        read_group_metadata(group)


@pytest.mark.parametrize(
    "group",
    [None, 42, b"orders", ["orders"], {"group_id": "orders"}, ConsumerMetadata(42)],
    ids=["None", "int", "bytes-without-magic", "list", "dict", "object-with-int-group-id"],
)
def test_what_cannot_be_a_group_is_refused(group: object) -> None:
    with pytest.raises(TypeError, match=re.escape(f"not {type(group).__name__}")) as refused:
        read_group_metadata(group)
    assert "group_metadata must be a group id (str), a ConsumerGroupMetadata" in str(refused.value)


FULL_LIBRDKAFKA_BYTES = {
    "no-instance": librdkafka_bytes("g1", -1, "", None),
    "instance": librdkafka_bytes("g1", 7, "member-1", "i-1"),
}
TRUNCATED = [
    pytest.param(full[:length], id=f"{name}-first-{length}-of-{len(full)}")
    for name, full in FULL_LIBRDKAFKA_BYTES.items()
    for length in range(len(b"CGMDv2:"), len(full))
]
"""Every truncation that still starts with the magic."""


@pytest.mark.parametrize("data", TRUNCATED)
def test_truncated_librdkafka_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"^unreadable librdkafka group metadata"):
        read_group_metadata(data)


def test_garbage_after_the_magic_is_refused() -> None:
    with pytest.raises(ValueError, match="unreadable librdkafka group metadata"):
        read_group_metadata(b"CGMDv2:\xff\xff\xff\xff\xc3\x28\x00\x00\x01")  # not UTF-8


# --------------------------------------------------------------------------- the offsets


def test_our_topic_partitions_with_offsets() -> None:
    offsets = {
        TopicPartition("in", 0): 42,
        TopicPartition("in", 1): OffsetAndMetadata(7),
        TopicPartition("in", 2): OffsetAndMetadata(8, "note", leader_epoch=3),
        TopicPartition("other", 0): 0,
    }
    assert offsets_to_commit(offsets) == {
        ("in", 0): (42, -1, None),
        ("in", 1): (7, -1, None),
        ("in", 2): (8, 3, "note"),
        ("other", 0): (0, -1, None),
    }


def test_plain_tuples_and_offset_metadata_pairs() -> None:
    offsets = {("in", 0): (42, "note"), ("in", 1): (43, None)}
    assert offsets_to_commit(offsets) == {("in", 0): (42, -1, "note"), ("in", 1): (43, -1, None)}


def test_aiokafkas_types() -> None:
    offsets = {
        aiokafka.structs.TopicPartition("in", 0): aiokafka.structs.OffsetAndMetadata(42, "note"),
        aiokafka.structs.TopicPartition("in", 1): aiokafka.structs.OffsetAndMetadata(43, ""),
        aiokafka.structs.TopicPartition("in", 2): 44,
    }
    assert offsets_to_commit(offsets) == {
        ("in", 0): (42, -1, "note"),
        ("in", 1): (43, -1, ""),
        ("in", 2): (44, -1, None),
    }


def test_confluent_kafkas_list_of_topic_partitions() -> None:
    offsets = [
        confluent_kafka.TopicPartition("in", 0, 42, metadata="note", leader_epoch=3),
        confluent_kafka.TopicPartition("in", 1, 43),
        confluent_kafka.TopicPartition("in", 2, 0, leader_epoch=0),
    ]
    assert offsets_to_commit(offsets) == {
        ("in", 0): (42, 3, "note"),
        ("in", 1): (43, -1, None),
        ("in", 2): (0, 0, None),
    }
    assert offsets_to_commit(iter(offsets)) == offsets_to_commit(offsets)


def test_nothing_to_commit() -> None:
    assert offsets_to_commit({}) == {}
    assert offsets_to_commit([]) == {}


@pytest.mark.parametrize(
    ("position", "error", "match"),
    [
        (-1, ValueError, "the offset for in-3 must be an int >= 0"),
        (OffsetAndMetadata(-5), ValueError, "the offset for in-3 must be an int >= 0.*-5"),
        ((-2, "m"), ValueError, "the offset for in-3 must be an int >= 0"),
        (aiokafka.structs.OffsetAndMetadata(-1, ""), ValueError, "for in-3 must be an int >= 0"),
        (True, TypeError, "the offset for in-3 must be an int or an OffsetAndMetadata"),
        (5.0, TypeError, "the offset for in-3 must be an int or an OffsetAndMetadata"),
        (None, TypeError, "the offset for in-3 must be an int or an OffsetAndMetadata"),
        ("5", TypeError, "the offset for in-3 must be an int or an OffsetAndMetadata"),
        (OffsetAndMetadata(True), ValueError, "the offset for in-3 must be an int >= 0.*True"),
        ((5.0, "m"), ValueError, "the offset for in-3 must be an int >= 0.*5.0"),
        (OffsetAndMetadata(5, b"m"), TypeError, "the metadata for in-3 must be a str"),  # type: ignore[arg-type]
        ((5, 7), TypeError, "the metadata for in-3 must be a str or None"),
        (aiokafka.structs.OffsetAndMetadata(5, 7), TypeError, "the metadata for in-3"),
        (OffsetAndMetadata(5, None, "3"), TypeError, "the leader epoch for in-3 must be an int"),  # type: ignore[arg-type]
    ],
    ids=[
        "negative",
        "negative-OffsetAndMetadata",
        "negative-pair",
        "negative-aiokafka",
        "bool",
        "float",
        "None",
        "str",
        "bool-in-OffsetAndMetadata",
        "float-in-pair",
        "bytes-metadata",
        "int-metadata",
        "int-metadata-aiokafka",
        "str-leader-epoch",
    ],
)
def test_what_cannot_be_an_offset_is_refused(
    position: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        offsets_to_commit({TopicPartition("in", 3): position})


def test_a_confluent_topic_partition_without_an_offset_is_refused() -> None:
    # confluent-kafka's default offset is OFFSET_INVALID (-1001).
    with pytest.raises(ValueError, match=r"the offset for in-0 must be an int >= 0.*-1001"):
        offsets_to_commit([confluent_kafka.TopicPartition("in", 0)])
    with pytest.raises(TypeError, match="the metadata for in-0 must be a str"):
        offsets_to_commit([_ConfluentLike("in", 0, 5, metadata=b"m")])


@dataclass
class _ConfluentLike:
    topic: Any
    partition: Any
    offset: Any
    metadata: Any = None
    leader_epoch: Any = None


@pytest.mark.parametrize(
    "key",
    ["in", 3, ("in",), ("in", 0, 1), ("", 0), ("in", -1), ("in", True), ("in", "0"), (0, "in")],
    ids=[
        "str",
        "int",
        "1-tuple",
        "3-tuple",
        "empty-topic",
        "negative-partition",
        "bool-partition",
        "str-partition",
        "swapped",
    ],
)
def test_a_key_that_is_not_a_topic_partition_is_refused(key: object) -> None:
    with pytest.raises(
        TypeError,
        match=re.escape(f"an offset's key must be a TopicPartition(topic, partition), not {key!r}"),
    ):
        offsets_to_commit({key: 5})


@pytest.mark.parametrize(
    "entry",
    [5, "in", ("in", 0), _ConfluentLike(None, 0, 5), _ConfluentLike("in", None, 5)],
    ids=["int", "str", "tuple-without-offset", "no-topic", "no-partition"],
)
def test_a_list_entry_that_is_not_a_topic_partition_with_an_offset_is_refused(
    entry: object,
) -> None:
    with pytest.raises((TypeError, ValueError), match="must be"):
        offsets_to_commit([entry])


# --------------------------------------------------------------------------- the property

TOPICS = st.text(
    st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="._-"),
    min_size=1,
    max_size=20,
)
PARTITIONS = st.integers(0, 2**31 - 1)
OFFSETS = st.integers(0, 2**63 - 1)
METADATA = st.none() | st.text(st.characters(blacklist_characters="\x00"), max_size=20)
"""No NUL: confluent-kafka keeps the metadata as a C string."""
EPOCHS = st.integers(-1, 2**31 - 1)

Triple = tuple[int, int, str | None]


@st.composite
def an_entry(draw: st.DrawFn, topic: str, partition: int) -> tuple[object, object, Triple]:
    """(key, position, expected triple) in one of the forms users bring."""
    key_form = draw(st.sampled_from(["ours", "aiokafka", "tuple"]))
    key: object = {
        "ours": TopicPartition(topic, partition),
        "aiokafka": aiokafka.structs.TopicPartition(topic, partition),
        "tuple": (topic, partition),
    }[key_form]
    offset, metadata, epoch = draw(OFFSETS), draw(METADATA), draw(EPOCHS)
    form = draw(st.sampled_from(["int", "ours", "aiokafka", "pair"]))
    if form == "int":
        return key, offset, (offset, -1, None)
    if form == "ours":
        return key, OffsetAndMetadata(offset, metadata, epoch), (offset, epoch, metadata)
    if form == "aiokafka":
        return key, aiokafka.structs.OffsetAndMetadata(offset, metadata), (offset, -1, metadata)
    return key, (offset, metadata), (offset, -1, metadata)


@st.composite
def offsets_and_expected(draw: st.DrawFn) -> tuple[object, dict[tuple[str, int], Triple]]:
    where = draw(st.lists(st.tuples(TOPICS, PARTITIONS), unique=True, max_size=8))
    if draw(st.booleans()):  # confluent-kafka's list
        entries = []
        expected: dict[tuple[str, int], Triple] = {}
        for topic, partition in where:
            offset, metadata = draw(OFFSETS), draw(METADATA)
            epoch = draw(st.none() | EPOCHS)
            # confluent-kafka takes neither None: leave them out for "none".
            extra: dict[str, Any] = {} if metadata is None else {"metadata": metadata}
            if epoch is not None:
                extra["leader_epoch"] = epoch
            entries.append(confluent_kafka.TopicPartition(topic, partition, offset, **extra))
            expected[topic, partition] = (offset, -1 if epoch is None else epoch, metadata)
        return entries, expected
    mapping = {}
    expected = {}
    for topic, partition in where:
        key, position, triple = draw(an_entry(topic, partition))
        mapping[key] = position
        expected[topic, partition] = triple
    return mapping, expected


@given(offsets_and_expected())
def test_any_valid_offsets_give_the_expected_triples(
    case: tuple[object, dict[tuple[str, int], Triple]],
) -> None:
    offsets, expected = case
    result = offsets_to_commit(offsets)  # type: ignore[arg-type]
    assert result == expected
    assert list(result) == list(expected)  # in the order given
