"""One partition's batch: its records' encoding, their futures, and its send attempts."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from asyncproducer._compression_worker import OFFLOAD_BYTES
from asyncproducer._futures import complete, fail, mark_retrieved, set_results
from asyncproducer._native import speedups
from asyncproducer._types import Header, ProducerRecord, RecordMetadata, TopicPartition
from asyncproducer.errors import KafkaError, fresh_copy
from asyncproducer.interceptors import InterceptorChain
from asyncproducer.protocol.batch_records import BatchRecords
from asyncproducer.protocol.compression import CompressionType, compress, compressed_size_bound
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE, record_size, seal_batch
from asyncproducer.protocol.records import decode_batches, max_records_size, rewrite_producer_state

logger = logging.getLogger("asyncproducer.producer")

DeliveryCallback = Callable[[RecordMetadata | None, BaseException | None], object]
Hooks = tuple[DeliveryCallback | None, ProducerRecord | None]
"""A record's ``on_delivery`` callback and the record its interceptors saw (either None)."""

Record = tuple[int, bytes | None, bytes | None, Sequence[Header]]
"""A record as a batch takes it: (timestamp, serialized key, serialized value, headers)."""
Sink = tuple[int, list[Any], int, int]
"""(index of the first record in the batch, results list, its first slot, record count)."""


def _fill_sinks(sinks: list[Sink], outcomes: list[Any]) -> int:
    """Each sink's outcomes into its slots; how many that reported (``_speedups``'s
    ``fill_sinks`` where it built)."""
    reported = 0
    for first, results, slot, count in sinks:
        results[slot : slot + count] = outcomes[first : first + count]
        reported += count
    return reported


fill_sinks: Callable[[list[Sink], list[Any]], int] = (
    _fill_sinks if speedups is None else speedups.fill_sinks
)

RECORD_OVERHEAD = 320
"""Bytes of ``buffer_memory`` charged per record on top of its encoded bytes: what a
record waiting in a batch costs in Python objects (its future, its timestamp and sizes,
their list slots). The scale benchmark's broker stall measured ~220-330 bytes per record
beyond the encoded bytes when batches kept their records as Python objects until full;
without this charge a stalled producer of 100-byte records held 3x ``buffer_memory``."""
RECORDS_PER_CHARGE = 16
"""A new batch pays up front for the overhead of as many records as its partition's last
batch held, at least 16 (at most as many as fit); then, each time it holds as many as it
paid for, for as many again (at most as many as still fit). A partition with steady
traffic pays once per batch, as many records as it will hold; one with few records a
batch (one of many partitions or topics) holds ~21 KiB of ``buffer_memory`` at 16 KiB
``batch_size``, not the ~64 KiB that every 100-byte record that could fit would cost."""

_ONE_BYTE_OFFSETS = 64
"""Records whose offset delta is a one-byte varint (zigzag 0 to 63)."""

Charge = Callable[[int], bool]
"""Reserves more bytes of ``buffer_memory`` if it can, at once (``BufferPool.try_reserve``)."""

Offload = Callable[["ProducerBatch", bytes | bytearray], None]
"""Compresses a batch's encoded records off the event loop (``CompressionWorker.submit``)."""


class BatchState(enum.Enum):
    """Where a batch is in its life. Facts that outlive a state are kept beside it:
    ``possibly_written`` (an attempt ended without a definite answer), ``sequence_reset``
    (re-stamped since it was sent), ``awaited`` (a send_batch() call waits for it)."""

    QUEUED = "queued"
    """In its partition's queue, never sent; it takes records until it is closed."""
    SENDING = "sending"
    """Drained into a request that is not written yet (its connection may be opening)."""
    AWAITING_RESPONSE = "awaiting response"
    """Its request is written (or being written) and not yet answered."""
    REQUEUED = "requeued"
    """Back in its queue after an attempt, waiting out its backoff (halves of a split too)."""
    SPLIT = "split"
    """Replaced by two halves (final)."""
    COMPLETE = "complete"
    """Every record acknowledged (final)."""
    FAILED = "failed"
    """Every record failed: an error, its delivery timeout, or the producer stopping (final)."""


BATCH_TRANSITIONS: Final[dict[BatchState, frozenset[BatchState]]] = {
    BatchState.QUEUED: frozenset({BatchState.SENDING, BatchState.FAILED}),
    BatchState.SENDING: frozenset(
        {BatchState.AWAITING_RESPONSE, BatchState.REQUEUED, BatchState.FAILED}
    ),
    BatchState.AWAITING_RESPONSE: frozenset(
        {
            BatchState.SENDING,  # the write failed before a byte left: not sent after all
            BatchState.REQUEUED,
            BatchState.SPLIT,
            BatchState.COMPLETE,
            BatchState.FAILED,
        }
    ),
    BatchState.REQUEUED: frozenset({BatchState.SENDING, BatchState.FAILED}),
    BatchState.SPLIT: frozenset(),
    BatchState.COMPLETE: frozenset(),
    BatchState.FAILED: frozenset(),
}
"""From each state, the states a batch may move to (``ProducerBatch.move_to``)."""
_FINAL: Final = frozenset({BatchState.SPLIT, BatchState.COMPLETE, BatchState.FAILED})


def batch_reservation(
    batch_size: int, first: Record, buffer_memory: int, expected: int = RECORDS_PER_CHARGE
) -> tuple[int, int]:
    """What a new batch reserves, and for how many records' overhead: room for its encoded
    records, and the overhead of as many records as fit if they are like its ``first``, up
    to ``expected`` (the partition's last batch's count) or :data:`RECORDS_PER_CHARGE`,
    whichever is more (more are paid for as they come); never more than all of
    ``buffer_memory`` (a record may be as large as that: it then gets the whole buffer)."""
    _, key, value, headers = first
    alone = record_size(0, 0, key, value, headers)  # exact: the first's deltas are 0
    room = max(batch_size, BATCH_HEADER_SIZE + alone)
    # Later records differ only in their deltas: offset deltas from 64 on take two bytes
    # (timestamp deltas, one below 64 ms). Sized by the send path's upper bound instead,
    # 100-byte records were paid for 124 at a time of the 148 that fit, and each batch
    # went back to the Python path twice to pay for the rest.
    budget = batch_size - BATCH_HEADER_SIZE
    if budget <= _ONE_BYTE_OFFSETS * alone:
        records = max(1, budget // alone)
    else:
        records = _ONE_BYTE_OFFSETS + (budget - _ONE_BYTE_OFFSETS * alone) // (alone + 1)
    records = min(records, max(expected, RECORDS_PER_CHARGE))
    reserved = room + records * RECORD_OVERHEAD
    if reserved > buffer_memory:
        reserved = buffer_memory
        records = max(1, (buffer_memory - room) // RECORD_OVERHEAD)
    return reserved, records


class ProducerBatch(BatchRecords):
    """A batch of one partition: its records (appended through :class:`BatchRecords`,
    which encodes them), their futures and hooks, and its send attempts."""

    __slots__ = (
        "attempts",
        "awaited",
        "base_sequence",
        "charge",
        "compressing",
        "compression",
        "compression_level",
        "created_ms",
        "done_callbacks",
        "hooks",
        "last_error",
        "offload",
        "order",
        "partition",
        "payload",
        "possibly_written",
        "producer_epoch",
        "producer_id",
        "records",
        "reserved",
        "retry_at_ms",
        "sequence_reset",
        "state",
        "topic",
        "transactional",
        "yielded",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        reserved: int,
        now_ms: float,
        *,
        batch_size: int,
        compression: CompressionType = CompressionType.NONE,
        compression_level: int | None = None,
        charge: Charge | None = None,
        record_capacity: int = 1,
        offload: Offload | None = None,
    ) -> None:
        # The encoded (uncompressed) record bytes that fit: see RecordBatchBuilder's size
        # rule; and the records whose overhead ``reserved`` covers (RECORD_OVERHEAD).
        super().__init__(
            max_records_size(compression, batch_size),
            record_capacity if charge is not None else 1 << 62,
        )
        self.topic = topic
        self.partition = partition
        self.reserved = reserved
        """Bytes of buffer_memory this batch holds until it completes."""
        self.charge = charge
        """Where it reserves more for more records; None: it does not account for them."""
        self.created_ms = now_ms
        self.compression = compression
        self.compression_level = compression_level
        self.records: bytes | bytearray | None = None
        """The encoded (and compressed) records, from when the batch is full until sealed."""
        self.offload = offload
        """Where records too large to compress on the event loop go (see
        _compression_worker); None: compressed where sealed, whatever their size."""
        self.compressing = False
        """Its records are being compressed off the loop: QUEUED, neither drained nor
        riding along until they come back (``compressed()``)."""
        self.hooks: dict[int, Hooks] | None = None
        """By record index: callbacks and interceptors to tell (rare, so not per record)."""
        self.payload: bytes | None = None
        """The encoded batch, once drained (kept for retries)."""
        self.awaited = False
        """A send_batch() call that put records in it waits for it, with all its records
        enqueued: it is sendable at once, not after linger_ms (as in a flush)."""
        self.state = BatchState.QUEUED
        self.attempts = 0
        self.retry_at_ms = 0.0
        self.last_error: BaseException | None = None
        """Why the last attempt failed (reported if the batch then expires)."""
        self.done_callbacks: list[Callable[[], object]] | None = None
        self.order: tuple[int, int] | None = None
        """(drain number, index of its first record in the batch first drained): the
        partition order of batches already sent once, kept by retries and splits."""
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
        self.transactional = False
        """Part of a transaction (stamped by a transactional producer): its header says so."""
        self.yielded = False
        """Full, and a send() yielded to the loop on finding it so: the others that find it
        full open the next batch without (``SendPath._append_to_new_batch``)."""

    def move_to(self, state: BatchState) -> None:
        """The one way a batch changes state: by :data:`BATCH_TRANSITIONS`."""
        if state not in BATCH_TRANSITIONS[self.state]:
            raise AssertionError(
                f"batch of {self.topic_partition}: no transition from {self.state.value} "
                f"to {state.value}"
            )
        self.state = state

    @property
    def done(self) -> bool:
        """Every record's future is complete (or, split, its halves took them over)."""
        return self.state in _FINAL

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def try_append(self, future: Any, record: Record) -> bool:
        """Keep the record if it fits (the first always does); False once the batch is
        full, which encodes it: later records go to a new batch."""
        if self.append(future, *record):
            return True
        if self.full:
            return False
        # At record_capacity: pay for more records, if this one fits at all.
        if self.record_count >= self.record_capacity:
            room = self._room_for(record)
            if room and self._charge_more(room) and self.append(future, *record):
                return True
        self._encode_records()  # no room left, or buffer_memory is short
        return False

    def _room_for(self, record: Record) -> int:
        """How many more records like ``record`` fit in the bytes left (0: not even it)."""
        timestamp, key, value, headers = record
        delta = timestamp - self.base_timestamp
        size = record_size(delta, self.record_count, key, value, headers)
        return max(0, (self.max_records_size - self.records_size) // size)

    def _charge_more(self, room: int) -> bool:
        """Reserve the overhead of as many more records as the batch holds (at least
        :data:`RECORDS_PER_CHARGE`, at most ``room``), if ``buffer_memory`` has it now
        (never waiting: a new batch waits instead)."""
        more = min(max(RECORDS_PER_CHARGE, self.record_capacity), room)
        if self.charge is None or not self.charge(more * RECORD_OVERHEAD):
            return False
        self.reserved += more * RECORD_OVERHEAD
        self.record_capacity += more
        return True

    def add_hooks(self, callback: DeliveryCallback | None, record: ProducerRecord | None) -> None:
        """Attach hooks to the record just appended."""
        if self.hooks is None:
            self.hooks = {}
        self.hooks[self.record_count - 1] = (callback, record)

    def add_sink(self, first: int, results: list[Any], slot: int, count: int) -> None:
        """Records ``first`` to ``first + count - 1`` of this batch (appended with no
        future) report to ``results[slot:slot + count]``: their RecordMetadata, or the
        error they failed with. (``Appender.append_each`` appends the same tuple in C.)"""
        if self.sinks is None:
            self.sinks = []
        self.sinks.append((first, results, slot, count))

    @property
    def estimated_size(self) -> int:
        """Bytes of the encoded batch: exact once closed, an upper bound before."""
        if self.payload is not None:
            return len(self.payload)
        if self.records is not None:
            return BATCH_HEADER_SIZE + len(self.records)
        return BATCH_HEADER_SIZE + compressed_size_bound(self.compression, self.records_size)

    def _encode_records(self) -> None:
        """Finish (and compress) the records, once; later appends go to a new batch. Done
        as soon as the batch is full, so that a batch waiting to be sent (a slow or
        stalled broker) holds its records as one bytes object (the pure-Python records
        encode them only now). Records too large to compress on the event loop go to the
        worker thread (``offload``), and the batch waits for them."""
        if self.full:
            return
        records = self.finish()
        if self.compression is CompressionType.NONE:
            self.records = records
        elif self.offload is not None and len(records) >= OFFLOAD_BYTES[self.compression]:
            self.compressing = True
            self.offload(self, records)
        else:
            self.records = compress(self.compression, records, self.compression_level)

    @property
    def compresses_off_the_loop(self) -> bool:
        """Still open, and sealing it now would hand its records to the worker thread."""
        return (
            self.offload is not None
            and not self.full
            and self.compression is not CompressionType.NONE
            and self.records_size >= OFFLOAD_BYTES[self.compression]
        )

    def seal_off_the_loop(self) -> None:
        """Seal a batch that is ready to go (``compresses_off_the_loop``): its records go
        to the worker thread now, and it is drainable when they are back."""
        self._encode_records()

    def compressed(self, records: bytes) -> None:
        """The worker thread's compressed records (ignored if the batch ended meanwhile)."""
        self.compressing = False
        if not self.done:
            self.records = records

    def close(self) -> bytes:
        """The encoded batch, with its idempotence fields (sealed once)."""
        if self.payload is None:
            self._encode_records()
            assert self.records is not None
            self.payload = seal_batch(
                self.records,
                count=self.record_count,
                base_timestamp=self.base_timestamp,
                max_timestamp=self.max_timestamp,
                compression=self.compression,
                producer_id=self.producer_id,
                producer_epoch=self.producer_epoch,
                base_sequence=self.base_sequence,
                is_transactional=self.transactional,
            )
            self.records = None
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

    def split(self, batch_size: int) -> list[ProducerBatch]:
        """Two batches holding this (encoded, multi-record) batch's records in order, for
        a broker that refused it as too large (MESSAGE_TOO_LARGE). The halves keep its
        creation time, attempts, position in the partition and sequence range, its
        records' futures, sinks and hooks, and its waiters (called when both are done);
        the first takes over its buffer memory."""
        assert self.payload is not None
        assert self.order is not None
        (decoded,) = decode_batches(self.payload)
        count = len(self.futures)
        middle = count // 2
        halves = []
        for start, stop in ((0, middle), (middle, count)):
            half = ProducerBatch(
                self.topic,
                self.partition,
                self.reserved if start == 0 else 0,
                self.created_ms,
                batch_size=batch_size,
                compression=self.compression,
                compression_level=self.compression_level,
            )
            for index in range(start, stop):
                record = decoded.records[index]
                # Every record fits: the whole batch did, in a batch of the same size.
                if not half.append(
                    self.futures[index], record.timestamp, record.key, record.value,
                    tuple(record.headers),
                ):  # fmt: skip
                    raise AssertionError(f"record {index} of a split batch did not fit")
                if self.hooks is not None and index in self.hooks:
                    half.add_hooks(*self.hooks[index])
            for first, results, slot, sink_count in self.sinks or ():
                low, high = max(first, start), min(first + sink_count, stop)
                if low < high:
                    half.add_sink(low - start, results, slot + low - first, high - low)
            half._encode_records()
            half.state = BatchState.REQUEUED  # it was sent, as this batch
            half.attempts = self.attempts
            half.possibly_written = self.possibly_written
            half.last_error = self.last_error
            half.order = (self.order[0], self.order[1] + start)
            if self.base_sequence >= 0:
                half.producer_id, half.producer_epoch = self.producer_id, self.producer_epoch
                half.base_sequence = (self.base_sequence + start) % 2**31
                half.transactional = self.transactional
            halves.append(half)
        if self.done_callbacks:
            # Whoever waits for this batch (flush, send_batch) waits for both halves.
            waiters, self.done_callbacks = self.done_callbacks, None
            left = len(halves)

            def half_done() -> None:
                nonlocal left
                left -= 1
                if not left:
                    for waiter in waiters:
                        waiter()

            for half in halves:
                half.add_done_callback(half_done)
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
        self.move_to(BatchState.COMPLETE)
        metadata = self.metadata(
            RecordMetadata, self.topic, self.partition, base_offset, log_append_time
        )
        self._report(metadata, failed=False)
        self._finished(metadata, None, chain)

    def fail(self, error: BaseException, chain: InterceptorChain) -> None:
        """Fail every record with (a fresh copy of) ``error``, in order."""
        self.move_to(BatchState.FAILED)
        errors = []
        for _ in self.futures:
            exception = fresh_copy(error)
            if isinstance(exception, KafkaError):
                exception.possibly_written = self.possibly_written
            errors.append(exception)
        self._report(errors, failed=True)
        self._finished(None, errors, chain)

    def _report(self, outcomes: list[Any], failed: bool) -> None:
        """Each record's outcome (its metadata, or its error if ``failed``) to its future
        or its sink."""
        if self.sinks is not None:
            if fill_sinks(self.sinks, outcomes) == len(outcomes):
                return  # only send_batch() records: no future to look for
        elif not failed:
            set_results(self.futures, outcomes)  # the hot path: futures only, all in C
            return
        settle = fail if failed else complete
        for future, outcome in zip(self.futures, outcomes, strict=True):
            if future is not None:
                settle(future, outcome)

    def _finished(
        self,
        metadata: list[RecordMetadata] | None,
        errors: list[BaseException] | None,
        chain: InterceptorChain,
    ) -> None:
        # Every future is done before any user code runs: a callback or interceptor that
        # raises (even KeyboardInterrupt) cannot leave a record's future pending.
        waiters, self.done_callbacks = self.done_callbacks, None
        for waiter in waiters or ():
            waiter()
        if self.hooks is None:
            return
        for index, (callback, record) in sorted(self.hooks.items()):
            outcome = metadata[index] if metadata is not None else None
            error = errors[index] if errors is not None else None
            if callback is not None:
                _run_callback(callback, outcome, error)
                if error is not None:  # told: its future need not warn nobody asked
                    mark_retrieved(self.futures[index])
            if record is not None:
                if outcome is None:  # failed: the topic and partition, -1 for the rest (Java)
                    outcome = RecordMetadata(self.topic, self.partition, -1, -1, -1, -1)
                chain.on_acknowledgement(outcome, error)


def _run_callback(
    callback: DeliveryCallback, metadata: RecordMetadata | None, error: BaseException | None
) -> None:
    try:
        callback(metadata, error)
    except Exception:
        # A user's callback must not stop the other records' completion (Java logs it too).
        logger.exception("on_delivery callback %r raised", callback)
