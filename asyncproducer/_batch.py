"""One partition's batch: its records' encoding, their futures, and its send attempts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from asyncproducer._futures import fail
from asyncproducer._types import Header, ProducerRecord, RecordMetadata, TopicPartition
from asyncproducer.errors import KafkaError, fresh_copy
from asyncproducer.interceptors import InterceptorChain
from asyncproducer.protocol.records import (
    RecordBatchBuilder,
    decode_batches,
    rewrite_producer_state,
)

logger = logging.getLogger("asyncproducer.producer")

DeliveryCallback = Callable[[RecordMetadata | None, BaseException | None], object]

# What a batch keeps per record to complete it: (future, on_delivery callback or None,
# timestamp, serialized key size, serialized value size, the record for interceptors or
# None). A tuple: the cheapest thing to build on the send() path.
Thunk = tuple[Any, DeliveryCallback | None, int, int, int, ProducerRecord | None]


class ProducerBatch:
    __slots__ = (
        "attempts",
        "awaiting_response",
        "base_sequence",
        "builder",
        "created_ms",
        "done",
        "done_callbacks",
        "full",
        "has_hooks",
        "in_flight",
        "last_error",
        "order",
        "partition",
        "payload",
        "possibly_written",
        "producer_epoch",
        "producer_id",
        "reserved",
        "retry_at_ms",
        "sequence_reset",
        "thunks",
        "topic",
    )

    def __init__(
        self, topic: str, partition: int, builder: RecordBatchBuilder, reserved: int, now_ms: float
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = builder
        self.reserved = reserved
        """Bytes of buffer_memory this batch holds until it completes."""
        self.created_ms = now_ms
        self.thunks: list[Thunk] = []
        self.has_hooks = False
        """A record has an ``on_delivery`` callback or interceptors to tell."""
        self.full = False
        self.payload: bytes | None = None
        """The encoded batch, once drained (kept for retries)."""
        self.attempts = 0
        self.retry_at_ms = 0.0
        self.in_flight = False
        self.last_error: BaseException | None = None
        """Why the last attempt failed (reported if the batch then expires)."""
        self.done = False
        """Every record's future is complete."""
        self.done_callbacks: list[Callable[[], object]] | None = None
        self.order: tuple[int, int] | None = None
        """(drain number, index of its first record in the batch first drained): the
        partition order of batches already sent once, kept by retries and splits."""
        self.awaiting_response = False
        """Its Produce request is written (or being written) and not yet answered."""
        self.possibly_written = False
        """An attempt ended without a definite answer (connection lost after the write,
        request timed out, expired in flight): the broker may hold these records."""
        # Idempotence: set when first drained (see _idempotence); -1 when not idempotent.
        self.producer_id = -1
        self.producer_epoch = -1
        self.base_sequence = -1
        self.sequence_reset = False
        """Re-stamped (epoch bump, or a gap closed) since it was last sent: an error for
        that send answers for the old stamp (Java's "reopened")."""

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def record_count(self) -> int:
        return len(self.thunks)

    def try_append(
        self,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        thunk: Thunk,
    ) -> bool:
        if self.full or self.builder.try_append(timestamp, key, value, headers) is None:
            self.full = True
            return False
        self.thunks.append(thunk)
        if thunk[1] is not None or thunk[5] is not None:
            self.has_hooks = True
        return True

    @property
    def estimated_size(self) -> int:
        return len(self.payload) if self.payload is not None else self.builder.estimated_size

    def close(self) -> bytes:
        """Encode the batch (once), with its idempotence fields; later appends go to a new
        batch."""
        if self.payload is None:
            self.payload = self.builder.build(
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                base_sequence=self.base_sequence,
            )
            self.full = True
        return self.payload

    def set_producer_state(self, producer_id: int, epoch: int, base_sequence: int) -> None:
        """Stamp the batch (before ``close()``), or re-stamp its encoded bytes."""
        self.producer_id, self.producer_epoch = producer_id, epoch
        self.base_sequence = base_sequence
        if self.payload is not None:
            self.payload = rewrite_producer_state(
                self.payload,
                producer_id=producer_id,
                producer_epoch=epoch,
                base_sequence=base_sequence,
            )

    def split(self, new_builder: Callable[[], RecordBatchBuilder]) -> list[ProducerBatch]:
        """Two batches holding this (encoded, multi-record) batch's records in order, for
        a broker that refused it as too large (MESSAGE_TOO_LARGE). The halves keep its
        creation time, attempts, position in the partition and sequence range; the first
        takes over its buffer memory."""
        assert self.payload is not None
        assert self.order is not None
        (decoded,) = decode_batches(self.payload)
        middle = len(self.thunks) // 2
        halves = []
        for start, stop in ((0, middle), (middle, len(self.thunks))):
            builder = new_builder()
            reserved = self.reserved if start == 0 else 0
            half = ProducerBatch(self.topic, self.partition, builder, reserved, self.created_ms)
            for record, thunk in zip(
                decoded.records[start:stop], self.thunks[start:stop], strict=True
            ):
                # Every record fits: the whole batch did, in a builder of the same size.
                builder.try_append(record.timestamp, record.key, record.value, record.headers)
                half.thunks.append(thunk)
            half.full = True
            half.has_hooks = self.has_hooks
            half.attempts = self.attempts
            half.possibly_written = self.possibly_written
            half.last_error = self.last_error
            half.order = (self.order[0], self.order[1] + start)
            if self.base_sequence >= 0:
                half.producer_id, half.producer_epoch = self.producer_id, self.producer_epoch
                half.base_sequence = (self.base_sequence + start) % 2**31
            halves.append(half)
        return halves

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        if self.done_callbacks is None:
            self.done_callbacks = [callback]
        else:
            self.done_callbacks.append(callback)

    # ------------------------------------------------------------------ completion

    def complete(self, base_offset: int, log_append_time: int, chain: InterceptorChain) -> None:
        """Complete every record, in order: offset base+i (-1 if unknown, as for acks=0),
        and the broker's LogAppendTime when the topic uses it (-1 otherwise)."""
        topic, partition = self.topic, self.partition
        outcomes: list[tuple[RecordMetadata | None, BaseException | None]] = []
        add_outcome = outcomes.append
        new_metadata = RecordMetadata
        offset = base_offset if base_offset >= 0 else -1
        step = 1 if base_offset >= 0 else 0
        hooks = self.has_hooks
        for future, _, timestamp, key_size, value_size, _ in self.thunks:
            metadata = new_metadata(
                topic,
                partition,
                offset,
                log_append_time if log_append_time >= 0 else timestamp,
                key_size,
                value_size,
            )
            offset += step
            if not future.done():  # the user may have cancelled an asyncio future
                future.set_result(metadata)
            if hooks:
                add_outcome((metadata, None))
        self._finished(outcomes, chain)

    def fail(self, error: BaseException, chain: InterceptorChain) -> None:
        """Fail every record with (a fresh copy of) ``error``, in order."""
        outcomes: list[tuple[RecordMetadata | None, BaseException | None]] = []
        for future, *_ in self.thunks:
            exception = fresh_copy(error)
            if isinstance(exception, KafkaError):
                exception.possibly_written = self.possibly_written
            fail(future, exception)
            outcomes.append((None, exception))
        self._finished(outcomes, chain)

    def _finished(
        self,
        outcomes: list[tuple[RecordMetadata | None, BaseException | None]],
        chain: InterceptorChain,
    ) -> None:
        # Every future is done before any user code runs: a callback or interceptor that
        # raises (even KeyboardInterrupt) cannot leave a record's future pending.
        self.done = True
        waiters, self.done_callbacks = self.done_callbacks, None
        for waiter in waiters or ():
            waiter()
        if not self.has_hooks:
            return
        for (_, callback, _, _, _, record), (metadata, error) in zip(
            self.thunks, outcomes, strict=True
        ):
            if callback is not None:
                _run_callback(callback, metadata, error)
            if record is not None:
                chain.on_acknowledgement(metadata, error)


def _run_callback(
    callback: DeliveryCallback, metadata: RecordMetadata | None, error: BaseException | None
) -> None:
    try:
        callback(metadata, error)
    except Exception:
        # A user's callback must not stop the other records' completion (Java logs it too).
        logger.exception("on_delivery callback %r raised", callback)
