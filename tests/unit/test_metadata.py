from __future__ import annotations

import pytest

from asyncproducer._cluster import (
    BrokerAddress,
    BrokerInfo,
    ClusterSnapshot,
    PartitionInfo,
    TopicInfo,
    parse_bootstrap_servers,
)
from asyncproducer.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a:1", [("a", 1)]),
        ("a:1, b:2,", [("a", 1), ("b", 2)]),
        (["a:1", "[::1]:9092"], [("a", 1), ("::1", 9092)]),
    ],
)
def test_bootstrap_servers_forms(value: str | list[str], expected: list[tuple[str, int]]) -> None:
    assert parse_bootstrap_servers(value) == tuple(BrokerAddress(h, p) for h, p in expected)


@pytest.mark.parametrize("value", ["", "host", "host:0", "host:abc", ":9092", "h:70000", []])
def test_bad_bootstrap_servers_name_the_key(value: str | list[str]) -> None:
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        parse_bootstrap_servers(value)


def _topic(name: str, leaders: list[int]) -> TopicInfo:
    return TopicInfo(
        name,
        tuple(
            PartitionInfo(name, i, leader, 0, (leader,), (leader,))
            for i, leader in enumerate(leaders)
        ),
    )


def test_snapshot_merge_replaces_requested_topics_and_keeps_others() -> None:
    old = ClusterSnapshot(
        brokers={1: BrokerInfo(1, "h1", 1)},
        topics={"a": _topic("a", [1]), "b": _topic("b", [1]), "gone": _topic("gone", [1])},
        fetched_at=1.0,
    )
    update = ClusterSnapshot(
        brokers={2: BrokerInfo(2, "h2", 2)}, topics={"a": _topic("a", [2, 2])}, fetched_at=2.0
    )
    merged = old.merged_with(update, ["a", "gone"])
    assert set(merged.topics) == {"a", "b"}
    assert len(merged.topics["a"].partitions) == 2
    assert merged.brokers == update.brokers
    assert merged.fetched_at == 2.0
    assert merged.leader_for("a", 1) == BrokerInfo(2, "h2", 2)
    assert merged.leader_for("b", 0) is None  # broker 1 is no longer in the cluster
    assert merged.leader_for("a", 5) is None


def test_available_partitions_skip_leaderless_ones() -> None:
    topic = _topic("t", [1, -1, 2])
    assert [p.partition for p in topic.available_partitions] == [0, 2]
