"""Fetch: read stored batches back (v4-v12), so consumers and librdkafka work.

Not in the first brief, but needed: librdkafka enables record batch v2 ("MsgVer2") only on
a broker advertising Fetch v4+, and otherwise produces the old message format that no
modern broker (nor this fake) accepts. It also lets users test consumers against the fake.
The fake answers at once (no long poll): it holds no data that could arrive later in the
same request's lifetime worth waiting for, and an empty answer makes clients fetch again.

Transactions: every answer carries the partition's last stable offset (the first offset
of the oldest transaction still open, else the log end). ``isolation_level`` 1
(read_committed) gets nothing at or past it, and the aborted transactions overlapping what
it gets, so the consumer can drop their records; markers (control batches) are served
like any batch, as Kafka does, and consumers skip them.
"""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.testing.fake._txn_log import aborted_in_range, last_stable_offset
from asyncproducer.testing.fake.cluster import PartitionState
from asyncproducer.testing.fake.handlers import Request, build, response_module

_OFFSET_OUT_OF_RANGE = 1
_UNKNOWN_TOPIC_OR_PARTITION = 3
_NOT_LEADER_OR_FOLLOWER = 6
_READ_COMMITTED = 1


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    topics = tuple(
        module.FetchableTopicResponse(
            topic=topic.topic,
            partitions=tuple(
                _partition(module, request, str(topic.topic), p) for p in topic.partitions
            ),
        )
        for topic in request.body.topics
    )
    return build(
        module.FetchResponse,
        throttle_time=datetime.timedelta(0),
        error_code=ErrorCode(0),
        session_id=0,
        responses=topics,
    )


def _partition(module: Any, request: Request, topic: str, fetch: Any) -> Any:
    index = int(fetch.partition)
    code = request.forced_error
    partition: PartitionState | None = None
    if not code:
        try:
            partition = request.cluster.partition(topic, index)
        except KeyError:
            code = _UNKNOWN_TOPIC_OR_PARTITION
    if partition is not None and partition.leader != request.broker:
        code = _NOT_LEADER_OR_FOLLOWER
    offset = int(fetch.fetch_offset)
    if partition is not None and not code and not 0 <= offset <= partition.next_offset:
        code = _OFFSET_OUT_OF_RANGE
    if partition is None or code:
        return build(
            module.PartitionData,
            partition_index=index,
            error_code=ErrorCode(code),
            high_watermark=-1,
            last_stable_offset=-1,
            log_start_offset=-1,
            aborted_transactions=None,
            preferred_read_replica=-1,
            records=b"",
        )
    stable = last_stable_offset(partition)
    committed = int(getattr(request.body, "isolation_level", 0)) == _READ_COMMITTED
    limit = stable if committed else partition.next_offset
    records, end = _read(partition, offset, int(fetch.partition_max_bytes), limit)
    aborted = None
    if committed:
        aborted = tuple(
            module.AbortedTransaction(
                producer_id=entry.producer_id, first_offset=entry.first_offset
            )
            for entry in aborted_in_range(partition, offset, end)
        )
    return build(
        module.PartitionData,
        partition_index=index,
        error_code=ErrorCode(0),
        high_watermark=partition.next_offset,
        last_stable_offset=stable,
        log_start_offset=0,
        aborted_transactions=aborted,
        preferred_read_replica=-1,
        records=records,
    )


def _read(partition: PartitionState, offset: int, max_bytes: int, limit: int) -> tuple[bytes, int]:
    """Whole batches from the one holding ``offset``, up to ``max_bytes`` (at least one,
    as Kafka returns an oversized first batch so the consumer can make progress), none
    reaching ``limit``; and the offset after the last one returned."""
    out = bytearray()
    end = offset
    for batch in partition.batches:
        if batch.last_offset < offset:
            continue
        if batch.last_offset >= limit or (out and len(out) + len(batch.raw) > max_bytes):
            break
        out += batch.raw
        end = batch.last_offset + 1
    return bytes(out), end
