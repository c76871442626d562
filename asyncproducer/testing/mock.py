"""``MockProducer``: the ``Producer`` API with no broker, for unit tests of your own code.

Modelled on Java's ``org.apache.kafka.clients.producer.MockProducer``:

* every ``send()`` is recorded (:meth:`MockProducer.history`), after interceptors and
  serializers ran, so a value your serializer cannot handle raises ``SerializationError``
  from ``send()`` exactly as it would in production;
* with ``auto_complete=True`` (the default) each record's future completes inside
  ``send()``, with offsets counted per (topic, partition) from 0;
* with ``auto_complete=False`` futures stay pending until the test decides:
  :meth:`~MockProducer.complete_next` / :meth:`~MockProducer.error_next` (oldest first,
  returning False when nothing is pending, as Java's ``completeNext``/``errorNext``),
  :meth:`~MockProducer.complete_all` / :meth:`~MockProducer.fail_all`.

What it checks like the real producer: the configuration (``ProducerConfig``, and the
``partitioner`` setting resolved as the producer resolves it: Java's class names too), the
lifecycle (``send()`` before ``start()`` raises ``ProducerStateError``, after ``close()``
``ProducerClosedError``), topic names (``InvalidTopicError``), headers, explicit
partitions (``PartitionOutOfRangeError``), timestamps (``InvalidRecordTimestampError``),
record size (``RecordTooLargeError``). ``send_batch()`` sends each record through
``send()`` and gives one result per record, as the real one. Interceptors and
``on_delivery`` callbacks run at the same points as in the real producer.

Where it differs, on purpose: keyless records go round-robin over the topic's partitions
(the real default partitioner is sticky, which would put every record of a short test on
one random partition); a failed record takes no offset (a broker assigns offsets only to
what it writes; Java's mock assigns them at ``send()``); ``close()`` fails records still
pending with ``ProducerClosedError`` rather than waiting for a test that will never
complete them.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import anyio.lowlevel

from asyncproducer._batch import DeliveryCallback
from asyncproducer._cluster import BrokerInfo, ClusterSnapshot, PartitionMetadata, TopicInfo
from asyncproducer._futures import FutureFactory, complete, fail, future_factory
from asyncproducer._lifecycle import State, transition_allowed
from asyncproducer._send_batch import send_each
from asyncproducer._staging import (
    call_partitioner,
    check_headers,
    check_partition,
    check_record_size,
    check_timestamp,
    configured_partitioner,
    exact_topic,
    is_custom,
)
from asyncproducer._types import (
    Header,
    PartitionInfo,
    ProducerRecord,
    RecordMetadata,
    RecordTuple,
    TopicPartition,
)
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import (
    KafkaError,
    ProducerClosedError,
    ProducerStateError,
    UnknownTopicOrPartitionError,
    fresh_copy,
)
from asyncproducer.interceptors import InterceptorChain
from asyncproducer.partitioners import partition_for_key
from asyncproducer.protocol.records import BATCH_HEADER_SIZE, record_size_upper_bound
from asyncproducer.serializers import resolve_serializer

__all__ = ["MockProducer", "SentRecord"]

logger: logging.Logger = logging.getLogger("asyncproducer.testing.mock")

_MOCK_BROKER = BrokerInfo(node_id=0, host="mock", port=9092)


class SentRecord(NamedTuple):
    """One ``send()`` as the mock recorded it: the record after interceptors, the partition
    chosen, the timestamp used, and the bytes the serializers produced."""

    topic: str
    partition: int
    key: Any
    value: Any
    headers: tuple[Header, ...]
    timestamp_ms: int
    key_bytes: bytes | None
    value_bytes: bytes | None


@dataclasses.dataclass(slots=True)
class _Pending:
    """A sent record whose future the test has not completed yet."""

    future: Any
    record: SentRecord
    on_delivery: DeliveryCallback | None
    intercepted: ProducerRecord | None


class MockProducer:
    """A producer that records what is sent and never touches the network.

    ``partitions``: how many partitions each topic has, for choosing and checking
    partitions — an int for every topic, or a mapping ``{topic: count}`` naming the only
    topics that exist (a send to another raises ``UnknownTopicOrPartitionError``).
    Every other keyword argument is a ``Producer`` setting, validated the same way.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] = "mock:9092",
        *,
        auto_complete: bool = True,
        partitions: Mapping[str, int] | int = 3,
        **config: Any,
    ) -> None:
        self._config = ProducerConfig.from_kwargs(bootstrap_servers, **config)
        self._setup(auto_complete, partitions)

    @classmethod
    def from_config(
        cls,
        properties: Mapping[str, Any],
        *,
        auto_complete: bool = True,
        partitions: Mapping[str, int] | int = 3,
    ) -> MockProducer:
        """Like ``Producer.from_config`` (Java-style keys); ``bootstrap.servers`` optional."""
        producer = cls.__new__(cls)
        producer._config = ProducerConfig.from_java_properties(
            {"bootstrap.servers": "mock:9092", **properties}
        )
        producer._setup(auto_complete, partitions)
        return producer

    def _setup(self, auto_complete: bool, partitions: Mapping[str, int] | int) -> None:
        config = self._config
        self.auto_complete = auto_complete
        self._partitions = _check_partition_counts(partitions)
        self._key_serializer = resolve_serializer(config.key_serializer, is_key=True)
        self._value_serializer = resolve_serializer(config.value_serializer, is_key=False)
        self._partitioner = configured_partitioner(config)
        self._custom_partitioner = is_custom(self._partitioner)
        self._interceptors = InterceptorChain(list(config.interceptors))
        self._state = State.NEW
        self._new_future: FutureFactory | None = None
        self._history: list[SentRecord] = []
        self._pending: collections.deque[_Pending] = collections.deque()
        self._next_offset: dict[TopicPartition, int] = {}
        self._round_robin: dict[str, int] = {}
        self._failed_records = 0
        self.flush_count: int = 0
        """How many times ``flush()`` was called (to assert that your code flushes)."""
        self.send_exception: BaseException | None = None
        """Set it to make every ``send()`` raise it, as a full buffer or a missing topic
        would (Java's ``MockProducer.sendException``)."""

    # ------------------------------------------------------------------ state

    @property
    def config(self) -> ProducerConfig:
        return self._config

    @property
    def state(self) -> State:
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is State.CLOSED

    @property
    def flushed(self) -> bool:
        """No record is waiting for completion (Java's ``MockProducer.flushed()``)."""
        return not self._pending

    @property
    def pending_count(self) -> int:
        """Records sent but not yet completed or failed (only with ``auto_complete=False``)."""
        return len(self._pending)

    def _transition(self, to: State) -> None:
        if not transition_allowed(self._state, to):
            raise ProducerStateError(f"cannot go from {self._state.value} to {to.value}")
        self._state = to

    def _check_running(self) -> None:
        # The same errors, in the same states, as Producer._check_running.
        if self._state is State.RUNNING:
            return
        if self._state is State.NEW:
            raise ProducerStateError("the producer is not started: use 'async with' or start()")
        raise ProducerClosedError(f"the producer is {self._state.value}; it cannot send")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MockProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._transition(State.STARTING)
        # Futures of the running event loop: asyncio.Future on asyncio, TrioFuture on trio.
        self._new_future = future_factory()
        self._interceptors.configure(self._config.configs())
        await anyio.lowlevel.checkpoint()
        self._transition(State.RUNNING)

    # The timeout parameters mirror Producer.close/flush, the public API users know.
    async def aclose(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """``close()``, as ``Producer.aclose``."""
        await self.close(timeout)

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Fail records still pending with ``ProducerClosedError``; safe to call twice.
        ``timeout`` is accepted for compatibility: nothing here waits."""
        await anyio.lowlevel.checkpoint()
        if self._state is State.NEW:
            self._transition(State.CLOSED)
            return
        if self._state is not State.RUNNING:
            return
        self._transition(State.CLOSING)
        try:
            self.fail_all(
                ProducerClosedError(
                    "the producer was closed before this record was acknowledged "
                    "(MockProducer with auto_complete=False: nothing completed it)"
                )
            )
        finally:
            self._interceptors.close()
            close_partitioner = getattr(self._partitioner, "close", None)
            if close_partitioner is not None:
                close_partitioner()
            self._transition(State.CLOSED)

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
        """Record the send and return the record's future (see the module docstring)."""
        self._check_running()
        # A real send() can wait (metadata, memory); a checkpoint keeps the mock a genuine
        # await point, and a send cancelled here records nothing, as in the real producer.
        await anyio.lowlevel.checkpoint()
        self._check_running()
        intercepted = None
        if self._interceptors:
            intercepted = self._interceptors.on_send(
                ProducerRecord(topic, value, key, partition, timestamp_ms, headers)
            )
            topic, value, key = intercepted.topic, intercepted.value, intercepted.key
            partition, timestamp_ms = intercepted.partition, intercepted.timestamp_ms
            headers = intercepted.headers
        try:
            record = self._record(topic, value, key, partition, timestamp_ms, headers)
        except Exception as exc:
            if intercepted is not None:
                self._interceptors.on_send_error(intercepted, exc)
            raise
        self._history.append(record)
        assert self._new_future is not None
        pending = _Pending(self._new_future(), record, on_delivery, intercepted)
        if self.auto_complete:
            self._succeed(pending)
        else:
            self._pending.append(pending)
        return pending.future

    def _record(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Sequence[Header] | None,
    ) -> SentRecord:
        """What the real send() does before the append, in its order; raises like it."""
        if self.send_exception is not None:
            raise fresh_copy(self.send_exception)
        topic = exact_topic(topic)
        checked = () if headers is None else check_headers(topic, headers)
        key_bytes = self._key_serializer(topic, checked, key)
        value_bytes = self._value_serializer(topic, checked, value)
        count = self._partition_count(topic)
        if partition is None:
            partition = self._choose_partition(topic, key, key_bytes, value, value_bytes, count)
        else:
            partition = check_partition(topic, partition, count)
        size = record_size_upper_bound(key_bytes, value_bytes, checked) + BATCH_HEADER_SIZE
        check_record_size(size, topic, self._config)
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        else:
            timestamp_ms = check_timestamp(topic, timestamp_ms)
        return SentRecord(
            topic, partition, key, value, checked, timestamp_ms, key_bytes, value_bytes
        )

    def _partition_count(self, topic: str) -> int:
        if isinstance(self._partitions, int):
            return self._partitions
        count = self._partitions.get(topic)
        if count is None:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} does not exist in this MockProducer (its topics: "
                f"{sorted(self._partitions)}); add it to partitions={{...}}"
            )
        return count

    def _choose_partition(
        self,
        topic: str,
        key: Any,
        key_bytes: bytes | None,
        value: Any,
        value_bytes: bytes | None,
        count: int,
    ) -> int:
        if self._custom_partitioner:
            chosen = call_partitioner(
                self._partitioner,
                topic,
                key,
                key_bytes,
                value,
                value_bytes,
                self._snapshot(topic, count),
            )
            return check_partition(topic, chosen, count, by="the partitioner")
        if key_bytes is not None and not self._config.partitioner_ignore_keys:
            return partition_for_key(key_bytes, count)
        turn = self._round_robin.get(topic, 0)
        self._round_robin[topic] = turn + 1
        return turn % count

    @staticmethod
    def _snapshot(topic: str, count: int) -> ClusterSnapshot:
        """A one-broker cluster view for a custom partitioner (every partition has a leader)."""
        partitions = tuple(
            PartitionMetadata(topic, p, leader=0, leader_epoch=0, replicas=(0,), isr=(0,))
            for p in range(count)
        )
        return ClusterSnapshot(
            brokers={0: _MOCK_BROKER}, topics={topic: TopicInfo(topic, partitions)}
        )

    async def send_and_wait(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Sequence[Header] | None = None,
    ) -> RecordMetadata:
        """``send()`` and await the acknowledgement (with ``auto_complete=False`` this waits
        until another task calls ``complete_next()`` or ``error_next()``)."""
        future = await self.send(topic, value, key, partition, timestamp_ms, headers)
        metadata: RecordMetadata = await future
        return metadata

    async def send_batch(
        self, records: Iterable[ProducerRecord | RecordTuple]
    ) -> list[RecordMetadata | KafkaError]:
        """``send()`` each record (a ProducerRecord or a RecordTuple) and await them all:
        one result per record, in order, as the real ``send_batch()`` gives them (with
        ``auto_complete=False`` this waits until the test completes or fails them)."""
        self._check_running()
        return await send_each(self.send, records)

    async def flush(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Complete every pending record successfully, as Java's ``MockProducer.flush()``
        does (a real flush waits until the broker acknowledged them)."""
        self._check_running()
        self.flush_count += 1
        self.complete_all()
        await anyio.lowlevel.checkpoint()

    async def partitions_for(self, topic: str) -> list[PartitionInfo]:
        """The topic's partitions on a one-broker cluster (node 0 leads them all)."""
        self._check_running()
        await anyio.lowlevel.checkpoint()
        snapshot = self._snapshot(topic, self._partition_count(topic))
        return snapshot.partition_infos(snapshot.topics[topic])

    def metrics(self) -> dict[str, float]:
        """The real producer's metrics that mean something without a broker, by the same
        Java names: records sent and failed, and the buffer (never used here)."""
        return {
            "record-send-total": float(len(self._history)),
            "record-error-total": float(self._failed_records),
            "record-retry-total": 0.0,
            "request-total": 0.0,
            "buffer-total-bytes": float(self._config.buffer_memory),
            "buffer-available-bytes": float(self._config.buffer_memory),
        }

    # ------------------------------------------------------------------ the test's side

    def history(self) -> list[SentRecord]:
        """Every record sent since construction or the last ``clear()``, in send order."""
        return list(self._history)

    def clear(self) -> None:
        """Forget the history. Pending records stay pending, and offsets keep counting
        (a broker does not reuse offsets)."""
        self._history.clear()

    def complete_next(self) -> bool:
        """Acknowledge the oldest pending record; False if none is pending."""
        if not self._pending:
            return False
        self._succeed(self._pending.popleft())
        return True

    def error_next(self, exception: BaseException) -> bool:
        """Fail the oldest pending record with ``exception``; False if none is pending."""
        if not self._pending:
            return False
        self._fail(self._pending.popleft(), exception)
        return True

    def complete_all(self) -> int:
        """Acknowledge every pending record, oldest first; returns how many."""
        count = 0
        while self.complete_next():
            count += 1
        return count

    def fail_all(self, exception: BaseException) -> int:
        """Fail every pending record, each with a fresh copy of ``exception`` (one
        exception object raised in several tasks would share one traceback, as in the
        real producer); returns how many."""
        count = 0
        while self._pending:
            self._fail(self._pending.popleft(), fresh_copy(exception))
            count += 1
        return count

    def _succeed(self, pending: _Pending) -> None:
        record = pending.record
        tp = TopicPartition(record.topic, record.partition)
        offset = self._next_offset.get(tp, 0)
        self._next_offset[tp] = offset + 1
        metadata = RecordMetadata(
            record.topic,
            record.partition,
            offset,
            record.timestamp_ms,
            -1 if record.key_bytes is None else len(record.key_bytes),
            -1 if record.value_bytes is None else len(record.value_bytes),
        )
        complete(pending.future, metadata)
        self._finished(pending, metadata, None)

    def _fail(self, pending: _Pending, exception: BaseException) -> None:
        self._failed_records += 1
        fail(pending.future, exception)
        self._finished(pending, None, exception)

    def _finished(
        self, pending: _Pending, metadata: RecordMetadata | None, error: BaseException | None
    ) -> None:
        # The future is done before user code runs, as in ProducerBatch._finished.
        if pending.on_delivery is not None:
            try:
                pending.on_delivery(metadata, error)
            except Exception:
                logger.exception("on_delivery callback %r raised", pending.on_delivery)
        if pending.intercepted is not None:
            if metadata is None:  # failed: as the real producer tells its interceptors
                record = pending.record
                metadata = RecordMetadata(record.topic, record.partition, -1, -1, -1, -1)
            self._interceptors.on_acknowledgement(metadata, error)


def _check_partition_counts(partitions: Mapping[str, int] | int) -> Mapping[str, int] | int:
    counts = {"": partitions} if isinstance(partitions, int) else partitions
    for topic, count in counts.items():
        if type(count) is not int or count < 1:
            where = "partitions" if topic == "" else f"partitions[{topic!r}]"
            raise ValueError(f"{where}={count!r}: must be an int >= 1")
    return partitions if isinstance(partitions, int) else dict(partitions)
