"""Metadata: live brokers, and topics with leader / replicas / isr / leader epoch."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.protocol.topics import topic_name_problem
from asyncproducer.testing.fake.cluster import ClusterState, PartitionState, TopicState
from asyncproducer.testing.fake.handlers import Request, build, response_module

_UNKNOWN_TOPIC_OR_PARTITION = 3
_INVALID_TOPIC_EXCEPTION = 17
_LEADER_NOT_AVAILABLE = 5


def handle(request: Request) -> Any:
    cluster = request.cluster
    module = response_module(request.api_key, request.version)
    requested = request.body.topics
    # v10+ may name a topic by id only; the fake does not resolve ids (the producer never
    # asks that way), so such an entry reads as an unknown, unnamed topic.
    names = sorted(cluster.topics) if requested is None else [t.name for t in requested]
    # v4+ carries the flag; Kafka's own default (auto-creation allowed) applies below v4.
    allow = bool(getattr(request.body, "allow_auto_topic_creation", True))
    topics = []
    for name in names:
        invalid = name is not None and topic_name_problem(name) is not None
        creatable = allow and cluster.auto_create_topics and not invalid
        if name is not None and name not in cluster.topics and creatable:
            cluster.create_topic(name, cluster.default_partitions)
        state = cluster.topics.get(name) if name is not None else None
        code = request.forced_error
        if invalid:  # Kafka answers so whether or not it would auto-create
            code = code or _INVALID_TOPIC_EXCEPTION
        elif state is None:
            code = code or _UNKNOWN_TOPIC_OR_PARTITION
        topics.append(_topic(module, cluster, name, state, code))
    brokers = tuple(
        build(module.MetadataResponseBroker, node_id=b, host=host, port=port)
        for b in cluster.broker_ids
        if b in cluster.live
        for host, port in [cluster.address_of(b)]
    )
    return build(
        module.MetadataResponse,
        throttle_time=datetime.timedelta(0),
        brokers=brokers,
        cluster_id=cluster.cluster_id,
        controller_id=min(cluster.live, default=-1),
        topics=tuple(topics),
        cluster_authorized_operations=-2147483648,
    )


def _topic(
    module: Any, cluster: ClusterState, name: str | None, state: TopicState | None, code: int
) -> Any:
    partitions = () if state is None or code else _partitions(module, cluster, state)
    return build(
        module.MetadataResponseTopic,
        error_code=ErrorCode(code),
        name=name,
        topic_id=state.topic_id if state is not None else None,
        is_internal=False,
        partitions=partitions,
        topic_authorized_operations=-2147483648,
    )


def _partitions(module: Any, cluster: ClusterState, state: TopicState) -> tuple[Any, ...]:
    return tuple(
        _partition(module, cluster, index, partition)
        for index, partition in enumerate(state.partitions)
    )


def _partition(module: Any, cluster: ClusterState, index: int, partition: PartitionState) -> Any:
    # The fake has no replication; replicas are the leader followed by the other brokers
    # so that clients see a plausible replication factor, and the ISR is the live ones.
    others = [b for b in cluster.broker_ids if b != partition.leader]
    replicas = [partition.leader, *others][:3]
    leader_up = partition.leader in cluster.live
    return build(
        module.MetadataResponsePartition,
        # A partition whose leader is down has no leader until the broker comes back (or
        # a test moves the leader), which Kafka reports as LEADER_NOT_AVAILABLE.
        error_code=ErrorCode(0 if leader_up else _LEADER_NOT_AVAILABLE),
        partition_index=index,
        leader_id=partition.leader if leader_up else -1,
        leader_epoch=partition.leader_epoch,
        replica_nodes=tuple(replicas),
        isr_nodes=tuple(b for b in replicas if b in cluster.live),
        offline_replicas=tuple(b for b in replicas if b not in cluster.live),
    )
