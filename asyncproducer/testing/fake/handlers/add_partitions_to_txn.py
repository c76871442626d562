"""AddPartitionsToTxn: a producer adds partitions to its open transaction (v0-v3), or a
partition leader verifies or adds them for a transactional Produce (v4+, batched by
transaction; ``verify_only`` is KIP-890 part 1's check).

Kafka answers one code for every partition of a client request: the coordinator's, unless
some partition is unknown, when those get UNKNOWN_TOPIC_OR_PARTITION and the others
OPERATION_NOT_ATTEMPTED (nothing is added).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake._coordinators import TRANSACTION
from asyncproducer.testing.fake._txn_coordinator import (
    OPERATION_NOT_ATTEMPTED,
    UNKNOWN_TOPIC_OR_PARTITION,
)
from asyncproducer.testing.fake.handlers import (
    Request,
    build,
    fenced_for_version,
    not_coordinator,
    response_module,
)

_FIRST_WITH_PRODUCER_FENCED = 2  # KIP-588
_FIRST_BATCHED = 4

TopicPartition = tuple[str, int]


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    if request.version >= _FIRST_BATCHED:
        return _batched(module, request)
    body = request.body
    partitions = _partitions(body.v3_and_below_topics)
    codes = _add(
        request,
        str(body.v3_and_below_transactional_id),
        int(body.v3_and_below_producer_id),
        int(body.v3_and_below_producer_epoch),
        partitions,
        verify_only=False,
    )
    return build(
        module.AddPartitionsToTxnResponse,
        throttle_time=datetime.timedelta(0),
        results_by_topic_v3_and_below=_results(module, codes, request.version),
    )


def _batched(module: Any, request: Request) -> Any:
    if request.forced_error:
        # v4+ has a top-level error code for the whole request.
        return build(
            module.AddPartitionsToTxnResponse,
            throttle_time=datetime.timedelta(0),
            error_code=ErrorCode(request.forced_error),
            results_by_transaction=(),
        )
    results = []
    for transaction in request.body.transactions:
        codes = _add(
            request,
            str(transaction.transactional_id),
            int(transaction.producer_id),
            int(transaction.producer_epoch),
            _partitions(transaction.topics),
            verify_only=bool(transaction.verify_only),
        )
        results.append(
            module.AddPartitionsToTxnResult(
                transactional_id=transaction.transactional_id,
                topic_results=_results(module, codes, request.version),
            )
        )
    return build(
        module.AddPartitionsToTxnResponse,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode(0),
        results_by_transaction=tuple(results),
    )


def _add(
    request: Request,
    transactional_id: str,
    producer_id: int,
    epoch: int,
    partitions: list[TopicPartition],
    *,
    verify_only: bool,
) -> dict[TopicPartition, int]:
    code = request.forced_error or not_coordinator(request, transactional_id, TRANSACTION)
    if code:
        return dict.fromkeys(partitions, code)
    topics = request.cluster.topics
    unknown = {
        (topic, index)
        for topic, index in partitions
        if topic not in topics or not 0 <= index < len(topics[topic].partitions)
    }
    if unknown:
        return {
            tp: UNKNOWN_TOPIC_OR_PARTITION if tp in unknown else OPERATION_NOT_ATTEMPTED
            for tp in partitions
        }
    coordinator = request.cluster.transactions
    if verify_only:
        return coordinator.verify_partitions(transactional_id, producer_id, epoch, partitions)
    code = coordinator.add_partitions(transactional_id, producer_id, epoch, partitions)
    return dict.fromkeys(partitions, code)


def _partitions(topics: Iterable[Any]) -> list[TopicPartition]:
    return [(str(topic.name), int(index)) for topic in topics for index in topic.partitions]


def _results(module: Any, codes: dict[TopicPartition, int], version: int) -> tuple[Any, ...]:
    by_topic: dict[str, list[Any]] = {}
    for (topic, index), code in codes.items():
        code = fenced_for_version(code, version, _FIRST_WITH_PRODUCER_FENCED)
        by_topic.setdefault(topic, []).append(
            module.AddPartitionsToTxnPartitionResult(
                partition_index=index, partition_error_code=ErrorCode(code)
            )
        )
    return tuple(
        module.AddPartitionsToTxnTopicResult(name=topic, results_by_partition=tuple(results))
        for topic, results in by_topic.items()
    )
