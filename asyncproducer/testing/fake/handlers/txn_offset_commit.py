"""TxnOffsetCommit: offsets a transaction commits for a consumer group, sent to the group's
coordinator and kept pending until EndTxn commits them (an abort drops them).

Before the offsets are staged Kafka checks (KIP-890) that the group's ``__consumer_offsets``
partition is in the producer's transaction: v0-v4 verify it (AddOffsetsToTxn must have
come first; else INVALID_TXN_STATE, or TRANSACTION_ABORTABLE from v4, which KIP-1050
clients know), v5+ adds it, as transaction version 2 clients send no AddOffsetsToTxn
(``txnOffsetCommitRequestVersionToTransactionSupportedOperation``). A stale epoch is
INVALID_PRODUCER_EPOCH, what Kafka's verification turns the coordinator's
PRODUCER_FENCED into. The KIP-447 fields (generation id, member id, group instance id)
are accepted and not checked: the fake has no group membership.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake._coordinators import GROUP
from asyncproducer.testing.fake._transactions import PendingOffset
from asyncproducer.testing.fake._txn_coordinator import (
    INVALID_PRODUCER_EPOCH,
    INVALID_TXN_STATE,
    PRODUCER_FENCED,
    TRANSACTION_ABORTABLE,
    UNKNOWN_TOPIC_OR_PARTITION,
)
from asyncproducer.testing.fake.handlers import (
    Request,
    build,
    not_coordinator,
    response_module,
)

_FIRST_ADDING = 5
_FIRST_WITH_TRANSACTION_ABORTABLE = 4

TopicPartition = tuple[str, int]


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    body = request.body
    offsets = {
        (str(topic.name), int(p.partition_index)): PendingOffset(
            offset=int(p.committed_offset),
            metadata=p.committed_metadata,
            leader_epoch=int(getattr(p, "committed_leader_epoch", -1)),
        )
        for topic in body.topics
        for p in topic.partitions
    }
    codes = _commit(request, offsets)
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), code in codes.items():
        by_topic.setdefault(topic, []).append(
            module.TxnOffsetCommitResponsePartition(
                partition_index=index, error_code=ErrorCode(code)
            )
        )
    return build(
        module.TxnOffsetCommitResponse,
        throttle_time=datetime.timedelta(0),
        topics=tuple(
            module.TxnOffsetCommitResponseTopic(name=topic, partitions=tuple(partitions))
            for topic, partitions in by_topic.items()
        ),
    )


def _commit(
    request: Request, offsets: dict[TopicPartition, PendingOffset]
) -> dict[TopicPartition, int]:
    body = request.body
    group_id = str(body.group_id)
    code = request.forced_error or not_coordinator(request, group_id, GROUP)
    if code:
        return dict.fromkeys(offsets, code)
    topics = request.cluster.topics
    unknown = {
        tp
        for tp in offsets
        if tp[0] not in topics or not 0 <= tp[1] < len(topics[tp[0]].partitions)
    }
    code = _verify(request, group_id)
    if not code:
        known = {tp: offset for tp, offset in offsets.items() if tp not in unknown}
        request.cluster.transactions.stage_offsets(str(body.transactional_id), group_id, known)
    return {tp: UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else code for tp in offsets}


def _verify(request: Request, group_id: str) -> int:
    body = request.body
    coordinator = request.cluster.transactions
    args = (str(body.transactional_id), int(body.producer_id), int(body.producer_epoch))
    offsets_partition = coordinator.offsets_partition(group_id)
    if request.version >= _FIRST_ADDING:
        code = coordinator.add_partitions(*args, [offsets_partition])
    else:
        code = coordinator.verify_partitions(*args, [offsets_partition])[offsets_partition]
    if code == PRODUCER_FENCED:
        return INVALID_PRODUCER_EPOCH
    if code == TRANSACTION_ABORTABLE and request.version < _FIRST_WITH_TRANSACTION_ABORTABLE:
        return INVALID_TXN_STATE
    return code
