from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_payload_module
from kio.schema.errors import ErrorCode
from kio.static.constants import EntityType

from asyncproducer._cluster import (
    BrokerAddress,
    BrokerInfo,
    ClusterSnapshot,
    PartitionMetadata,
    TopicInfo,
    _encode_idna,
    address_problem,
    parse_bootstrap_servers,
)
from asyncproducer._metadata import parse_metadata_response
from asyncproducer.errors import ConfigError, ProtocolError
from asyncproducer.protocol.versions import ApiKey


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
            PartitionMetadata(name, i, leader, 0, (leader,), (leader,))
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


# --------------------------------------------------------------------------- parsing

_SOURCE = BrokerAddress("10.0.0.9", 9092, 4)


def _response(
    brokers: object = ((0, "h0", 9092), (1, "h1", 9092)),
    partitions: object = ((0, 0), (1, 1)),
    *,
    topics: object = None,
    replicas: object = (0, 1),
) -> Any:
    """A MetadataResponse v12 (kio's classes) with one topic 't'; ``partitions`` are
    (id, leader) pairs. Fields are given as is, so a test can put in what the schema
    forbids (None for an array) or what no broker sends (partition -3)."""
    module = load_payload_module(ApiKey.METADATA, 12, EntityType.response)
    if brokers is not None:
        brokers = tuple(
            module.MetadataResponseBroker(node_id=n, host=h, port=p, rack=None)
            for n, h, p in brokers  # type: ignore[attr-defined]
        )
    if partitions is not None:
        partitions = tuple(
            module.MetadataResponsePartition(
                error_code=ErrorCode.none,
                partition_index=index,
                leader_id=leader,
                leader_epoch=0,
                replica_nodes=replicas,
                isr_nodes=replicas,
                offline_replicas=(),
            )
            for index, leader in partitions  # type: ignore[attr-defined]
        )
    if topics is None:
        topics = (
            module.MetadataResponseTopic(
                error_code=ErrorCode.none,
                name="t",
                topic_id=None,
                is_internal=False,
                partitions=partitions,
            ),
        )
    elif topics == "null":
        topics = None
    return module.MetadataResponse(
        throttle_time=datetime.timedelta(0),
        brokers=brokers,
        cluster_id="c",
        controller_id=0,
        topics=topics,
    )


def test_a_well_formed_response_parses() -> None:
    snapshot = parse_metadata_response(_response(), 5.0, _SOURCE)
    assert snapshot.brokers == {0: BrokerInfo(0, "h0", 9092), 1: BrokerInfo(1, "h1", 9092)}
    topic = snapshot.topics["t"]
    assert [(p.partition, p.leader) for p in topic.partitions] == [(0, 0), (1, 1)]
    assert snapshot.fetched_at == 5.0


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (_response(brokers=None), "broker list is null"),
        (_response(topics="null"), "topic list is null"),
        (_response(partitions=None), "partition list of topic 't' is null"),
        (_response(replicas=None), "replica"),
        (_response(partitions=((0, 0), (0, 0), (7, 0), (-3, 0))), "partition 0 twice"),
        (_response(partitions=((-3, 0),)), "partition -3"),
        (_response(partitions=((0, 0), (2, 0))), "without partition 1"),
        (_response(brokers=((0, "h0", 9092), (0, "h1", 9093))), "broker 0 twice"),
        (_response(brokers=((-2, "h0", 9092),)), "broker id -2"),
        (_response(brokers=((0, None, 9092),)), "host"),
    ],
    ids=[
        "null-brokers",
        "null-topics",
        "null-partitions",
        "null-replicas",
        "duplicate-and-negative-partitions",
        "negative-partition",
        "partition-gap",
        "duplicate-broker",
        "negative-broker",
        "null-host",
    ],
)
def test_an_impossible_response_is_a_protocol_error_naming_the_broker(
    response: object, problem: str
) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_metadata_response(response, 0.0, _SOURCE)
    assert str(_SOURCE) in str(info.value)
    assert problem in str(info.value)


def test_a_leader_missing_from_the_broker_list_is_no_leader() -> None:
    """Normal during an election (Java: the partition's leader is null)."""
    snapshot = parse_metadata_response(_response(partitions=((0, 0), (1, 7))), 0.0, _SOURCE)
    topic = snapshot.topics["t"]
    assert [p.leader for p in topic.partitions] == [0, -1]
    assert topic.available_partition_ids == (0,)
    assert snapshot.leader_for("t", 1) is None


@pytest.mark.parametrize(
    ("host", "port", "problem"),
    [
        ("h", 70000, "port 70000"),
        ("h", -1, "port -1"),
        ("h", 0, "port 0"),
        ("a..b", 9092, "empty label"),
        ("x" * 300, 9092, "300 characters"),
        ("", 9092, "empty"),
        ("a b", 9092, "' '"),
        ("a\0b", 9092, "'\\x00'"),
        ("\ud800", 9092, "'\\ud800'"),
    ],
)
def test_a_broker_with_an_impossible_address_is_kept_but_marked(
    host: str, port: int, problem: str
) -> None:
    """One broker advertising a bad address must not cost the others their metadata:
    it stays in the snapshot, and connecting to it fails with a typed error."""
    response = _response(brokers=((0, "h0", 9092), (1, host, port)))
    snapshot = parse_metadata_response(response, 0.0, _SOURCE)
    assert snapshot.brokers[1] == BrokerInfo(1, host, port)
    found = address_problem(host, port)
    assert found is not None
    assert problem in found


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "kafka_1",
        "broker-0.kafka.svc.cluster.local.",
        "::1",
        "10.0.0.1",
        "bücher.example",
    ],
)
def test_usual_hosts_have_no_address_problem(host: str) -> None:
    assert address_problem(host, 9092) is None


@pytest.mark.parametrize("value", ["a..b:9092", "h:70000", " :1"])
def test_bootstrap_servers_with_impossible_hosts_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        parse_bootstrap_servers(value)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=70)
        | st.sampled_from(["", "a" * 63, "a" * 64, "é", "xn--e-"]),
        min_size=1,
        max_size=5,
    ).map(".".join)
)
def test_host_names_are_checked_as_the_idna_codec_checks_them(host: str) -> None:
    # _encode_idna skips the codec's import for ASCII names: the same outcome, always.
    try:
        expected: bytes | None = host.encode("idna")
    except UnicodeError:
        expected = None
    try:
        got: bytes | None = _encode_idna(host)
    except UnicodeError:
        got = None
    assert got == expected
