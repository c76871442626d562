"""``_value.Value``: what the internal value classes get in place of dataclasses."""

from __future__ import annotations

import pytest

from asyncproducer._cluster import BrokerAddress, PartitionMetadata, TopicInfo
from asyncproducer._value import Value


class _Point(Value):
    __slots__ = ("label", "x", "y")
    _fields = ("x", "y")  # label is not part of the identity

    def __init__(self, x: int, y: int, label: str = "") -> None:
        self.x = x
        self.y = y
        self.label = label


def test_equality_and_hash_are_over_the_fields_only() -> None:
    assert _Point(1, 2, "a") == _Point(1, 2, "b")
    assert hash(_Point(1, 2, "a")) == hash(_Point(1, 2, "b"))
    assert _Point(1, 2) != _Point(2, 1)
    assert {_Point(1, 2): "here"}[_Point(1, 2)] == "here"


def test_another_type_is_never_equal() -> None:
    class _Other(_Point):
        __slots__ = ()

    assert _Point(1, 2) != _Other(1, 2)
    assert _Point(1, 2) != (1, 2)


def test_repr_names_the_fields_in_order() -> None:
    assert repr(_Point(1, 2, "hidden")) == "_Point(x=1, y=2)"
    assert repr(BrokerAddress("h", 9092)) == "BrokerAddress(host='h', port=9092, node_id=None)"


def test_replace_builds_a_new_value_through_init() -> None:
    partition = PartitionMetadata("t", 0, -1, 0, (1,), (1,))
    topic = TopicInfo("t", (partition,))
    assert topic.available_partitions == ()
    led = topic.replace(partitions=(partition.replace(leader=1, leader_epoch=3),))
    assert led.available_partition_ids == (0,)  # derived again by __init__
    assert led.partitions[0].leader_epoch == 3
    assert topic.partitions[0].leader == -1  # the original is untouched


def test_slots_leave_no_room_for_stray_attributes() -> None:
    with pytest.raises(AttributeError):
        BrokerAddress("h", 1).hots = "typo"  # type: ignore[attr-defined]
