"""The record accumulator: per-partition queues of batches (pure logic; clock passed in).

``send()`` appends to the last batch of its partition's queue, or asks for a new batch
(after reserving buffer memory). The sender asks :meth:`ready` which brokers have
something to send now, and :meth:`drain` to take batches for them, as Java's
``RecordAccumulator`` does:

* a partition's head batch is *sendable* when it is full (or not the only batch), its
  ``linger_ms`` has passed, a ``send_batch()`` call waits for it, a flush or close is in
  progress, or senders are waiting for memory; a retried batch waits out its backoff
  first;
* a broker is *ready* when at least one of its partitions is sendable; a request to it
  takes the head batch of each of its sendable partitions, and of those past half their
  ``linger_ms``, up to ``max_request_size``. Java takes every lingering batch along; a
  fresh one sent early would close half empty, and with several requests in flight that
  cuts the sticky partitioner's batches into many small ones;
* order within a partition: with idempotence, up to ``max_in_flight_requests_per_connection``
  batches of a partition may be out at once, sequence numbers keep them in order, and
  ``_idempotence`` says which head batch may go; without it, a partition with a batch in
  flight is *muted* until its response arrives when ``guarantee_order`` (Java: max in
  flight = 1), else retries may overtake later batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._batch import BatchState, Charge, Offload, ProducerBatch, Record
from asyncproducer._cluster import ClusterSnapshot
from asyncproducer._idempotence import IdempotenceState
from asyncproducer._outcome import SOON_MS
from asyncproducer._value import Value
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.encoding import BATCH_HEADER_SIZE


class ReadyCheck(Value):
    """What :meth:`RecordAccumulator.ready` found (filled in as it looks)."""

    __slots__ = (
        "drainable",
        "next_check_ms",
        "ready_nodes",
        "unknown_leader_topics",
        "urgent",
    )
    _fields = (
        "ready_nodes",
        "drainable",
        "next_check_ms",
        "unknown_leader_topics",
        "urgent",
    )

    ready_nodes: set[int]
    """Brokers with at least one sendable partition."""
    drainable: dict[int, list[tuple[str, int]]]
    """Per broker, the partitions whose head batch may go now."""
    next_check_ms: float
    """How long until something not yet sendable becomes sendable."""
    unknown_leader_topics: set[str]
    urgent: set[int]
    """Brokers with a partition sendable for more than a full head batch: its linger is
    over, a batch queued behind it, a retry, a ``send_batch()`` awaiting it, a flush or
    close, or a ``send()`` waiting for memory. A broker with a request out gets the next
    at once only if urgent; full batches alone wait for its answer (``Sender``)."""

    def __init__(self) -> None:
        self.ready_nodes = set()
        self.drainable = {}
        self.next_check_ms = float("inf")
        self.unknown_leader_topics = set()
        self.urgent = set()


class RecordAccumulator:
    def __init__(
        self,
        *,
        batch_size: int,
        linger_ms: float,
        compression: CompressionType,
        compression_level: int | None,
        delivery_timeout_ms: float,
        retry_backoff: ExponentialBackoff,
        guarantee_order: bool = True,
        charge: Charge | None = None,
        offload: Offload | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.offload = offload
        """Where new batches send records too large to compress on the loop (or None)."""
        self._charge = charge
        """Reserves buffer_memory for the overhead of a batch's records (see _batch)."""
        self.linger_ms = linger_ms
        self.compression = compression
        self.compression_level = compression_level
        self.delivery_timeout_ms = delivery_timeout_ms
        self._retry_backoff = retry_backoff
        self.queues: dict[tuple[str, int], deque[ProducerBatch]] = {}
        """Per partition, its batches in order; the last one is open to appends. Change
        it only here: the C appender reads it (see _staging)."""
        self._muted: set[tuple[str, int]] = set()
        self._guarantee_order = guarantee_order
        self._drained = 0
        self.drained_all_sendable = True
        """False when the last drain left a batch behind one it took (a request takes
        one batch per partition): the sender should look again at once."""
        self.incomplete: dict[ProducerBatch, None] = {}
        """Every batch created and not yet completed, in creation order."""
        self._newest: dict[tuple[str, int], ProducerBatch] = {}
        self._bytes_before_newest: dict[tuple[str, int], int] = {}
        self._last_records: dict[tuple[str, int], int] = {}
        """Per partition, its newest batch while it is incomplete, and the bytes of every
        batch before it (:meth:`_batch_bytes`): :meth:`appended_bytes`, counted once per
        batch, not per record (the C appender appends without telling); and the record
        count of the newest batch once it is gone (:meth:`last_batch_records`)."""
        self._flushes = 0
        self.closing = False

    # ------------------------------------------------------------------ appending

    def try_append(
        self, topic: str, partition: int, future: Any, record: Record
    ) -> ProducerBatch | None:
        """Append to the partition's open batch; the batch, or None if a new one is needed."""
        queue = self.queues.get((topic, partition))
        if queue:
            batch = queue[-1]
            if batch.try_append(future, record):
                return batch
        return None

    def append_to_new_batch(
        self,
        topic: str,
        partition: int,
        future: Any,
        record: Record,
        reserved: int,
        now_ms: float,
        record_capacity: int = 1,
    ) -> tuple[ProducerBatch, bool]:
        """Append in a new batch holding ``reserved`` bytes (the overhead of
        ``record_capacity`` records included, see ``_batch.batch_reservation``); the batch,
        and whether it is new. Not new if another task opened a batch with room meanwhile
        and the record went there: then release the reservation."""
        batch = self.try_append(topic, partition, future, record)
        if batch is not None:
            return batch, False
        batch = self._new_batch(topic, partition, reserved, now_ms, record_capacity)
        batch.try_append(future, record)  # a first record always fits
        tp = (topic, partition)
        self.queues.setdefault(tp, deque()).append(batch)
        self.incomplete[batch] = None
        self._forget_newest(tp)
        self._newest[tp] = batch
        return batch, True

    def last_batch_records(self, topic: str, partition: int) -> int:
        """How many records the partition's newest batch holds (0 before its first): what
        its next batch pays for up front (``_batch.batch_reservation``)."""
        tp = (topic, partition)
        newest = self._newest.get(tp)
        return newest.record_count if newest is not None else self._last_records.get(tp, 0)

    def appended_bytes(self, topic: str, partition: int) -> int:
        """Bytes appended to the partition so far, a batch's header and records
        (uncompressed) each, a full batch at least ``batch_size`` (it took as much as
        fits): the default partitioner's measure of how much went to its sticky
        partition (``_sticky_switch``)."""
        tp = (topic, partition)
        newest = self._newest.get(tp)
        before = self._bytes_before_newest.get(tp, 0)
        return before if newest is None else before + self._batch_bytes(newest)

    def _batch_bytes(self, batch: ProducerBatch) -> int:
        size = BATCH_HEADER_SIZE + batch.records_size
        return max(size, self.batch_size) if batch.full else size

    def _forget_newest(self, tp: tuple[str, int], batch: ProducerBatch | None = None) -> None:
        """Fold the partition's newest batch (only if it is ``batch``, when given) into its
        bytes before: it takes no more records, and is not kept alive for its size."""
        newest = self._newest.get(tp)
        if newest is not None and (batch is None or newest is batch):
            del self._newest[tp]
            before = self._bytes_before_newest.get(tp, 0)
            self._bytes_before_newest[tp] = before + self._batch_bytes(newest)
            self._last_records[tp] = newest.record_count

    def _new_batch(
        self, topic: str, partition: int, reserved: int, created_ms: float, record_capacity: int
    ) -> ProducerBatch:
        return ProducerBatch(
            topic,
            partition,
            reserved,
            created_ms,
            batch_size=self.batch_size,
            compression=self.compression,
            compression_level=self.compression_level,
            charge=self._charge,
            record_capacity=record_capacity,
            offload=self.offload,
        )

    # ------------------------------------------------------------------ sending

    def ready(self, cluster: ClusterSnapshot, now_ms: float, memory_waiting: bool) -> ReadyCheck:
        check = ReadyCheck()
        hurry = self.in_a_hurry or memory_waiting
        for tp, queue in self.queues.items():
            if not queue or tp in self._muted:
                continue
            batch = queue[0]
            if batch.compressing:
                continue  # drainable once its records are back (that wakes the sender)
            topic = cluster.topics.get(tp[0])
            if (
                topic is None
                or tp[1] >= len(topic.partitions)
                or topic.partitions[tp[1]].leader < 0
            ):
                check.unknown_leader_topics.add(tp[0])
                continue
            if batch.attempts and now_ms < batch.retry_at_ms:
                check.next_check_ms = min(check.next_check_ms, batch.retry_at_ms - now_ms)
                continue
            leader = topic.partitions[tp[1]].leader
            waited = now_ms - batch.created_ms
            urgent = (
                hurry
                or batch.awaited
                or batch.attempts
                or waited >= self.linger_ms
                or len(queue) > 1
            )
            if urgent or batch.full:
                if batch.compresses_off_the_loop:
                    batch.seal_off_the_loop()  # goes when its records are back
                    continue
                check.ready_nodes.add(leader)
                check.drainable.setdefault(leader, []).append(tp)
                if urgent:
                    check.urgent.add(leader)
                else:  # full: it may wait for company, until its linger is over
                    check.next_check_ms = min(check.next_check_ms, self.linger_ms - waited)
            else:
                check.next_check_ms = min(check.next_check_ms, self.linger_ms - waited)
                if waited * 2 >= self.linger_ms and not batch.compresses_off_the_loop:
                    # Past half its linger: it rides along if its broker gets a request
                    # now (it would go soon anyway, alone: one request instead of many).
                    check.drainable.setdefault(leader, []).append(tp)
        return check

    def drain(
        self,
        check: ReadyCheck,
        nodes: Iterable[int],
        max_request_size: int,
        idempotence: IdempotenceState | None = None,
    ) -> dict[int, list[ProducerBatch]]:
        """Take the head batch of each drainable partition of ``nodes``, up to
        ``max_request_size`` bytes of batches per broker (the first batch always goes).
        With ``idempotence``, a head batch goes only if it allows, and is stamped with
        its sequence when it goes for the first time."""
        drained: dict[int, list[ProducerBatch]] = {}
        self.drained_all_sendable = True
        for node in nodes:
            batches: list[ProducerBatch] = []
            size = 0
            for tp in check.drainable.get(node, ()):
                queue = self.queues[tp]
                batch = queue[0]
                if idempotence is not None and not idempotence.may_drain(batch):
                    continue
                estimate = batch.estimated_size
                if batches and size + estimate > max_request_size:
                    break
                queue.popleft()
                if batch.order is None:
                    self._drained += 1
                    batch.order = (self._drained, 0)
                    if idempotence is not None:
                        idempotence.stamp(batch)
                if self._guarantee_order:
                    self._muted.add(tp)
                batch.move_to(BatchState.SENDING)
                batch.sequence_reset = False
                batches.append(batch)
                size += len(batch.close())
                if queue:  # the next batch may be sendable too: look again at once
                    self.drained_all_sendable = False
            if batches:
                drained[node] = batches
        return drained

    def retry_backoff_ms(self, attempts: int) -> float:
        return self._retry_backoff.delay_ms(attempts)

    def reenqueue(self, batch: ProducerBatch, now_ms: float, *, soon: bool = False) -> None:
        """Put a batch that failed retriably back in its queue, after backoff (at most
        ``SOON_MS`` if ``soon``): ahead of every batch not yet sent, behind the retries of
        batches sent before it."""
        batch.move_to(BatchState.REQUEUED)
        delay = self._retry_backoff.delay_ms(batch.attempts)
        batch.retry_at_ms = now_ms + (min(delay, SOON_MS) if soon else delay)
        batch.attempts += 1
        self._put_back(batch)

    def _put_back(self, batch: ProducerBatch) -> None:
        queue = self.queues.setdefault((batch.topic, batch.partition), deque())
        assert batch.order is not None
        at = 0
        while at < len(queue) and (order := queue[at].order) is not None and order < batch.order:
            at += 1
        queue.insert(at, batch)
        self._muted.discard((batch.topic, batch.partition))

    def split(self, batch: ProducerBatch) -> list[ProducerBatch]:
        """Split a batch the broker found too large in two (see ``ProducerBatch.split``)
        and queue the halves in its place, to go at once; they replace it in
        ``incomplete``."""
        self._forget_newest((batch.topic, batch.partition), batch)
        halves = batch.split(self.batch_size)
        batch.move_to(BatchState.SPLIT)
        del self.incomplete[batch]
        for half in halves:
            self.incomplete[half] = None
            self._put_back(half)
        return halves

    def finished(self, batch: ProducerBatch) -> None:
        """The batch completed (acknowledged or failed for good)."""
        self._muted.discard((batch.topic, batch.partition))
        if self._newest:
            self._forget_newest((batch.topic, batch.partition), batch)
        self.incomplete.pop(batch, None)

    def delivery_deadline_ms(self, batch: ProducerBatch) -> float:
        return batch.created_ms + self.delivery_timeout_ms

    def expired(self, now_ms: float) -> list[ProducerBatch]:
        """Remove and return queued (not in-flight) batches past ``delivery_timeout_ms``.

        A queue is in creation order (retries go back in their place, halves of a split
        batch share its creation time), so scanning stops at the first batch that has
        time left.
        """
        expired: list[ProducerBatch] = []
        for queue in self.queues.values():
            while queue and now_ms >= queue[0].created_ms + self.delivery_timeout_ms:
                expired.append(queue.popleft())
        return expired

    def next_expiry_ms(self, now_ms: float) -> float:
        heads = [q[0].created_ms for q in self.queues.values() if q]
        return min(heads) + self.delivery_timeout_ms - now_ms if heads else float("inf")

    def clear_queues(self) -> None:
        """Forget every queued batch (they stay in ``incomplete`` for the caller to fail)."""
        self.queues.clear()

    @property
    def has_queued(self) -> bool:
        return any(self.queues.values())

    @property
    def in_a_hurry(self) -> bool:
        """A flush or close is in progress: every batch is sendable at once."""
        return self._flushes > 0 or self.closing

    def full_batch(self, topic: str, partition: int) -> ProducerBatch | None:
        """The partition's last batch, if it is full (sendable now, whatever the linger);
        else None."""
        queue = self.queues.get((topic, partition))
        return queue[-1] if queue and queue[-1].full else None

    def queued_batches(self, topic: str, partition: int) -> int:
        queue = self.queues.get((topic, partition))
        return len(queue) if queue else 0

    # ------------------------------------------------------------------ flush

    def begin_flush(self) -> None:
        self._flushes += 1

    def end_flush(self) -> None:
        self._flushes -= 1
