"""From a record as ``send()`` receives it to what a batch keeps: serialized, measured and
partitioned (the part of Java's ``doSend`` between the interceptors and the accumulator).

``send()`` and ``send_batch()`` both stage every record here. It is synchronous: when the
topic's metadata is not known yet, :meth:`RecordStager.stage` says so (None) and the
caller waits for it, then stages again. It runs once per record, so the common case (bytes
or None passed through, a keyless record's sticky partition, no headers) takes no Python
call beyond :meth:`stage` itself.

Where the C extension built, :meth:`RecordStager.appender` gives a shortcut for that
common case: ``asyncproducer._speedups.Appender`` stages the record *and* appends it to
its partition's open batch in one C call, or declines (None, nothing changed) whenever
the record needs anything more (a serializer, headers, a first sticky choice, a new
batch, an error to raise); then the caller stages it here. The shortcut decides nothing
this module would decide otherwise: ``tests/fake/test_fast_path.py`` runs the same sends
with and without it. Its ``send`` is ``Producer.send`` itself while the producer has it:
an awaitable in C (``SendCall``) that takes the shortcut when awaited and runs the Python
coroutine for every record the shortcut declines.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from asyncproducer._batch import ProducerBatch, Record
from asyncproducer._metadata import MetadataManager, check_topic_name
from asyncproducer._native import speedups
from asyncproducer._types import Header
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import (
    InvalidRecordTimestampError,
    PartitionOutOfRangeError,
    RecordTooLargeError,
    SerializationError,
)
from asyncproducer.partitioners import DefaultPartitioner, resolve_partitioner
from asyncproducer.protocol.records import (
    BARE_RECORD_OVERHEAD,
    BATCH_HEADER_SIZE,
    record_size_upper_bound,
)
from asyncproducer.serializers import passes_bytes_through, resolve_serializer

_BARE_BATCH_BOUND = BARE_RECORD_OVERHEAD + BATCH_HEADER_SIZE
"""A batch holding one record without headers takes at most this plus the key's and
value's lengths (each -1 when None)."""

Staged = tuple[int, bool, Record]
"""(partition, whether the partitioner chose it, the record as a batch takes it)."""

_MAX_TIMESTAMP = 2**63 - 1

Appender: Any = None if speedups is None else speedups.Appender
if speedups is not None:
    # What appender.send() returns: a coroutine in all but type, as asyncio.create_task()
    # and trio's start_soon() check.
    Coroutine.register(speedups.SendCall)


class RecordStager:
    def __init__(self, config: ProducerConfig, metadata: MetadataManager) -> None:
        self._config = config
        self._metadata = metadata
        self._key_serializer = resolve_serializer(config.key_serializer, is_key=True)
        self._value_serializer = resolve_serializer(config.value_serializer, is_key=False)
        self._raw_keys = passes_bytes_through(config.key_serializer)
        self._raw_values = passes_bytes_through(config.value_serializer)
        self.partitioner = resolve_partitioner(config.partitioner)
        # Exactly the default: subclasses (UniformStickyPartitioner) are treated as custom.
        self._custom = type(self.partitioner) is not DefaultPartitioner
        self._ignore_keys = config.partitioner_ignore_keys
        partitioner = self.partitioner
        # The default partitioner's sticky partition of a topic, or None: a C-level dict
        # lookup instead of three calls per keyless record.
        self._sticky_partition: Callable[[str], int | None] | None = (
            partitioner.sticky.current
            if isinstance(partitioner, DefaultPartitioner) and not self._custom
            else None
        )
        self._moves_sticky = hasattr(partitioner, "on_new_batch")
        self._size_limit = min(config.max_request_size, config.buffer_memory)

    def appender(self, queues: dict[tuple[str, int], deque[ProducerBatch]]) -> Any:
        """The C shortcut through :meth:`stage` and the append to an open batch of
        ``queues`` (the accumulator's), or None: without the C extension, or when this
        producer's records always need Python (serializers, a custom partitioner)."""
        if Appender is None or self._sticky_partition is None:
            return None
        if not (self._raw_keys and self._raw_values):
            return None
        assert isinstance(self.partitioner, DefaultPartitioner)
        return Appender(
            metadata=self._metadata,
            sticky=self.partitioner.sticky.partitions,
            queues=queues,
            clock=time.time,
            records_type=ProducerBatch,
            size_limit=self._size_limit,
            bare_bound=_BARE_BATCH_BOUND,
            hash_keys=not self._ignore_keys,
        )

    def stage(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Sequence[Header] | None,
    ) -> Staged | None:
        """Serialize, measure and partition the record; None if the topic's metadata is
        not known yet (wait for it, then stage again). Raises what makes the record
        unsendable: SerializationError, RecordTooLargeError, PartitionOutOfRangeError."""
        if type(topic) is not str:
            check_topic_name(topic)  # before the lookup: a list is not even hashable
        info = self._metadata.snapshot.topics.get(topic)
        if info is None or not info.partitions or info.error_code:
            return None
        headers = check_headers(topic, headers) if headers else ()
        if self._raw_keys and (key is None or type(key) is bytes):
            key_bytes = key
        else:
            key_bytes = self._key_serializer(topic, headers, key)
        if self._raw_values and (value is None or type(value) is bytes):
            value_bytes = value
        else:
            value_bytes = self._value_serializer(topic, headers, value)
        key_size = -1 if key_bytes is None else len(key_bytes)
        value_size = -1 if value_bytes is None else len(value_bytes)
        if headers:
            size = record_size_upper_bound(key_bytes, value_bytes, headers) + BATCH_HEADER_SIZE
        else:
            size = _BARE_BATCH_BOUND + key_size + value_size
        if size > self._size_limit:
            check_record_size(size, topic, self._config)
        chosen = partition is None
        if chosen:
            if key_bytes is None and self._sticky_partition is not None:
                partition = self._sticky_partition(topic)
            if partition is None:
                partition = self.choose_partition(topic, key, key_bytes, value, value_bytes)
        else:
            check_partition(topic, partition, len(info.partitions))  # type: ignore[arg-type]
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        elif type(timestamp_ms) is not int or not 0 <= timestamp_ms <= _MAX_TIMESTAMP:
            timestamp_ms = check_timestamp(topic, timestamp_ms)
        record = (timestamp_ms, key_bytes, value_bytes, headers)
        return partition, chosen, record  # type: ignore[return-value]

    def choose_partition(
        self, topic: str, key: Any, key_bytes: bytes | None, value: Any, value_bytes: bytes | None
    ) -> int:
        snapshot = self._metadata.snapshot
        if self._ignore_keys and not self._custom:
            key, key_bytes = None, None
        chosen = self.partitioner.partition(topic, key, key_bytes, value, value_bytes, snapshot)
        if self._custom:
            count = len(snapshot.topics[topic].partitions)
            check_partition(topic, chosen, count, by="the partitioner")
        return chosen

    def next_partition(
        self, topic: str, partition: int, key: Any, value: Any, record: Record
    ) -> int | None:
        """KIP-480: a record whose partition the partitioner chose, about to open a new
        batch, first moves a sticky partitioner on, so that batches fill one partition at
        a time. The record's new partition, or None when its partition is not sticky."""
        key_bytes, value_bytes = record[1], record[2]
        if not self._moves_sticky:
            return None
        if not (self._custom or key_bytes is None or self._ignore_keys):
            return None  # a keyed record's partition is its key's
        self.partitioner.on_new_batch(topic, self._metadata.snapshot, partition)  # type: ignore[attr-defined]
        return self.choose_partition(topic, key, key_bytes, value, value_bytes)


def check_partition(topic: str, partition: int, count: int, *, by: str = "the record") -> None:
    """``partition`` must exist in a topic of ``count`` partitions (shared with MockProducer)."""
    if type(partition) is not int or not 0 <= partition < count:
        raise PartitionOutOfRangeError(
            f"partition {partition!r} given by {by} is not in the range "
            f"[0...{count - 1}] of topic {topic!r} ({count} partitions)"
        )


def check_timestamp(topic: str, timestamp_ms: Any) -> int:
    """A record's ``timestamp_ms`` as an int, if it is one from 0 to 2**63 - 1."""
    is_int = isinstance(timestamp_ms, int) and not isinstance(timestamp_ms, bool)
    if is_int and 0 <= timestamp_ms <= _MAX_TIMESTAMP:
        return int(timestamp_ms)
    raise InvalidRecordTimestampError(
        f"timestamp_ms for topic {topic!r} must be an int from 0 to 2**63 - 1 "
        f"(milliseconds since the epoch) or None, got {timestamp_ms!r}"
    )


def check_record_size(size: int, topic: str, config: ProducerConfig) -> None:
    """Java's ``ensureValidRecordSize``: ``size`` is the serialized record with batch
    overhead (shared with MockProducer)."""
    if size > min(config.max_request_size, config.buffer_memory):
        raise RecordTooLargeError(
            f"a record of {size} bytes (serialized, with batch overhead) for topic "
            f"{topic!r} exceeds max_request_size={config.max_request_size} or "
            f"buffer_memory={config.buffer_memory}"
        )


def check_headers(topic: str, headers: Sequence[Header]) -> tuple[Header, ...]:
    """The headers as a tuple of ``(str, bytes | None)`` pairs, each value exactly
    ``bytes`` (a subclass is copied): what the record encoder accepts, fixed at ``send()``
    so that a caller changing its list afterwards cannot change the record."""
    checked: list[Header] = []
    try:
        items = iter(headers)
    except TypeError:
        raise SerializationError(
            f"headers for topic {topic!r} must be a sequence of (str, bytes | None) pairs, "
            f"got {type(headers).__name__}"
        ) from None
    for header in items:
        try:
            name, value = header
        except (TypeError, ValueError):
            raise SerializationError(
                f"headers for topic {topic!r} must be (str, bytes | None) pairs, got {header!r}"
            ) from None
        if type(name) is not str or not (value is None or isinstance(value, bytes)):
            raise SerializationError(
                f"header {name!r} for topic {topic!r} must be (str, bytes | None), got "
                f"({type(name).__name__}, {type(value).__name__})"
            )
        checked.append((name, value if value is None or type(value) is bytes else bytes(value)))
    return tuple(checked)
