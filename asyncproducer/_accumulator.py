"""The record accumulator: per-partition queues of batches (pure logic; clock passed in).

``send()`` appends to the last batch of its partition's queue, or asks for a new batch
(after reserving buffer memory). The sender asks :meth:`ready` which brokers have
something to send now, and :meth:`drain` to take batches for them, as Java's
``RecordAccumulator`` does:

* a partition's head batch is *sendable* when it is full (or not the only batch), its
  ``linger_ms`` has passed, a flush or close is in progress, or senders are waiting for
  memory; a retried batch waits out its backoff first;
* a broker is *ready* when at least one of its partitions is sendable; draining a ready
  broker also takes the head batches of its other partitions (they would only wait), up
  to ``max_request_size`` per request;
* a partition with a batch in flight is *muted* until its response arrives, so batches
  of one partition are never in flight together and never reordered by retries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._batch import ProducerBatch, Stamp, Thunk
from asyncproducer._cluster import ClusterSnapshot
from asyncproducer._types import Header
from asyncproducer.protocol.compression import CompressionType
from asyncproducer.protocol.records import RecordBatchBuilder

APPENDED = 0
APPENDED_BATCH_FULL = 1
NEEDS_NEW_BATCH = 2


@dataclass(slots=True)
class ReadyCheck:
    ready_nodes: set[int] = field(default_factory=set)
    """Brokers with at least one sendable partition."""
    drainable: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    """Per broker, the partitions whose head batch may go now."""
    next_check_ms: float = float("inf")
    """How long until something not yet sendable becomes sendable."""
    unknown_leader_topics: set[str] = field(default_factory=set)


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
    ) -> None:
        self.batch_size = batch_size
        self.linger_ms = linger_ms
        self.compression = compression
        self.compression_level = compression_level
        self.delivery_timeout_ms = delivery_timeout_ms
        self._retry_backoff = retry_backoff
        self._queues: dict[tuple[str, int], deque[ProducerBatch]] = {}
        self._muted: set[tuple[str, int]] = set()
        self.incomplete: dict[ProducerBatch, None] = {}
        """Every batch created and not yet completed, in creation order."""
        self._flushes = 0
        self.closing = False

    # ------------------------------------------------------------------ appending

    def try_append(
        self,
        topic: str,
        partition: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        thunk: Thunk,
    ) -> int:
        """Append to the partition's open batch.

        Returns APPENDED, APPENDED_BATCH_FULL or NEEDS_NEW_BATCH."""
        queue = self._queues.get((topic, partition))
        if queue:
            batch = queue[-1]
            if batch.try_append(timestamp, key, value, headers, thunk):
                return APPENDED_BATCH_FULL if batch.full else APPENDED
        return NEEDS_NEW_BATCH

    def append_to_new_batch(
        self,
        topic: str,
        partition: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
        thunk: Thunk,
        reserved: int,
        now_ms: float,
    ) -> bool:
        """Append in a new batch holding ``reserved`` bytes. False if another task opened a
        batch with room meanwhile and the record went there: release the reservation."""
        if (
            self.try_append(topic, partition, timestamp, key, value, headers, thunk)
            != NEEDS_NEW_BATCH
        ):
            return False
        builder = RecordBatchBuilder(
            batch_size=self.batch_size,
            compression=self.compression,
            compression_level=self.compression_level,
        )
        batch = ProducerBatch(topic, partition, builder, reserved, now_ms)
        batch.try_append(timestamp, key, value, headers, thunk)  # a first record always fits
        self._queues.setdefault((topic, partition), deque()).append(batch)
        self.incomplete[batch] = None
        return True

    # ------------------------------------------------------------------ sending

    def ready(self, cluster: ClusterSnapshot, now_ms: float, memory_waiting: bool) -> ReadyCheck:
        check = ReadyCheck()
        hurry = self._flushes > 0 or self.closing or memory_waiting
        for tp, queue in self._queues.items():
            if not queue or tp in self._muted:
                continue
            batch = queue[0]
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
            check.drainable.setdefault(leader, []).append(tp)
            waited = now_ms - batch.created_ms
            if hurry or batch.full or len(queue) > 1 or batch.attempts or waited >= self.linger_ms:
                check.ready_nodes.add(leader)
            else:
                check.next_check_ms = min(check.next_check_ms, self.linger_ms - waited)
        return check

    def drain(
        self,
        check: ReadyCheck,
        nodes: Iterable[int],
        max_request_size: int,
        stamp: Stamp | None = None,
    ) -> dict[int, list[ProducerBatch]]:
        """Take the head batch of each drainable partition of ``nodes`` (muting it), up to
        ``max_request_size`` bytes of batches per broker (the first batch always goes).
        ``stamp`` gives idempotence fields to batches encoded now (see ``_idempotence``)."""
        drained: dict[int, list[ProducerBatch]] = {}
        for node in nodes:
            batches: list[ProducerBatch] = []
            size = 0
            for tp in check.drainable.get(node, ()):
                queue = self._queues[tp]
                batch = queue[0]
                payload = batch.close(stamp)
                if batches and size + len(payload) > max_request_size:
                    break
                queue.popleft()
                self._muted.add(tp)
                batch.in_flight = True
                batches.append(batch)
                size += len(payload)
            if batches:
                drained[node] = batches
        return drained

    def retry_backoff_ms(self, attempts: int) -> float:
        return self._retry_backoff.delay_ms(attempts)

    def reenqueue(self, batch: ProducerBatch, now_ms: float) -> None:
        """Put a batch that failed retriably back at the head of its queue, after backoff."""
        batch.in_flight = False
        batch.retry_at_ms = now_ms + self._retry_backoff.delay_ms(batch.attempts)
        batch.attempts += 1
        self._queues.setdefault((batch.topic, batch.partition), deque()).appendleft(batch)
        self._muted.discard((batch.topic, batch.partition))

    def finished(self, batch: ProducerBatch) -> None:
        """The batch completed (acknowledged or failed for good)."""
        batch.in_flight = False
        self._muted.discard((batch.topic, batch.partition))
        self.incomplete.pop(batch, None)

    def delivery_deadline_ms(self, batch: ProducerBatch) -> float:
        return batch.created_ms + self.delivery_timeout_ms

    def expired(self, now_ms: float) -> list[ProducerBatch]:
        """Remove and return queued (not in-flight) batches past ``delivery_timeout_ms``.

        Only a queue's head can be a retried batch; every batch behind it was created
        later, so scanning stops at the first batch that has time left.
        """
        expired: list[ProducerBatch] = []
        for queue in self._queues.values():
            while queue and now_ms >= queue[0].created_ms + self.delivery_timeout_ms:
                expired.append(queue.popleft())
        return expired

    def next_expiry_ms(self, now_ms: float) -> float:
        heads = [q[0].created_ms for q in self._queues.values() if q]
        return min(heads) + self.delivery_timeout_ms - now_ms if heads else float("inf")

    def clear_queues(self) -> None:
        """Forget every queued batch (they stay in ``incomplete`` for the caller to fail)."""
        self._queues.clear()

    @property
    def has_queued(self) -> bool:
        return any(self._queues.values())

    # ------------------------------------------------------------------ flush

    def begin_flush(self) -> None:
        self._flushes += 1

    def end_flush(self) -> None:
        self._flushes -= 1
