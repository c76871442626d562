"""Produce: validate, apply idempotence rules, and append record batches to partition logs.

Only a partition's leader accepts its batches. Every batch is decoded with the protocol
layer's ``decode_batches`` (CRC and structure; a failure is CORRUPT_MESSAGE), and for
idempotent producers (producer id >= 0) the broker-side sequence rules of Kafka's
``ProducerStateManager`` apply per producer id and partition.

A transactional batch (attribute bit 4) is checked with the transaction coordinator first,
as Kafka 4's leaders do (KIP-890): before Produce v12 the partition must already be in the
transaction (verification; refused with INVALID_TXN_STATE, or TRANSACTION_ABORTABLE from
v11, whose clients know it), from v12 (transaction version 2) the append adds it. The
coordinator's PRODUCER_FENCED reaches the producer as INVALID_PRODUCER_EPOCH, and its
"try later" errors as NOT_ENOUGH_REPLICAS, the mapping of Kafka's
``AddPartitionsToTxnManager`` and ``ReplicaManager``.
"""

from __future__ import annotations

import datetime
import struct
from typing import Any

from kio.schema.errors import ErrorCode

from asyncproducer.errors import CorruptRecordError, UnsupportedCompressionTypeError
from asyncproducer.protocol.records import DecodedBatch, decode_batches
from asyncproducer.testing.fake import _txn_coordinator as txn
from asyncproducer.testing.fake._coordinators import TRANSACTION
from asyncproducer.testing.fake.cluster import (
    BatchMetadata,
    ClusterState,
    PartitionState,
    ProducerPartitionState,
    StoredBatch,
    StoredRecord,
)
from asyncproducer.testing.fake.handlers import Request, build, response_module

CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
MESSAGE_TOO_LARGE = 10
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
DUPLICATE_SEQUENCE_NUMBER = 46
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87
_FIRST_ADDING_VERSION = 12  # KIP-890 part 2: the append adds the partition
_FIRST_WITH_TRANSACTION_ABORTABLE = 11
# The coordinator's "not now" answers, which a Produce reports as retriable
# NOT_ENOUGH_REPLICAS (Kafka's ReplicaManager after a failed verification).
_RETRY_LATER = frozenset(
    {txn.CONCURRENT_TRANSACTIONS, txn.COORDINATOR_NOT_AVAILABLE, txn.NOT_COORDINATOR}
)

_SEQUENCE_MODULUS = 2**31  # sequences wrap at Integer.MAX_VALUE, as in Kafka
_BATCH_LENGTH = struct.Struct(">q i")
_LOG_OVERHEAD = 12  # base offset + batch length, the part not counted in batchLength


class _Rejected(Exception):
    """A partition's batches are refused with ``code`` (``offset`` for duplicates)."""

    def __init__(self, code: int, message: str, offset: int = -1) -> None:
        super().__init__(message)
        self.code = code
        self.offset = offset


def handle(request: Request) -> Any:
    module = response_module(request.api_key, request.version)
    topics = []
    for topic_data in request.body.topic_data:
        partitions = tuple(
            _partition_response(module, request, str(topic_data.name), data)
            for data in topic_data.partition_data
        )
        topics.append(
            module.TopicProduceResponse(name=topic_data.name, partition_responses=partitions)
        )
    if int(request.body.acks) == 0:
        # acks=0: Kafka writes and sends nothing back; the client does not wait for it.
        return None
    return module.ProduceResponse(responses=tuple(topics), throttle_time=datetime.timedelta(0))


def _partition_response(module: Any, request: Request, topic: str, data: Any) -> Any:
    index = int(data.index)
    try:
        base_offset = _append(request, topic, index, data.records)
        code, message = 0, None
    except _Rejected as rejected:
        code, message, base_offset = rejected.code, str(rejected), rejected.offset
    extra: dict[str, Any] = {}
    if code == NOT_LEADER_OR_FOLLOWER and hasattr(module, "LeaderIdAndEpoch"):
        # v10+ (KIP-951): tell the client the new leader so it need not ask Metadata.
        partition = request.cluster.partition(topic, index)
        extra["current_leader"] = module.LeaderIdAndEpoch(
            leader_id=partition.leader, leader_epoch=partition.leader_epoch
        )
    return build(
        module.PartitionProduceResponse,
        index=index,
        error_code=ErrorCode(code),
        base_offset=base_offset,
        log_append_time=None,  # CreateTime topics answer -1
        log_start_offset=0,
        record_errors=(),
        error_message=message,
        **extra,
    )


def _append(request: Request, topic: str, index: int, records: bytes | None) -> int:
    """Append the partition's batches; returns the first one's base offset."""
    cluster = request.cluster
    if request.forced_error:
        raise _Rejected(request.forced_error, "injected by FakeCluster.fail_next")
    try:
        partition = cluster.partition(topic, index)
    except KeyError as exc:
        raise _Rejected(UNKNOWN_TOPIC_OR_PARTITION, str(exc.args[0])) from None
    if partition.leader != request.broker:
        raise _Rejected(
            NOT_LEADER_OR_FOLLOWER,
            f"broker {request.broker} is not the leader of {topic}-{index} "
            f"(broker {partition.leader} is)",
        )
    blob = bytes(records or b"")
    try:
        batches = decode_batches(blob)
    except CorruptRecordError as exc:
        raise _Rejected(CORRUPT_MESSAGE, str(exc)) from None
    except UnsupportedCompressionTypeError as exc:
        raise _Rejected(UNSUPPORTED_COMPRESSION_TYPE, str(exc)) from None
    if not batches:
        raise _Rejected(CORRUPT_MESSAGE, f"no record batch for {topic}-{index}")
    raws = _split(blob)
    limit = cluster.topics[topic].max_message_bytes
    for raw in raws:
        if len(raw) > limit:
            raise _Rejected(
                MESSAGE_TOO_LARGE,
                f"a batch of {len(raw)} bytes for {topic}-{index} is larger than the "
                f"topic's max.message.bytes ({limit})",
            )
    if any(batch.is_control for batch in batches):
        # Only a transaction coordinator writes markers (Kafka's LogValidator).
        raise _Rejected(INVALID_RECORD, f"{topic}-{index}: clients may not write control batches")
    transactional = next((b for b in batches if b.is_transactional), None)
    if transactional is not None:
        _check_transaction(request, topic, index, transactional)
    first_offset = -1
    for batch, raw in zip(batches, raws, strict=True):
        if not batch.is_transactional and batch.producer_id in partition.txn.open:
            # Kafka's ProducerAppendInfo: a producer with a transaction open here must
            # write transactionally until it ends.
            raise _Rejected(
                txn.INVALID_TXN_STATE,
                f"producer {batch.producer_id} has a transaction open on {topic}-{index}: "
                "expected a transactional batch",
            )
        if batch.producer_id >= 0:
            _check_sequence(cluster, topic, index, batch)
        offset = _store(partition, batch, raw)
        if batch.producer_id >= 0:
            _remember(cluster, topic, index, batch, offset)
        if first_offset < 0:
            first_offset = offset
    return first_offset


def _check_transaction(request: Request, topic: str, index: int, batch: DecodedBatch) -> None:
    """Raise _Rejected unless the transaction coordinator has ``topic-index`` in the
    batch producer's open transaction (or, for Produce v12+, adds it now)."""
    cluster = request.cluster
    transactional_id = getattr(request.body, "transactional_id", None)
    if transactional_id is None:
        # KafkaApis: transactional records need an authorized transactional id.
        raise _Rejected(
            txn.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            f"a transactional batch for {topic}-{index} in a Produce without a transactional id",
        )
    transactional_id = str(transactional_id)
    where = (topic, index)
    coordinator = cluster.transactions
    if cluster.placement.coordinator_of(transactional_id, TRANSACTION) not in cluster.live:
        code = txn.COORDINATOR_NOT_AVAILABLE
    elif request.version >= _FIRST_ADDING_VERSION:
        code = coordinator.add_partitions(
            transactional_id, batch.producer_id, batch.producer_epoch, [where]
        )
    else:
        code = coordinator.verify_partitions(
            transactional_id, batch.producer_id, batch.producer_epoch, [where]
        )[where]
    if not code:
        return
    if code == txn.PRODUCER_FENCED:
        code = INVALID_PRODUCER_EPOCH
    elif code in _RETRY_LATER:
        code = txn.NOT_ENOUGH_REPLICAS
    elif code == txn.TRANSACTION_ABORTABLE and request.version < _FIRST_WITH_TRANSACTION_ABORTABLE:
        code = txn.INVALID_TXN_STATE
    problem = {
        INVALID_PRODUCER_EPOCH: "a newer epoch of the producer exists (fenced)",
        txn.NOT_ENOUGH_REPLICAS: "the transaction coordinator cannot answer now",
        txn.INVALID_PRODUCER_ID_MAPPING: "the coordinator has another producer id for it",
    }.get(code, "the partition is not in its open transaction")
    raise _Rejected(
        code,
        f"{topic}-{index}, transactional id {transactional_id!r} (producer "
        f"{batch.producer_id}, epoch {batch.producer_epoch}): {problem}",
    )


def _split(blob: bytes) -> list[bytes]:
    """The bytes of each batch in ``blob`` (already validated by decode_batches)."""
    parts = []
    pos = 0
    while pos < len(blob):
        _, length = _BATCH_LENGTH.unpack_from(blob, pos)
        parts.append(blob[pos : pos + _LOG_OVERHEAD + length])
        pos += _LOG_OVERHEAD + length
    return parts


def _last_sequence(batch: DecodedBatch) -> int:
    return (batch.base_sequence + batch.last_offset_delta) % _SEQUENCE_MODULUS


def _check_sequence(cluster: ClusterState, topic: str, index: int, batch: DecodedBatch) -> None:
    """Raise _Rejected unless ``batch`` is the next one expected from its producer."""
    where = f"producer {batch.producer_id} on {topic}-{index}"
    current_epoch = cluster.producer_epochs.get(batch.producer_id, batch.producer_epoch)
    state = cluster.producers.get((batch.producer_id, topic, index))
    if batch.producer_epoch < max(current_epoch, state.epoch if state else -1):
        raise _Rejected(INVALID_PRODUCER_EPOCH, f"{where}: epoch {batch.producer_epoch} is stale")
    if state is None or batch.producer_epoch > state.epoch:
        # A new producer (or a bumped epoch) must start its sequence at 0.
        if batch.base_sequence != 0:
            code = UNKNOWN_PRODUCER_ID if state is None else OUT_OF_ORDER_SEQUENCE_NUMBER
            raise _Rejected(
                code,
                f"{where}: first sequence of epoch {batch.producer_epoch} is "
                f"{batch.base_sequence}, expected 0",
            )
        return
    for seen in state.recent:
        if seen.first_sequence == batch.base_sequence and seen.last_sequence == _last_sequence(
            batch
        ):
            raise _Rejected(
                DUPLICATE_SEQUENCE_NUMBER,
                f"{where}: batch {batch.base_sequence}..{seen.last_sequence} already "
                f"stored at offset {seen.base_offset}",
                seen.base_offset,
            )
    expected = (state.last_sequence + 1) % _SEQUENCE_MODULUS
    if batch.base_sequence != expected:
        raise _Rejected(
            OUT_OF_ORDER_SEQUENCE_NUMBER,
            f"{where}: sequence {batch.base_sequence}, expected {expected}",
        )


def _remember(
    cluster: ClusterState, topic: str, index: int, batch: DecodedBatch, offset: int
) -> None:
    key = (batch.producer_id, topic, index)
    state = cluster.producers.get(key)
    if state is None or batch.producer_epoch > state.epoch:
        state = cluster.producers[key] = ProducerPartitionState(
            epoch=batch.producer_epoch, last_sequence=-1
        )
    state.last_sequence = _last_sequence(batch)
    state.recent.append(BatchMetadata(batch.base_sequence, state.last_sequence, offset))


def _store(partition: PartitionState, batch: DecodedBatch, raw: bytes) -> int:
    base = partition.next_offset
    # Offsets are the partition's, not the producer's (which sends base offset 0): write
    # them into the stored bytes as a broker does. The CRC does not cover this field.
    stored = base.to_bytes(8, "big", signed=True) + raw[8:]
    last = base + batch.last_offset_delta
    partition.batches.append(StoredBatch(base_offset=base, last_offset=last, raw=stored))
    partition.next_offset = last + 1
    if batch.is_transactional:
        # The transaction's first offset here holds the last stable offset back.
        partition.txn.open.setdefault(batch.producer_id, base)
    for record in batch.records:
        delta = record.offset - batch.base_offset
        partition.records.append(
            StoredRecord(
                offset=base + delta,
                key=record.key,
                value=record.value,
                headers=record.headers,
                timestamp=record.timestamp,
                producer_id=batch.producer_id,
                producer_epoch=batch.producer_epoch,
                sequence=(batch.base_sequence + delta) % _SEQUENCE_MODULUS
                if batch.producer_id >= 0
                else -1,
                is_transactional=batch.is_transactional,
            )
        )
    return base
