"""Idempotent producer state (pure): producer id and epoch, per-partition sequences, and
the rules that keep "exactly one copy, in order" through retries.

With a producer id from InitProducerId, every batch carries ``(producer_id, epoch,
base_sequence)``. The partition leader keeps the last five batches' sequences per
producer: a batch it already wrote is answered DUPLICATE_SEQUENCE_NUMBER (or its original
offset) instead of being written twice, and a batch whose sequence does not follow the
last one is refused with OUT_OF_ORDER_SEQUENCE_NUMBER. That lets up to five requests per
connection be in flight without reordering: if one fails, those behind it are refused
and retried after it. This module is the client half, Java's ``TransactionManager``
(idempotent part, KIP-360):

* sequences are assigned when a batch is first drained; a stamped batch is *in flight*
  for this module until it completes, including while it waits to be retried;
* a retried batch goes only when it is its partition's first in flight, so retries
  leave in sequence order (one request at a time until the partition has caught up);
* a batch the broker definitely refused (a non-retriable error) leaves a gap: the later
  in-flight batches of its partition are re-stamped down by its record count;
* a batch that failed while it *may* have been written (expired in flight) leaves its
  partition's sequence *unresolved*: no new batch goes there until the batches in flight
  show whether the broker has it; if not, the epoch is bumped;
* OUT_OF_ORDER_SEQUENCE_NUMBER for the batch right after the last acknowledged one, or
  UNKNOWN_PRODUCER_ID, means the broker lost state: the epoch is bumped (locally: the
  producer id is ours alone) and the partition's in-flight batches are re-stamped from
  sequence 0. Other partitions move to the new epoch when they have nothing in flight.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Final

from asyncproducer._batch import ProducerBatch
from asyncproducer._value import Value
from asyncproducer.errors import KafkaError, OutOfOrderSequenceNumberError, UnknownProducerIdError

logger = logging.getLogger("asyncproducer.producer")

_INT32_MAX = 2**31 - 1
_EPOCH_MAX = 2**15 - 1

TopicPartitionKey = tuple[str, int]


class SequenceVerdict(Value):
    """The idempotence rules' judgement of an error for a stamped batch."""

    __slots__ = ("bump_epoch", "lost_acknowledged", "retriable")
    _fields = ("retriable", "bump_epoch", "lost_acknowledged")

    retriable: bool
    bump_epoch: bool
    lost_acknowledged: bool
    """The broker refused the sequence right after the last acknowledged one: it lost
    records it had acknowledged."""

    def __init__(
        self, retriable: bool, bump_epoch: bool = False, lost_acknowledged: bool = False
    ) -> None:
        self.retriable = retriable
        self.bump_epoch = bump_epoch
        self.lost_acknowledged = lost_acknowledged


class ProducerIdAndEpoch(Value):
    __slots__ = ("epoch", "producer_id")
    _fields = ("producer_id", "epoch")

    producer_id: int
    epoch: int

    def __init__(self, producer_id: int, epoch: int) -> None:
        self.producer_id = producer_id
        self.epoch = epoch


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping past int32 max to 0, as Kafka's brokers expect."""
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


def decrement_sequence(sequence: int, decrement: int) -> int:
    return (sequence - decrement) % (_INT32_MAX + 1)


class _PartitionSequences:
    __slots__ = (
        "in_flight",
        "last_acked_offset",
        "last_acked_sequence",
        "next_sequence",
        "producer",
    )

    def __init__(self, producer: ProducerIdAndEpoch) -> None:
        self.producer = producer
        """The producer id and epoch this partition's sequences belong to."""
        self.next_sequence = 0
        self.last_acked_sequence = -1
        self.last_acked_offset = -1
        self.in_flight: list[ProducerBatch] = []
        """Stamped batches not yet complete, in sequence order."""

    def start_over(self, producer: ProducerIdAndEpoch) -> list[ProducerBatch]:
        """Sequences from 0 under ``producer``, re-stamping the in-flight batches in order."""
        self.producer = producer
        self.last_acked_sequence = -1
        sequence = 0
        for batch in self.in_flight:
            batch.set_producer_state(producer.producer_id, producer.epoch, sequence)
            batch.sequence_reset = True
            sequence = increment_sequence(sequence, batch.record_count)
        self.next_sequence = sequence
        return self.in_flight

    def is_next(self, sequence: int) -> bool:
        return sequence == increment_sequence(self.last_acked_sequence, 1)


class ProducerIdState(enum.Enum):
    """The producer id's life (the first states of Java's ``TransactionManager.State``;
    transactions add theirs after READY)."""

    UNINITIALIZED = "uninitialized"
    """No producer id: the sender asks for one."""
    INITIALIZING = "initializing"
    """InitProducerId is out (failures are retried in this state)."""
    READY = "ready"
    """Batches are stamped with the id and epoch."""
    BUMPING_EPOCH = "bumping epoch"
    """A partition lost its sequences: the epoch goes up at the sender's next turn (or,
    exhausted, the id is dropped for a new one)."""
    FATAL = "fatal"
    """A fatal error: nothing more is sent."""


PRODUCER_ID_TRANSITIONS: Final[dict[ProducerIdState, frozenset[ProducerIdState]]] = {
    ProducerIdState.UNINITIALIZED: frozenset({ProducerIdState.INITIALIZING, ProducerIdState.FATAL}),
    ProducerIdState.INITIALIZING: frozenset({ProducerIdState.READY, ProducerIdState.FATAL}),
    ProducerIdState.READY: frozenset({ProducerIdState.BUMPING_EPOCH, ProducerIdState.FATAL}),
    ProducerIdState.BUMPING_EPOCH: frozenset(
        {ProducerIdState.READY, ProducerIdState.UNINITIALIZED, ProducerIdState.FATAL}
    ),
    ProducerIdState.FATAL: frozenset(),
}
"""From each state, where the producer id may go (``IdempotenceState._move_to``)."""


class IdempotenceState:
    def __init__(self, *, transactional: bool = False) -> None:
        self.transactional = transactional
        """A transactional producer's: it never moves to a new epoch by itself (its
        coordinator does, after an abort; ``_transactional``), so a partition whose
        sequences must start over only sets :attr:`epoch_bump_due`."""
        self.partition_gate: Callable[[TopicPartitionKey], bool] | None = None
        """Whether a partition may be drained at all (a transaction's: it has joined it)."""
        self.epoch_bump_due = False
        self.state = ProducerIdState.UNINITIALIZED
        self.producer: ProducerIdAndEpoch | None = None
        self._partitions: dict[TopicPartitionKey, _PartitionSequences] = {}
        self._unresolved: dict[TopicPartitionKey, int] = {}
        """Partition -> the sequence after its last batch whose outcome is unknown."""
        self._bump_partitions: set[TopicPartitionKey] = set()
        self.epoch_bumps = 0

    # ------------------------------------------------------------------ producer id

    def _move_to(self, state: ProducerIdState) -> None:
        """The one way the producer id's state changes: by :data:`PRODUCER_ID_TRANSITIONS`,
        each change logged at DEBUG."""
        if state not in PRODUCER_ID_TRANSITIONS[self.state]:
            raise AssertionError(
                f"producer id: no transition from {self.state.value} to {state.value}"
            )
        logger.debug("producer id: %s -> %s", self.state.value, state.value)
        self.state = state

    def initializing(self) -> None:
        """The sender sent InitProducerId."""
        self._move_to(ProducerIdState.INITIALIZING)

    def set_producer(self, producer: ProducerIdAndEpoch) -> None:
        """A producer id from InitProducerId (the first, or a new one after the epoch ran
        out); partitions waiting for a bump start over under it."""
        self._move_to(ProducerIdState.READY)
        self.producer = producer
        logger.debug("producer id %s", producer)
        self._start_over_bumped_partitions()

    def fatal(self) -> None:
        """A fatal error: the producer stops (no-op if it already has)."""
        if self.state is not ProducerIdState.FATAL:
            self._move_to(ProducerIdState.FATAL)

    def bump_epoch_if_needed(self) -> None:
        """Bump the epoch if a partition asked for it (Java's
        ``bumpIdempotentEpochAndResetIdIfNeeded``). When the epoch is exhausted the
        producer id is dropped: the sender then asks for a new one."""
        if self.state is not ProducerIdState.BUMPING_EPOCH:
            return
        producer = self.producer
        assert producer is not None
        if producer.epoch >= _EPOCH_MAX:
            self._move_to(ProducerIdState.UNINITIALIZED)
            self.producer = None
            return
        self._move_to(ProducerIdState.READY)
        self.producer = ProducerIdAndEpoch(producer.producer_id, producer.epoch + 1)
        self._start_over_bumped_partitions()

    def _start_over_bumped_partitions(self) -> None:
        assert self.producer is not None
        if not self._bump_partitions:
            return
        self.epoch_bumps += 1
        logger.info(
            "idempotent producer now at %s; sequences start over for %s",
            self.producer,
            ", ".join(f"{t}-{p}" for t, p in sorted(self._bump_partitions)),
        )
        for key in self._bump_partitions:
            self._partitions[key].start_over(self.producer)
            self._unresolved.pop(key, None)
        self._bump_partitions.clear()

    def _request_bump(self, key: TopicPartitionKey) -> None:
        # Without an id (one is coming), the partitions start over under the new id.
        if self.transactional:
            self.epoch_bump_due = True
            return
        self._bump_partitions.add(key)
        if self.state is ProducerIdState.READY:
            self._move_to(ProducerIdState.BUMPING_EPOCH)

    def restart(self, producer: ProducerIdAndEpoch) -> None:
        """A transactional producer's new epoch (or id), with nothing in flight: every
        partition's sequences start over from 0."""
        assert not any(p.in_flight for p in self._partitions.values())
        self.producer = producer
        self._partitions.clear()
        self._unresolved.clear()
        self.epoch_bump_due = False
        self.epoch_bumps += 1

    # ------------------------------------------------------------------ draining

    def may_drain(self, batch: ProducerBatch) -> bool:
        """Whether the partition's head batch may be sent now (Java's
        ``shouldStopDrainBatchesForPartition``, inverted)."""
        if self.producer is None:
            return False
        key = (batch.topic, batch.partition)
        if self.partition_gate is not None and not self.partition_gate(key):
            return False
        partition = self._partitions.get(key)
        if partition is None:
            return True
        if batch.base_sequence < 0:
            # A new batch waits while the partition's sequences are in doubt, and while
            # batches of an older epoch are still out (a new epoch starts at sequence 0,
            # which must not reach the broker before them).
            if key in self._unresolved:
                return False
            return not partition.in_flight or partition.producer == self.producer
        # A retry goes only when it is the partition's first batch in flight.
        return bool(partition.in_flight) and partition.in_flight[0] is batch

    def stamp(self, batch: ProducerBatch) -> None:
        """Give a batch drained for the first time its producer id, epoch and sequence."""
        producer = self.producer
        assert producer is not None, "stamp() before the producer id is known"
        key = (batch.topic, batch.partition)
        partition = self._partitions.get(key)
        if partition is None:
            partition = self._partitions[key] = _PartitionSequences(producer)
        elif partition.producer != producer:
            partition.start_over(producer)  # nothing in flight: may_drain() waited
        batch.transactional = self.transactional
        batch.set_producer_state(producer.producer_id, producer.epoch, partition.next_sequence)
        partition.next_sequence = increment_sequence(partition.next_sequence, batch.record_count)
        partition.in_flight.append(batch)

    def split(self, batch: ProducerBatch, halves: list[ProducerBatch]) -> None:
        """``halves`` take over ``batch``'s place (and sequence range) in flight."""
        partition = self._partitions.get((batch.topic, batch.partition))
        if partition is not None and batch in partition.in_flight:
            at = partition.in_flight.index(batch)
            partition.in_flight[at : at + 1] = halves

    # ------------------------------------------------------------------ outcomes

    def acknowledged(self, batch: ProducerBatch, base_offset: int) -> None:
        # Every batch in a partition's in-flight list carries the partition's producer id
        # and epoch: start_over() re-stamps them all, and new batches wait for it.
        partition = self._take(batch)
        if partition is None:
            return
        partition.last_acked_sequence = increment_sequence(
            batch.base_sequence, batch.record_count - 1
        )
        if base_offset >= 0:
            partition.last_acked_offset = base_offset + batch.record_count - 1

    def failed(self, batch: ProducerBatch) -> None:
        """A stamped batch failed for good (its futures hold the error)."""
        key = (batch.topic, batch.partition)
        partition = self._partitions.get(key)
        if partition is None or batch not in partition.in_flight:
            return
        if batch.possibly_written:
            after = increment_sequence(batch.base_sequence, batch.record_count)
            self._unresolved[key] = after
            partition.in_flight.remove(batch)
        else:
            self._close_gap(partition, batch)

    def _close_gap(self, partition: _PartitionSequences, batch: ProducerBatch) -> None:
        """The broker never wrote ``batch``: move the later in-flight batches (and the next
        sequence) down by its record count, so no gap is left (Java's
        ``adjustSequencesDueToFailedBatch``)."""
        at = partition.in_flight.index(batch)
        del partition.in_flight[at]
        count = batch.record_count
        for later in partition.in_flight[at:]:
            later.set_producer_state(
                later.producer_id,
                later.producer_epoch,
                decrement_sequence(later.base_sequence, count),
            )
            later.sequence_reset = True
        partition.next_sequence = decrement_sequence(partition.next_sequence, count)

    def _take(self, batch: ProducerBatch) -> _PartitionSequences | None:
        partition = self._partitions.get((batch.topic, batch.partition))
        if partition is not None and batch in partition.in_flight:
            partition.in_flight.remove(batch)
            return partition
        return None

    def judge(
        self, batch: ProducerBatch, error: KafkaError, log_start_offset: int
    ) -> SequenceVerdict:
        """Whether a stamped batch may be retried after ``error``, and whether its
        partition must start over under a new epoch (Java's ``TransactionManager.canRetry``
        for an idempotent producer). Pure: the sender carries out a bump through
        :meth:`request_bump`."""
        partition = self._partitions.get((batch.topic, batch.partition))
        if partition is None:
            return SequenceVerdict(error.retriable)
        if isinstance(error, UnknownProducerIdError):
            # The broker lost our state (retention removed our last batch, or it was never
            # replicated). -1: the broker does not know the log start yet; just retry. A
            # re-stamped batch is answering for its old stamp: the bump already happened.
            return SequenceVerdict(True, log_start_offset >= 0 and not batch.sequence_reset)
        if isinstance(error, OutOfOrderSequenceNumberError):
            unresolved = self._unresolved.get((batch.topic, batch.partition))
            if unresolved is None and (
                batch.sequence_reset or not partition.is_next(batch.base_sequence)
            ):
                return SequenceVerdict(True)  # an earlier batch failed: this one follows it
            if unresolved is None:
                # The batch right after the last acknowledged one is refused: the broker
                # lost acknowledged records (e.g. an unclean leader election).
                return SequenceVerdict(True, True, lost_acknowledged=True)
            # The batch right after an unknown outcome is refused: that outcome was "not
            # written"; start the partition's sequences over.
            return SequenceVerdict(True, unresolved == batch.base_sequence)
        return SequenceVerdict(error.retriable)

    def request_bump(self, batch: ProducerBatch) -> None:
        """Start ``batch``'s partition over under a new epoch at the next
        :meth:`bump_epoch_if_needed`."""
        self._request_bump((batch.topic, batch.partition))

    def resolve_sequences(self) -> None:
        """Partitions whose unknown outcomes the acknowledgements since have settled
        (Java's ``maybeResolveSequences``): once nothing is in flight, either everything
        up to the next sequence was acknowledged (written after all), or the epoch is
        bumped so the gap cannot block the partition."""
        for key in list(self._unresolved):
            partition = self._partitions[key]
            if partition.in_flight:
                continue
            if not partition.is_next(partition.next_sequence):
                self._request_bump(key)
            del self._unresolved[key]
