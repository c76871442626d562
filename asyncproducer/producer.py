"""The public ``Producer``: lifecycle, ``send()``, ``flush()``, ``close()``.

``send()`` runs the Java producer's ``doSend`` in order: interceptors' ``on_send`` →
metadata for the topic (waits at most ``max_block_ms``) → key/value serializers → size
check → partition (explicit, custom partitioner, murmur2 of the key, or sticky for
keyless records) — these steps are ``_staging.RecordStager`` — → append to the
accumulator (reserving buffer memory for a new batch, also within ``max_block_ms``). It
returns the record's future at once; the sender task completes it. ``send_batch()``
stages each record the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from types import MethodType
from typing import Any

import anyio

from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._backoff import ExponentialBackoff
from asyncproducer._batch import DeliveryCallback, ProducerBatch, Record, batch_reservation
from asyncproducer._cluster import parse_bootstrap_servers
from asyncproducer._connection import ConnectionSettings
from asyncproducer._futures import Checkpoint, FutureFactory, checkpoint_factory, future_factory
from asyncproducer._host import background_task, spawn_host
from asyncproducer._idempotence import IdempotenceState
from asyncproducer._memory import BufferPool
from asyncproducer._metadata import MetadataManager
from asyncproducer._pool import ConnectionPool
from asyncproducer._sasl import SaslSettings
from asyncproducer._send_batch import aborted_message, send_arguments, send_each
from asyncproducer._sender import Sender, SenderSettings
from asyncproducer._staging import RecordStager, Staged, exact_topic
from asyncproducer._tls import client_tls_context
from asyncproducer._types import Header, ProducerRecord, RecordMetadata, RecordTuple
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import (
    KafkaError,
    KafkaTimeoutError,
    ProducerClosedError,
    ProducerStateError,
    SendBatchAbortedError,
    fresh_copy,
)
from asyncproducer.interceptors import InterceptorChain

logger = logging.getLogger("asyncproducer.producer")


class State(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"
    """The sender task died; sends raise, close() cleans up."""


_TRANSITIONS: dict[State, frozenset[State]] = {
    State.NEW: frozenset({State.STARTING, State.CLOSED}),
    State.STARTING: frozenset({State.RUNNING, State.FAILED}),
    State.RUNNING: frozenset({State.CLOSING, State.FAILED}),
    State.FAILED: frozenset({State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class Producer:
    """An asynchronous Kafka producer. See the module docstring and ``docs/producer.md``."""

    def __init__(self, bootstrap_servers: str | Sequence[str] | None = None, **config: Any) -> None:
        if bootstrap_servers is None:
            bootstrap_servers = config.pop("bootstrap_servers", None)
        if bootstrap_servers is None:
            raise TypeError("Producer() needs bootstrap_servers='host:port[,host:port...]'")
        self._config = ProducerConfig.from_kwargs(bootstrap_servers, **config)
        self._state = State.NEW
        self._failure: BaseException | None = None
        self._setup()

    @classmethod
    def from_config(cls, properties: Mapping[str, Any]) -> Producer:
        """A producer from Java-style keys: ``{"bootstrap.servers": ..., "linger.ms": 5}``."""
        producer = cls.__new__(cls)
        producer._config = ProducerConfig.from_java_properties(properties)
        producer._state = State.NEW
        producer._failure = None
        producer._setup()
        return producer

    def _setup(self) -> None:
        config = self._config
        self._interceptors = InterceptorChain(list(config.interceptors))
        self._intercepting = bool(self._interceptors)
        self._max_block_s = config.max_block_ms / 1000
        self._batch_size = config.batch_size
        self._new_future: FutureFactory | None = None
        self._checkpoint: Checkpoint = anyio.lowlevel.checkpoint  # the loop's own, once started
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._started = anyio.Event()
        self._memory = BufferPool(config.buffer_memory)
        self._accumulator = RecordAccumulator(
            batch_size=config.batch_size,
            linger_ms=config.linger_ms,
            compression=config.compression_type,
            compression_level=config.compression_level(),
            delivery_timeout_ms=config.delivery_timeout_ms,
            retry_backoff=ExponentialBackoff(config.retry_backoff_ms, config.retry_backoff_max_ms),
            # Idempotence keeps order with sequence numbers; without it only one request
            # per partition at a time does (Java's guaranteeMessageOrder).
            guarantee_order=not config.idempotence_enabled
            and config.max_in_flight_requests_per_connection == 1,
            charge=self._memory.try_reserve,
        )
        self._pool = ConnectionPool(
            ConnectionSettings(
                client_id=config.client_id,
                request_timeout_ms=config.request_timeout_ms,
                socket_connection_setup_timeout_ms=config.socket_connection_setup_timeout_ms,
                ssl_context=client_tls_context(config),
                handshake=sasl.handshake() if (sasl := SaslSettings.from_config(config)) else None,
            ),
            reconnect_backoff_ms=config.reconnect_backoff_ms,
            reconnect_backoff_max_ms=config.reconnect_backoff_max_ms,
        )
        self._metadata = MetadataManager(
            self._pool,
            parse_bootstrap_servers(config.bootstrap_servers),
            metadata_max_age_ms=config.metadata_max_age_ms,
            retry_backoff_ms=config.retry_backoff_ms,
            allow_auto_topic_creation=config.allow_auto_create_topics,
        )
        self._stager = RecordStager(config, self._metadata)
        self._partitioner = self._stager.partitioner
        # The C shortcut for records that need no Python code (see _staging); interceptors
        # see every record, so not with them.
        self._appender = (
            None if self._intercepting else self._stager.appender(self._accumulator.queues)
        )
        if self._appender is not None:
            # send() in C: an awaitable that appends through the shortcut when awaited
            # (while the producer runs) and runs this class's send() for everything else.
            # It saves the coroutine and its frame: ~720 -> ~500 ns a send() in a loop.
            self._appender.python_send = MethodType(Producer.send, self)
            if type(self).send is Producer.send:  # a subclass's own send() stays in charge
                vars(self)["send"] = self._appender.send
        self._sender = Sender(
            SenderSettings(
                acks=config.acks,
                request_timeout_ms=config.request_timeout_ms,
                max_request_size=config.max_request_size,
                max_in_flight_requests_per_connection=config.max_in_flight_requests_per_connection,
                retries=config.retries,
            ),
            self._accumulator,
            self._metadata,
            self._pool,
            self._memory,
            self._interceptors,
            IdempotenceState() if config.idempotence_enabled else None,
        )

    @property
    def config(self) -> ProducerConfig:
        return self._config

    @property
    def state(self) -> State:
        return self._state

    def _transition(self, to: State) -> None:
        if to not in _TRANSITIONS[self._state]:
            raise ProducerStateError(f"cannot go from {self._state.value} to {to.value}")
        self._state = to
        if self._appender is not None:
            self._appender.open = to is State.RUNNING

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the background tasks. No network traffic yet: like Java's producer, the
        first ``send()`` to a topic fetches its metadata (bounded by ``max_block_ms``)."""
        self._transition(State.STARTING)
        self._new_future = future_factory()
        if self._appender is not None:
            self._appender.new_future = self._new_future
        self._checkpoint = checkpoint_factory()
        configs = {f.name: getattr(self._config, f.name) for f in dataclasses.fields(self._config)}
        self._interceptors.configure(configs)
        configure_partitioner = getattr(self._partitioner, "configure", None)
        if configure_partitioner is not None:  # optional, as in Java's Partitioner
            configure_partitioner(configs)
        spawn_host(self._host, name=f"asyncproducer {self._config.client_id}")
        await self._started.wait()
        if self._state is State.STARTING:
            self._transition(State.RUNNING)
        else:  # the host failed while starting: say so now, not at the first send
            self._check_running()

    async def _host(self) -> None:
        """Own the producer's task group until close() (must not raise; see _host.py)."""
        try:
            async with self._pool, anyio.create_task_group() as tasks:
                tasks.start_soon(self._metadata.run, name="asyncproducer metadata")
                tasks.start_soon(self._run_sender, name="asyncproducer sender")
                self._started.set()
                await self._stop.wait()
                tasks.cancel_scope.cancel()
        except BaseException as exc:  # the host is the last line: record, never raise
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                logger.exception("asyncproducer background task group failed")
            self._die(exc)
        finally:
            self._started.set()
            self._stopped.set()

    @background_task
    async def _run_sender(self) -> None:
        try:
            await self._sender.run()
        except Exception as exc:
            if exc is not self._sender.fatal_error:  # that one was logged as it happened
                logger.exception("the asyncproducer sender task died")
            self._die(exc)
            self._stop.set()

    def _die(self, cause: BaseException) -> None:
        """The sender is gone: fail everything pending, make later sends raise (a fatal
        broker error as itself, e.g. ClusterAuthorizationFailedError)."""
        if self._state in (State.STARTING, State.RUNNING):
            self._failure = cause
            self._transition(State.FAILED)
        self._sender.fail_everything(self._failure_error())

    def _failure_error(self) -> KafkaError:
        cause, fatal = self._failure, self._sender.fatal_error
        if fatal is not None and cause is fatal:
            return fresh_copy(fatal)
        return ProducerStateError(f"the producer's sender task stopped: {cause!r}")

    async def close(self, timeout: float | None = None) -> None:
        """Send what is buffered, waiting at most ``timeout`` seconds (default: until every
        record is acknowledged or has failed, which ``delivery_timeout_ms`` bounds); then
        fail what is left with ProducerClosedError and stop. Safe to call twice."""
        if self._state is State.NEW:
            self._transition(State.CLOSED)
            return
        if self._state in (State.CLOSING, State.CLOSED):
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()
            return
        self._transition(State.CLOSING)
        deadline = anyio.current_time() + (math.inf if timeout is None else timeout)
        cancelled = False
        try:
            with anyio.CancelScope(deadline=deadline):
                self._accumulator.closing = True
                self._sender.wakeup()
                await self._wait_for(list(self._accumulator.incomplete))
        except anyio.get_cancelled_exc_class():
            cancelled = True
            raise
        finally:
            # Connections close gracefully (so the brokers read everything written)
            # within what is left of the timeout; at once if the caller was cancelled.
            left = 0.0 if cancelled else max(0.0, deadline - anyio.current_time())
            self._pool.close_grace_s = min(self._pool.close_grace_s, left)
            with anyio.CancelScope(shield=True):
                self._sender.fail_everything(
                    ProducerClosedError(
                        f"the producer was closed (timeout={timeout}) before this record "
                        "was acknowledged"
                    )
                )
                self._stop.set()
                await self._stopped.wait()
                self._interceptors.close()
                close_partitioner = getattr(self._partitioner, "close", None)
                if close_partitioner is not None:
                    close_partitioner()
                self._transition(State.CLOSED)

    def _check_running(self) -> None:
        if self._state is State.RUNNING:
            return
        if self._state is State.NEW:
            raise ProducerStateError("the producer is not started: use 'async with' or start()")
        if self._state is State.FAILED:
            if self._failure is self._sender.fatal_error:
                raise self._failure_error()
            raise ProducerStateError(
                f"the producer failed and can no longer send: {self._failure!r}"
            )
        raise ProducerClosedError(f"the producer is {self._state.value}; it cannot send")

    # ------------------------------------------------------------------ sending

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
        if self._state is not State.RUNNING:
            self._check_running()
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
            staged = self._stager.stage(topic, value, key, partition, timestamp_ms, headers)
            batch = None
            if staged is not None:
                batch = self._accumulator.try_append(topic, staged[0], future, staged[2])
            if batch is None:
                batch = await self._enqueue_slowly(
                    topic, value, key, partition, timestamp_ms, headers, future, staged
                )
            if on_delivery is not None or record is not None:
                batch.add_hooks(on_delivery, record)
            return future
        except Exception as exc:
            if record is not None:
                self._interceptors.on_send_error(record, exc)
            raise

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
            if self._state is not State.RUNNING:  # closed (or failed) while we waited
                self._check_running()
            staged = self._stager.stage(topic, value, key, partition, timestamp_ms, headers)
            assert staged is not None  # wait_for_topic raises unless the topic is known
            batch = self._accumulator.try_append(topic, staged[0], future, staged[2])
            if batch is not None:
                return batch
        chosen_partition, chosen, record = staged
        return await self._append_to_new_batch(
            topic, chosen_partition, chosen, key, value, future, record, deadline
        )

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
        if accumulator.has_full_batch(topic, partition):
            # Once per full batch, not per record (a full event-loop turn per record would
            # cost more than the send itself): let the sender run, so a tight loop of
            # sends cannot starve it until the buffer is full. Not when the record opens a
            # batch only because the last one was sent already (linger_ms=0): the records
            # a task sends before it yields then share one request, not one each. Trio's
            # rule is a checkpoint on every call; this is the documented exception.
            await self._checkpoint()
            if self._state is not State.RUNNING:  # closed (or failed) meanwhile
                self._check_running()
            # Another task may have opened the partition's next batch meanwhile.
            batch = accumulator.try_append(topic, partition, future, record)
            if batch is not None:
                return batch
        if chosen:
            moved = self._stager.next_partition(topic, partition, key, value, record)
            if moved is not None:
                partition = moved
                batch = accumulator.try_append(topic, partition, future, record)
                if batch is not None:
                    return batch
        reserved, record_capacity = batch_reservation(self._batch_size, record, self._memory.total)
        if not self._memory.try_reserve(reserved):
            self._sender.wakeup()  # senders waiting for memory make batches sendable now
            if deadline is None:
                deadline = time.monotonic() + self._max_block_s
            await self._memory.reserve(reserved, deadline - time.monotonic())
            if self._state is not State.RUNNING:  # closed (or failed) while we waited
                self._memory.release(reserved)
                self._check_running()
        now_ms = time.monotonic() * 1000
        batch, created = accumulator.append_to_new_batch(
            topic, partition, future, record, reserved, now_ms, record_capacity
        )
        if created:
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
        if self._state is not State.RUNNING:
            self._check_running()
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
        taken = 0  # the slots up to here have records appended (or their error)
        try:
            pending = iter(records)
            while True:
                if appender is not None:
                    # The records that need no Python code, in one C call (runs and sinks
                    # included); then here, the first record it did not take.
                    end_run(len(results))
                    declined = appender.append_each(pending, results, batches, ProducerRecord)
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
                    staged = stager.stage(topic, value, key, partition, timestamp_ms, headers)
                    batch = None
                    if staged is not None:
                        batch = accumulator.try_append(topic, staged[0], None, staged[2])
                    if batch is None:
                        # The slow path may wait, and the sender may complete a batch then:
                        # the current run must have its sink before that.
                        end_run(slot)
                        batch = await self._enqueue_slowly(
                            topic, value, key, partition, timestamp_ms, headers, None, staged
                        )
                except KafkaError as exc:
                    results[slot] = exc
                    end_run(slot)
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

    def metrics(self) -> dict[str, int]:
        """Counters since start: Produce ``requests``, first-attempt ``batches`` and their
        ``records``, ``retries``, ``failed_records``, ``expired_batches``, and the
        ``buffer_available`` bytes of ``buffer_memory``."""
        stats = dataclasses.asdict(self._sender.stats)
        stats["buffer_available"] = self._memory.available
        return stats

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partition ids (fetching its metadata, bounded by ``max_block_ms``)."""
        self._check_running()
        info = await self._metadata.wait_for_topic(topic, self._max_block_s * 1000)
        return {p.partition for p in info.partitions}


_NO_MORE = object()

__all__ = ["Producer", "State"]
