"""The send path, in one place: ``send()``, ``send_batch()`` and ``flush()``, from the
staged record to the accumulator, with the slow path's waits (the topic's metadata, a new
batch's buffer memory, a checkpoint when a batch fills), all within ``max_block_ms``.

:class:`SendPath` is a base of :class:`~asyncproducer.producer.Producer`, which owns the
parts it uses (declared below) and the lifecycle (``_may_send``, ``_check_can_send``); a
base class rather than an object of its own so that ``send()`` stays one call. Where
the C extension built, most records never reach this code: ``_speedups.Appender`` takes
them (see ``_staging`` and docs/internals.md, "The hot path").

A producer with an asynchronous key or value serializer (decided at construction:
``_awaits_serializers``) takes one more path, ``_enqueue_awaiting``: the serializers are
awaited before the record is staged, within ``max_block_ms`` (:func:`serialize_awaiting`).
Producers without one run exactly the code they ran before, plus one flag test per
record that reaches Python.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from asyncproducer._awaited_serializers import serialize_awaiting
from asyncproducer._batch import DeliveryCallback, ProducerBatch, Record, batch_reservation
from asyncproducer._send_batch import aborted_message, send_arguments, send_each
from asyncproducer._staging import Staged, check_headers, exact_topic
from asyncproducer._types import Header, ProducerRecord, RecordMetadata, RecordTuple
from asyncproducer.errors import KafkaError, KafkaTimeoutError, SendBatchAbortedError

if TYPE_CHECKING:
    from asyncproducer._accumulator import RecordAccumulator
    from asyncproducer._futures import Checkpoint, FutureFactory
    from asyncproducer._memory import BufferPool
    from asyncproducer._metadata import MetadataManager
    from asyncproducer._sender import Sender
    from asyncproducer._staging import RecordStager
    from asyncproducer._transactional import TransactionalCalls
    from asyncproducer.interceptors import InterceptorChain

_NO_MORE = object()


class SendPath:
    """``Producer``'s sending methods (see the module docstring)."""

    # Set by Producer._setup() and start().
    _may_send: bool
    """Running and, for a transactional producer, inside a transaction: what send() checks
    (else ``_check_can_send`` raises the reason)."""
    _transactions: TransactionalCalls | None
    _stager: RecordStager
    _accumulator: RecordAccumulator
    _memory: BufferPool
    _metadata: MetadataManager
    _sender: Sender
    _interceptors: InterceptorChain
    _intercepting: bool
    _awaits_serializers: bool
    """A key or value serializer is asynchronous: send() takes ``_enqueue_awaiting``."""
    _appender: Any
    _new_future: FutureFactory | None
    _checkpoint: Checkpoint
    _max_block_s: float
    _batch_size: int

    def _check_running(self) -> None:
        raise NotImplementedError  # Producer's

    def _check_can_send(self) -> None:
        raise NotImplementedError  # Producer's

    async def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[Header] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> Any:
        """Enqueue a record; return its future (``await`` it for the RecordMetadata).

        Waits only for the topic's first metadata or for buffer memory, at most
        ``max_block_ms`` in all, and yields once to the sender when the record opens a
        batch behind a full one; every wait comes before the append, so a cancelled
        ``send()`` has not enqueued its record. A record that cannot be sent raises a
        ``KafkaError`` naming the argument (serialization, headers, size, partition,
        timestamp, topic, the partitioner); one that fails later fails its future (and
        ``on_delivery``).
        """
        if not self._may_send:
            self._check_can_send()
        future = self._new_future()  # type: ignore[misc]
        record = None
        if self._intercepting:
            record = self._interceptors.on_send(
                ProducerRecord(topic, value, key, partition, timestamp_ms, headers)
            )
            topic, value, key = record.topic, record.value, record.key
            partition, timestamp_ms, headers = record.partition, record.timestamp_ms, record.headers
        try:
            if type(topic) is not str:
                topic = exact_topic(topic)
            if not self._awaits_serializers:
                staged = self._stager.stage(topic, value, key, partition, timestamp_ms, headers)
                batch = None
                if staged is not None:
                    chosen_partition, _, staged_record = staged
                    batch = self._accumulator.try_append(
                        topic, chosen_partition, future, staged_record
                    )
                if batch is None:
                    batch = await self._enqueue_slowly(
                        topic, value, key, partition, timestamp_ms, headers, future, staged
                    )
            else:
                batch = await self._enqueue_awaiting(
                    topic, value, key, partition, timestamp_ms, headers, future
                )
            if on_delivery is not None or record is not None:
                batch.add_hooks(on_delivery, record)
            return future
        except Exception as exc:
            if record is not None:
                self._interceptors.on_send_error(record, exc)
            if self._transactions is not None:
                self._transactions.manager.record_refused(exc)
            raise

    async def _send_to_new_batch(
        self,
        topic: str,
        partition: int,
        chosen: bool,
        key: Any,
        value: Any,
        record: Record,
        on_delivery: DeliveryCallback | None,
        future: Any,
    ) -> Any:
        """``send()`` for a record the C appender staged (``record``, ``partition``) but
        did not append: its partition's last batch is full or at its record capacity, or
        it has none. What ``send()`` does from there, without staging it again. The
        producer was running when the appender took it (nothing awaited since), and has
        no interceptors (else no appender)."""
        try:
            # First as send() does: a batch at its record capacity takes more records if
            # buffer memory allows, else it is marked full (sendable now), so that
            # _append_to_new_batch yields to the sender once for it.
            batch = self._accumulator.try_append(topic, partition, future, record)
            if batch is None:
                batch = await self._append_to_new_batch(
                    topic, partition, chosen, key, value, future, record, None
                )
        except Exception as exc:
            if self._transactions is not None:
                self._transactions.manager.record_refused(exc)
            raise
        if on_delivery is not None:
            batch.add_hooks(on_delivery, None)
        return future

    async def _enqueue_slowly(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Sequence[Header] | None,
        future: Any,
        staged: Staged | None,
    ) -> ProducerBatch:
        """The slow path of ``send()`` and ``send_batch()``: wait for the topic's metadata
        (``staged`` is None) and stage the record then, or open a new batch for it.
        ``topic`` is exactly a str (``exact_topic``)."""
        deadline = None  # max_block_ms runs from here; read the clock only if we wait
        if staged is None:
            deadline = time.monotonic() + self._max_block_s
            await self._metadata.wait_for_topic(topic, self._max_block_s * 1000)
            if not self._may_send:  # closed (or failed, or the transaction ended) meanwhile
                self._check_can_send()
            staged = self._stager.stage(topic, value, key, partition, timestamp_ms, headers)
            assert staged is not None  # wait_for_topic raises unless the topic is known
            chosen_partition, _, staged_record = staged
            batch = self._accumulator.try_append(topic, chosen_partition, future, staged_record)
            if batch is not None:
                return batch
        chosen_partition, chosen, record = staged
        return await self._append_to_new_batch(
            topic, chosen_partition, chosen, key, value, future, record, deadline
        )

    async def _enqueue_awaiting(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Sequence[Header] | None,
        future: Any,
    ) -> ProducerBatch:
        """``send()`` and ``send_batch()`` for a producer with an asynchronous serializer,
        in Java's order (``doSend``): the topic's metadata, the key's and the value's
        serializers (awaited), then staging and the append, every wait within one
        ``max_block_ms``. As in ``_append_to_new_batch``, every await comes before the
        append: cancelled, it has enqueued nothing. ``topic`` is exactly a str."""
        deadline = time.monotonic() + self._max_block_s
        if topic not in self._metadata.partition_counts:
            await self._wait_for_topic(topic, deadline)
        checked = () if headers is None else check_headers(topic, headers)
        stager = self._stager
        key_bytes, value_bytes = await serialize_awaiting(
            stager.serializers, topic, checked, key, value, deadline
        )
        if not self._may_send:  # closed (or failed, or the transaction ended) meanwhile
            self._check_can_send()
        while True:
            staged = stager.stage_serialized(
                topic, value, key, key_bytes, value_bytes, partition, timestamp_ms, checked
            )
            if staged is not None:
                break
            # The topic left the metadata while the serializers ran (deleted, say).
            await self._wait_for_topic(topic, deadline)
        chosen_partition, chosen, record = staged
        batch = self._accumulator.try_append(topic, chosen_partition, future, record)
        if batch is not None:
            return batch
        return await self._append_to_new_batch(
            topic, chosen_partition, chosen, key, value, future, record, deadline
        )

    async def _wait_for_topic(self, topic: str, deadline: float) -> None:
        """The topic's metadata, by ``deadline`` (``time.monotonic()``), then check that
        the producer may still send."""
        await self._metadata.wait_for_topic(topic, max(0.0, deadline - time.monotonic()) * 1000)
        if not self._may_send:  # closed (or failed, or the transaction ended) meanwhile
            self._check_can_send()

    async def _append_to_new_batch(
        self,
        topic: str,
        partition: int,
        chosen: bool,
        key: Any,
        value: Any,
        future: Any,
        record: Record,
        deadline: float | None,
    ) -> ProducerBatch:
        """The slow path of an append: the record's partition has no batch with room.

        Every await (the checkpoint, the wait for memory) comes before the append, and
        nothing awaits after it: a ``send()`` cancelled here has not enqueued its record
        and holds no memory; one that returns has (docs/producer.md, "Cancellation")."""
        accumulator = self._accumulator
        full = accumulator.full_batch(topic, partition)
        if full is not None and not full.yielded:
            # Once per full batch, not per record (a full event-loop turn per record would
            # cost more than the send itself): let the sender run, so a tight loop of
            # sends cannot starve it until the buffer is full. Not when the record opens a
            # batch only because the last one was sent already (linger_ms=0): the records
            # a task sends before it yields then share one request, not one each. Nor by
            # every task that finds the batch full while the first yields (10,000 tasks
            # would each pay a turn of the loop for one batch): they open the next one.
            # Trio's rule is a checkpoint on every call; this is the documented exception.
            full.yielded = True
            await self._checkpoint()
            if not self._may_send:  # closed (or failed, or the transaction ended) meanwhile
                self._check_can_send()
            # Another task may have opened the partition's next batch meanwhile.
            batch = accumulator.try_append(topic, partition, future, record)
            if batch is not None:
                return batch
        if chosen:
            moved = self._stager.next_partition(topic, partition, key, value, record)
            if moved is not None and moved != partition:  # the same: no room there still
                partition = moved
                batch = accumulator.try_append(topic, partition, future, record)
                if batch is not None:
                    return batch
        reserved, record_capacity = batch_reservation(
            self._batch_size,
            record,
            self._memory.total,
            accumulator.last_batch_records(topic, partition),
        )
        if not self._memory.try_reserve(reserved):
            self._sender.wakeup()  # senders waiting for memory make batches sendable now
            if deadline is None:
                deadline = time.monotonic() + self._max_block_s
            await self._memory.reserve(reserved, deadline - time.monotonic())
            if not self._may_send:  # closed (or failed, or the transaction ended) meanwhile
                self._memory.release(reserved)
                self._check_can_send()
        now_ms = time.monotonic() * 1000
        batch, created = accumulator.append_to_new_batch(
            topic, partition, future, record, reserved, now_ms, record_capacity
        )
        if created:
            self._metadata.touch(topic)
            behind_another = accumulator.queued_batches(topic, partition) > 1
            self._sender.batch_opened(now_ms, behind_another)
        else:
            self._memory.release(reserved)
        return batch

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[Header] | None = None,
    ) -> RecordMetadata:
        """``send()`` and await the acknowledgement."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        metadata: RecordMetadata = await future
        return metadata

    async def send_batch(
        self, records: Iterable[ProducerRecord | RecordTuple]
    ) -> list[RecordMetadata | KafkaError]:
        """Send many records and wait for them all: one result per record, in order, a
        ``RecordMetadata`` or the ``KafkaError`` that record failed with (a record that
        cannot be sent, e.g. a serialization error, fails alone; the others go on).

        Each record is a ``ProducerRecord`` or a plain tuple of ``send()``'s first 2 to 6
        arguments (topic, value, key, partition, timestamp_ms, headers): its own topic,
        key, value, partition, timestamp and headers. Records are enqueued as by
        ``send()`` (waiting for buffer memory as needed, each wait bounded by
        ``max_block_ms``), then awaited together; once all are enqueued their batches go
        without waiting out ``linger_ms``, as ``flush()`` sends everything. Raises at
        once only if the producer is not running; cancelling it cancels only the
        waiting: records already enqueued are still delivered.

        If iterating ``records`` raises midway (a generator that breaks, say), the call
        reads no further: it waits for the records it took, then raises
        :class:`SendBatchAbortedError` (chained from that exception) whose ``results``
        are theirs, as this call would have returned them; a retry should resend only
        the records after those.
        """
        if not self._may_send:
            self._check_can_send()
        if self._intercepting:  # interceptors see (and may replace) each record
            return await send_each(self.send, records)
        results: list[Any] = []
        batches: dict[ProducerBatch, None] = {}
        try:
            await self._enqueue_each(records, results, batches)
        except Exception as exc:
            # The records taken so far are enqueued (or failed alone): the caller must
            # get their results, or a retry would send them twice.
            await self._await_batches(batches)
            raise SendBatchAbortedError(aborted_message(len(results), exc), results) from exc
        await self._await_batches(batches)
        return results

    async def _enqueue_each(
        self,
        records: Iterable[ProducerRecord | RecordTuple],
        results: list[Any],
        batches: dict[ProducerBatch, None],
    ) -> None:
        """send_batch()'s loop: a slot in ``results`` per record taken, holding its error
        if it cannot be sent, else filled when its batch (a key of ``batches``)
        completes. What iterating ``records`` raises goes through, ``results`` then
        holding a slot for each record taken before (and each appended with its sink)."""
        # No future per record: each run of records that went into one batch reports to
        # a slice of `results` when that batch completes (ProducerBatch.add_sink).
        run_batch: ProducerBatch | None = None  # the batch the current run went into
        run_first = run_slot = 0

        def end_run(stop: int) -> None:
            nonlocal run_batch
            if run_batch is not None:
                run_batch.add_sink(run_first, results, run_slot, stop - run_slot)
                run_batch = None

        stager, accumulator, appender = self._stager, self._accumulator, self._appender
        awaiting = self._awaits_serializers
        taken = 0  # the slots up to here have records appended (or their error)
        try:
            pending = iter(records)
            while True:
                if appender is not None:
                    # The records that need no Python code, in one C call (runs and sinks
                    # included); then here, the first record it did not take.
                    end_run(len(results))
                    declined = appender.append_each(pending, results, batches)
                    if declined is None:
                        break
                    record = declined[0]
                else:
                    record = next(pending, _NO_MORE)
                    if record is _NO_MORE:
                        break
                slot = len(results)
                results.append(None)
                try:
                    topic, value, key, partition, timestamp_ms, headers = send_arguments(record)
                    if type(topic) is not str:
                        topic = exact_topic(topic)
                    if not awaiting:
                        staged = stager.stage(topic, value, key, partition, timestamp_ms, headers)
                        batch = None
                        if staged is not None:
                            chosen_partition, _, staged_record = staged
                            batch = accumulator.try_append(
                                topic, chosen_partition, None, staged_record
                            )
                        if batch is None:
                            # The slow path may wait, and the sender may complete a batch
                            # then: the current run must have its sink before that.
                            end_run(slot)
                            batch = await self._enqueue_slowly(
                                topic, value, key, partition, timestamp_ms, headers, None, staged
                            )
                    else:
                        end_run(slot)  # as for the slow path above: the serializers may wait
                        batch = await self._enqueue_awaiting(
                            topic, value, key, partition, timestamp_ms, headers, None
                        )
                except KafkaError as exc:
                    results[slot] = exc
                    end_run(slot)
                    if self._transactions is not None:
                        self._transactions.manager.record_refused(exc)
                    continue
                except BaseException:
                    del results[slot:]  # not taken: no result to wait for
                    raise
                if batch is not run_batch:
                    end_run(slot)
                    run_batch, run_first, run_slot = batch, batch.record_count - 1, slot
                    batches[batch] = None
                taken = slot + 1
        finally:
            # Every record appended reports to its slot, even if something raised (the
            # iterator, say).
            end_run(taken)

    async def _await_batches(self, batches: dict[ProducerBatch, None]) -> None:
        """Wait until every batch a send_batch() call put records in has completed."""
        # Lingering would only keep this caller waiting: no record of its own is coming.
        for batch in batches:
            batch.awaited = True
        if batches:
            self._sender.wakeup()
        await self._wait_for(list(batches))

    async def flush(self, timeout: float | None = None) -> None:
        """Send everything buffered now, ignoring ``linger_ms``, and wait until each of
        those records is acknowledged or has failed. ``timeout`` (s) raises KafkaTimeoutError."""
        self._check_running()
        pending = list(self._accumulator.incomplete)
        if not pending:
            return
        self._accumulator.begin_flush()
        self._sender.wakeup()
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                await self._wait_for(pending)
        except TimeoutError:
            raise KafkaTimeoutError(
                f"flush() did not complete within {timeout} s; records are still pending"
            ) from None
        finally:
            self._accumulator.end_flush()

    async def _wait_for(self, batches: list[ProducerBatch]) -> None:
        remaining = [b for b in batches if b in self._accumulator.incomplete]
        if not remaining:
            return
        done = anyio.Event()
        count = len(remaining)

        def one_done() -> None:
            nonlocal count
            count -= 1
            if count == 0:
                done.set()

        for batch in remaining:
            batch.add_done_callback(one_done)
        await done.wait()
