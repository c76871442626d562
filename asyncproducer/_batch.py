"""One partition's batch: its records' encoding, their futures, and its send attempts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from asyncproducer._futures import complete, fail
from asyncproducer._types import Header, ProducerRecord, RecordMetadata, TopicPartition
from asyncproducer.errors import fresh_copy
from asyncproducer.interceptors import InterceptorChain
from asyncproducer.protocol.records import RecordBatchBuilder

logger = logging.getLogger("asyncproducer.producer")

DeliveryCallback = Callable[[RecordMetadata | None, BaseException | None], object]

# What a batch keeps per record to complete it: (future, on_delivery callback or None,
# timestamp, serialized key size, serialized value size, the record for interceptors or
# None). A tuple: the cheapest thing to build on the send() path.
Thunk = tuple[Any, DeliveryCallback | None, int, int, int, ProducerRecord | None]

Stamp = Callable[[str, int, int], tuple[int, int, int]]
"""(topic, partition, record count) -> (producer id, epoch, base sequence)."""


class ProducerBatch:
    __slots__ = (
        "attempts",
        "builder",
        "created_ms",
        "done",
        "done_callbacks",
        "full",
        "in_flight",
        "last_error",
        "partition",
        "payload",
        "reserved",
        "retry_at_ms",
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
        if (
            self.payload is not None
            or self.builder.try_append(timestamp, key, value, headers) is None
        ):
            self.full = True
            return False
        self.thunks.append(thunk)
        return True

    def close(self, stamp: Stamp | None = None) -> bytes:
        """Encode the batch (once), with ``stamp(batch)`` giving its (producer id, epoch,
        base sequence) when the producer is idempotent; later appends go to a new batch."""
        if self.payload is None:
            if stamp is None:
                self.payload = self.builder.build()
            else:
                producer_id, epoch, sequence = stamp(self.topic, self.partition, len(self.thunks))
                self.payload = self.builder.build(
                    producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence
                )
            self.full = True
        return self.payload

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
        for index, (future, _, timestamp, key_size, value_size, _) in enumerate(self.thunks):
            metadata = RecordMetadata(
                topic,
                partition,
                base_offset + index if base_offset >= 0 else -1,
                log_append_time if log_append_time >= 0 else timestamp,
                key_size,
                value_size,
            )
            complete(future, metadata)
            outcomes.append((metadata, None))
        self._finished(outcomes, chain)

    def fail(self, error: BaseException, chain: InterceptorChain) -> None:
        """Fail every record with (a fresh copy of) ``error``, in order."""
        outcomes: list[tuple[RecordMetadata | None, BaseException | None]] = []
        for future, *_ in self.thunks:
            exception = fresh_copy(error)
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
