"""From a record as ``send()`` receives it to what a batch keeps: serialized, measured and
partitioned (the part of Java's ``doSend`` between the interceptors and the accumulator).

``send()`` and ``send_batch()`` both stage every record here. It is synchronous: when the
topic's metadata is not known yet, :meth:`RecordStager.stage` says so (None) and the
caller waits for it, then stages again. It runs once per record, so the common case (bytes
or None passed through, a keyless record's sticky partition, no headers) takes no Python
call beyond :meth:`stage` itself. A producer with an asynchronous serializer
(``RecordStager.awaits``) serializes each record first, awaiting
(``SendPath._enqueue_awaiting``), then stages it with :meth:`RecordStager.stage_serialized`.

Where the C extension built, :meth:`RecordStager.appender` gives a shortcut for that
common case: ``asyncproducer._speedups.Appender`` stages the record *and* appends it to
its partition's open batch in one C call, or declines (None, nothing changed) whenever
the record needs anything more (a serializer, headers, a first sticky choice, a new
batch, an error to raise); then the caller stages it here. The shortcut decides nothing
this module would decide otherwise: ``tests/fake/test_fast_path.py`` runs the same sends
with and without it. Its ``send`` is ``Producer.send`` itself while the producer has it:
an awaitable in C (``SendCall``) that takes the shortcut when awaited and runs the Python
coroutine for every record the shortcut declines.

Every argument that cannot be sent is refused here with a typed ``KafkaError`` naming it
(docs/errors.md), never a raw exception, whatever the object does: the checks look at
types (``type()``, not ``isinstance()``, which a ``__class__`` property can fool) and read
subclasses of ``str``, ``int`` and the bytes-like types by what they hold (``str.__str__``,
``int.__int__``, the buffer), so no method of the caller's runs (``__bytes__``,
``__index__``, ``__eq__``, ``__repr__``, ...). What the caller's code does run (its
serializers and partitioner) is wrapped: ``SerializationError``, ``PartitionerError``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, cast

from asyncproducer._accumulator import RecordAccumulator
from asyncproducer._batch import ProducerBatch, Record
from asyncproducer._cluster import ClusterSnapshot
from asyncproducer._metadata import MetadataManager
from asyncproducer._native import speedups
from asyncproducer._plugins import configured_serializer, named_plugin
from asyncproducer._sticky_switch import BrokerAvailability, StickySwitch
from asyncproducer._types import Header, ProducerRecord
from asyncproducer.config import ProducerConfig
from asyncproducer.errors import (
    ConfigError,
    InvalidRecordTimestampError,
    InvalidTopicError,
    KafkaError,
    PartitionerError,
    PartitionOutOfRangeError,
    RecordTooLargeError,
    SerializationError,
)
from asyncproducer.partitioners import DefaultPartitioner, Partitioner, resolve_partitioner
from asyncproducer.protocol.records import (
    BARE_RECORD_OVERHEAD,
    BATCH_HEADER_SIZE,
    record_size_upper_bound,
)
from asyncproducer.protocol.topics import check_topic_name
from asyncproducer.serializers import (
    AwaitedSerializer,
    Serializer,
    bytes_content,
    is_bytes_like,
    passes_bytes_through,
    reason_of,
    resolve_awaited_serializer,
    resolve_serializer,
)

_BARE_BATCH_BOUND = BARE_RECORD_OVERHEAD + BATCH_HEADER_SIZE
"""A batch holding one record without headers takes at most this plus the key's and
value's lengths (each -1 when None)."""

SEND_PARAMETERS = (*(field.name for field in dataclasses.fields(ProducerRecord)), "on_delivery")
"""``send()``'s parameters, in order: a ProducerRecord's fields, then its callback (the C
``send`` parses its arguments by these names; tests/unit/test_appender.py checks them
against ``SendPath.send``)."""

Staged = tuple[int, bool, Record]
"""(partition, whether the partitioner chose it, the record as a batch takes it)."""

_MAX_TIMESTAMP = 2**63 - 1

Appender: Any = None if speedups is None else speedups.Appender
if speedups is not None:
    # What appender.send() returns: a coroutine in all but type, as asyncio.create_task()
    # and trio's start_soon() check.
    Coroutine.register(speedups.SendCall)


def configured_partitioner(config: ProducerConfig) -> Partitioner:
    """The ``partitioner`` setting's partitioner (named, a class or an instance), as the
    producer and ``MockProducer`` both resolve it. A custom partitioner refuses the
    availability timeout, a part of the default partitioner's adaptive partitioning."""
    partitioner = resolve_partitioner(named_plugin(config.partitioner, "partitioner"))
    if is_custom(partitioner) and config.partitioner_availability_timeout_ms:
        raise ConfigError(
            "partitioner_availability_timeout_ms="
            f"{config.partitioner_availability_timeout_ms}: the availability timeout is "
            "part of the default partitioner's adaptive partitioning, and partitioner="
            f"{type(partitioner).__qualname__} replaces it; leave it at 0"
        )
    return partitioner


def is_custom(partitioner: Partitioner) -> bool:
    """Anything but exactly the default partitioner: subclasses (UniformStickyPartitioner)
    are treated as custom."""
    return type(partitioner) is not DefaultPartitioner


class RecordStager:
    def __init__(
        self,
        config: ProducerConfig,
        metadata: MetadataManager,
        accumulator: RecordAccumulator | None = None,
        availability: BrokerAvailability | None = None,
    ) -> None:
        """``accumulator``: the producer's, whose queues the default partitioner's
        switch reads (``_sticky_switch``); without it (tests of staging alone) keyless
        records move on at every new batch, as KIP-480's. ``availability``: the brokers
        the sender finds unable to take requests (``partitioner_availability_timeout_ms``)."""
        self._config = config
        self._metadata = metadata
        self._partition_counts = metadata.partition_counts
        self._resolve_serializers(config)
        self.partitioner = configured_partitioner(config)
        self._custom = is_custom(self.partitioner)
        self._switch: StickySwitch | None = None
        """The default partitioner's switch (Java's built-in partitioner, KIP-794)."""
        if not self._custom and accumulator is not None:
            self._switch = StickySwitch(
                cast(DefaultPartitioner, self.partitioner).sticky,
                accumulator,
                batch_size=config.batch_size,
                adaptive=config.partitioner_adaptive_partitioning_enable,
                availability=availability,
            )
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

    def _resolve_serializers(self, config: ProducerConfig) -> None:
        """The key and value serializers, decided once: whether any is asynchronous
        (``awaits``), and what :meth:`stage` calls."""
        configs = config.configs()
        key_spec, value_spec = (
            configured_serializer(named_plugin(spec, label), configs, is_key=is_key)
            for spec, label, is_key in (
                (config.key_serializer, "key_serializer", True),
                (config.value_serializer, "value_serializer", False),
            )
        )
        awaited_key = resolve_awaited_serializer(key_spec, is_key=True)
        awaited_value = resolve_awaited_serializer(value_spec, is_key=False)
        self.awaits = awaited_key is not None or awaited_value is not None
        """send() must await a serializer: it serializes the record before staging it."""
        self.serializers: tuple[Serializer | AwaitedSerializer, Serializer | AwaitedSerializer] = (
            awaited_key or resolve_serializer(key_spec, is_key=True),
            awaited_value or resolve_serializer(value_spec, is_key=False),
        )
        """The key's and the value's, as the send path of a producer that ``awaits`` runs
        them (before :meth:`stage_serialized`)."""
        self._awaited: tuple[bytes | None, bytes | None] | None = None
        """The record's key and value bytes while :meth:`stage_serialized` stages it."""
        if self.awaits:
            # Both serialized before staging, in Java's order (the key, then the value):
            # stage() takes their bytes from stage_serialized(), so that it stays the one
            # place that measures and partitions a record, and costs the others nothing.
            self._key_serializer: Serializer = self._serialized_key
            self._value_serializer: Serializer = self._serialized_value
            self._raw_keys = self._raw_values = False  # and no C appender
        else:
            self._key_serializer = cast(Serializer, self.serializers[0])
            self._value_serializer = cast(Serializer, self.serializers[1])
            self._raw_keys = passes_bytes_through(key_spec)
            self._raw_values = passes_bytes_through(value_spec)

    def stage_serialized(
        self,
        topic: str,
        value: Any,
        key: Any,
        key_bytes: bytes | None,
        value_bytes: bytes | None,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Sequence[Header] | None,
    ) -> Staged | None:
        """:meth:`stage` for a producer that ``awaits``: the record's serializers gave
        ``key_bytes`` and ``value_bytes`` (and ``key`` and ``value`` are what it was sent
        with, for a custom partitioner)."""
        self._awaited = (key_bytes, value_bytes)
        try:
            return self.stage(topic, value, key, partition, timestamp_ms, headers)
        finally:
            self._awaited = None  # a stage() without them fails loudly, never reuses them

    def _serialized_key(self, topic: str, headers: Sequence[Header] | None, data: Any) -> Any:
        return self._awaited[0]  # type: ignore[index]  # set by stage_serialized()

    def _serialized_value(self, topic: str, headers: Sequence[Header] | None, data: Any) -> Any:
        return self._awaited[1]  # type: ignore[index]  # set by stage_serialized()

    def appender(self, queues: dict[tuple[str, int], deque[ProducerBatch]]) -> Any:
        """The C shortcut through :meth:`stage` and the append to an open batch of
        ``queues`` (the accumulator's), or None: without the C extension, or when this
        producer's records always need Python (serializers, a custom partitioner).

        Everything it needs is decided here and handed over as plain values: which
        records it may take at all (this producer passes keys and values through and
        uses the default partitioner, else there is no appender), the usable topics'
        partition counts and the sticky partitions (dicts Python keeps current in place),
        the size bound, whether keys are hashed, and send()'s parameter names. It reads
        no attribute of any object of ours, so a rename here cannot silently send every
        record down the slow path (tests/unit/test_appender.py checks that it takes
        them)."""
        if Appender is None or self._sticky_partition is None:
            return None
        if not (self._raw_keys and self._raw_values):
            return None
        assert isinstance(self.partitioner, DefaultPartitioner)
        return Appender(
            partition_counts=self._partition_counts,
            sticky=self.partitioner.sticky.partitions,
            queues=queues,
            clock=time.time,
            records_type=ProducerBatch,
            size_limit=self._size_limit,
            bare_bound=_BARE_BATCH_BOUND,
            hash_keys=not self._ignore_keys,
            add_hooks=ProducerBatch.add_hooks,
            parameters=SEND_PARAMETERS,
            record_type=ProducerRecord,
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
        unsendable: SerializationError, RecordTooLargeError, PartitionOutOfRangeError,
        InvalidRecordTimestampError, PartitionerError, InvalidTopicError. The caller
        passes the topic through :func:`exact_topic` first: it appends under that name."""
        if type(topic) is not str:
            topic = exact_topic(topic)
        count = self._partition_counts.get(topic)
        if count is None:
            return None
        # `is None`, not truth: the truth of the caller's object would run its code.
        headers = () if headers is None else check_headers(topic, headers)
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
        elif type(partition) is not int or not 0 <= partition < count:
            partition = check_partition(topic, partition, count)
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        elif type(timestamp_ms) is not int or not 0 <= timestamp_ms <= _MAX_TIMESTAMP:
            timestamp_ms = check_timestamp(topic, timestamp_ms)
        record = (timestamp_ms, key_bytes, value_bytes, headers)
        return partition, chosen, record

    def choose_partition(
        self, topic: str, key: Any, key_bytes: bytes | None, value: Any, value_bytes: bytes | None
    ) -> int:
        snapshot = self._metadata.snapshot
        if self._ignore_keys and not self._custom:
            key, key_bytes = None, None
        try:  # as call_partitioner(), inline: this runs for every keyed Python-path record
            chosen = self.partitioner.partition(topic, key, key_bytes, value, value_bytes, snapshot)
        except KafkaError:
            raise
        except Exception as exc:
            raise _partitioner_error(self.partitioner, "partition", topic, exc) from exc
        if self._custom:
            count = self._partition_counts[topic]
            return check_partition(topic, chosen, count, by="the partitioner")
        return chosen

    def next_partition(
        self, topic: str, partition: int, key: Any, value: Any, record: Record
    ) -> int | None:
        """A record whose partition the partitioner chose, about to open a new batch,
        may move a sticky partitioner on, so that batches fill one partition at a time:
        the default partitioner decides by its switch (KIP-794, ``_sticky_switch``); any
        other with ``on_new_batch`` is told, then asked again (KIP-480). The record's
        partition then, or None when its partition is not sticky."""
        key_bytes, value_bytes = record[1], record[2]
        if not self._moves_sticky:
            return None
        if not (self._custom or key_bytes is None or self._ignore_keys):
            return None  # a keyed record's partition is its key's
        if self._switch is not None:
            return self._switch.partition_for_new_batch(topic, partition, self._metadata.snapshot)
        try:
            self.partitioner.on_new_batch(topic, self._metadata.snapshot, partition)  # type: ignore[attr-defined]
        except KafkaError:
            raise
        except Exception as exc:
            raise _partitioner_error(self.partitioner, "on_new_batch", topic, exc) from exc
        return self.choose_partition(topic, key, key_bytes, value, value_bytes)


def call_partitioner(
    partitioner: Partitioner,
    topic: str,
    key: Any,
    key_bytes: bytes | None,
    value: Any,
    value_bytes: bytes | None,
    cluster: ClusterSnapshot,
) -> object:
    """``partitioner.partition(...)``, what it raises a PartitionerError (a KafkaError as
    it is); check what it returns with :func:`check_partition` (shared with
    MockProducer)."""
    try:
        return partitioner.partition(topic, key, key_bytes, value, value_bytes, cluster)
    except KafkaError:
        raise
    except Exception as exc:
        raise _partitioner_error(partitioner, "partition", topic, exc) from exc


def _partitioner_error(
    partitioner: object, method: str, topic: str, exc: Exception
) -> PartitionerError:
    return PartitionerError(
        f"partition for a record to topic {topic!r}: the partitioner "
        f"{type(partitioner).__qualname__}.{method}() raised {reason_of(exc)}"
    )


def exact_topic(topic: object) -> str:
    """``topic`` as exactly a str, if Kafka accepts the name; else InvalidTopicError. A
    str subclass (a ``StrEnum`` member, say) stands for the text it holds: its
    ``__str__``, ``__eq__``, ``__hash__`` and ``encode`` are not consulted, since the
    metadata requests and the accumulator's keys need the plain name."""
    if type(topic) is not str:
        if not issubclass(type(topic), str):
            raise InvalidTopicError(
                f"a topic name is a str, got {type(topic).__name__} {safe_repr(topic)}"
            )
        topic = str.__str__(cast(str, topic))
    check_topic_name(topic)
    return topic


def check_partition(topic: str, partition: object, count: int, *, by: str = "the record") -> int:
    """``partition`` as an int, if a topic of ``count`` partitions has it; else
    PartitionOutOfRangeError (shared with MockProducer). An int subclass (an ``IntEnum``
    member) stands for its value; a bool is not a partition."""
    kind = type(partition)
    if kind is bool or not issubclass(kind, int):
        raise PartitionOutOfRangeError(
            f"partition given by {by} for topic {topic!r} must be an int from 0 to "
            f"{count - 1} ({count} partitions) or None, got {kind.__qualname__} "
            f"{safe_repr(partition)}"
        )
    number = int.__int__(cast(int, partition))  # an int subclass's value, not its __int__
    if not 0 <= number < count:
        raise PartitionOutOfRangeError(
            f"partition {number} given by {by} is not in the range "
            f"[0...{count - 1}] of topic {topic!r} ({count} partitions)"
        )
    return number


def check_timestamp(topic: str, timestamp_ms: object) -> int:
    """A record's ``timestamp_ms`` as an int, if it is one from 0 to 2**63 - 1 (an int
    subclass by its value; not a bool, a float or anything else)."""
    kind = type(timestamp_ms)
    if kind is not bool and issubclass(kind, int):
        number = int.__int__(cast(int, timestamp_ms))  # its value, not its __int__
        if 0 <= number <= _MAX_TIMESTAMP:
            return number
    raise InvalidRecordTimestampError(
        f"timestamp_ms for topic {topic!r} must be an int from 0 to 2**63 - 1 "
        f"(milliseconds since the epoch) or None, got {safe_repr(timestamp_ms)}"
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


_NOT_HEADERS = (str, bytes, bytearray, memoryview)
"""Iterable, but not a sequence of header pairs (nor is a pair one of them)."""

_PAIRS = "a sequence of (str, bytes | None) pairs"


def check_headers(topic: str, headers: object) -> tuple[Header, ...]:
    """The headers as a tuple of ``(str, bytes | None)`` pairs, each name exactly a str
    that UTF-8 can encode and each value exactly ``bytes`` (a bytes-like value is copied,
    see :func:`~asyncproducer.serializers.bytes_content`): what the record encoder
    accepts, fixed at ``send()`` so that a caller changing its list afterwards cannot
    change the record. SerializationError naming the header otherwise."""
    kind = type(headers)
    if kind is not list and kind is not tuple:
        _check_headers_type(topic, kind)
    checked: list[Header] = []
    try:
        for header in headers:  # type: ignore[attr-defined]
            # The usual pair, kept as it is (immutable, and nothing in it runs code):
            # the cost of this loop is most of what headers add to send().
            if type(header) is tuple and len(header) == 2:
                name, value = header
                if type(name) is str and (value is None or type(value) is bytes) and name.isascii():
                    checked.append(header)
                    continue
            checked.append(_check_header(topic, len(checked), header))
    except SerializationError:
        raise
    except Exception as exc:  # not iterable, or its iterator raised
        after = f" after {len(checked)} of them" if checked else ""
        raise SerializationError(
            f"headers for topic {topic!r} must be {_PAIRS}, got {kind.__qualname__}: "
            f"reading it raised {reason_of(exc)}{after}"
        ) from exc
    return tuple(checked)


def _check_headers_type(topic: str, kind: type) -> None:
    """Refuse what iterates, but not as pairs: a str, bytes, or a mapping (its keys)."""
    mapping = issubclass(kind, Mapping)
    if mapping or issubclass(kind, _NOT_HEADERS):
        hint = " (for a mapping, pass list(headers.items()))" if mapping else ""
        raise SerializationError(
            f"headers for topic {topic!r} must be {_PAIRS}, got {kind.__qualname__}{hint}"
        )


def _check_header(topic: str, index: int, header: object) -> Header:
    """One pair of :func:`check_headers`, ``headers[index]``, that is not simply an
    exact tuple of a str of ASCII and bytes or None."""
    name: object
    value: object
    kind = type(header)
    if kind is tuple or kind is list:  # its length and items run no code
        if len(header) != 2:  # type: ignore[arg-type]
            raise _header_error(
                topic,
                index,
                None,
                f"got {len(header)} items: {safe_repr(header)}",  # type: ignore[arg-type]
            )
        name, value = cast(Sequence[object], header)
    elif issubclass(kind, _NOT_HEADERS):
        raise _header_error(topic, index, None, f"got {kind.__qualname__} {safe_repr(header)}")
    else:  # any other iterable of two (a NamedTuple, say)
        try:
            name, value = header  # type: ignore[misc]
        except Exception as exc:
            raise _header_error(
                topic, index, None, f"got {kind.__qualname__}: reading it raised {reason_of(exc)}"
            ) from exc
    if type(name) is not str:
        if not issubclass(type(name), str):
            raise _header_error(
                topic, index, None, f"its name is a {type(name).__qualname__}, not a str"
            )
        name = str.__str__(cast(str, name))
    if not name.isascii():
        try:
            name.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate
            raise _header_error(topic, index, name, f"its name is not UTF-8: {exc}") from exc
    if value is None or type(value) is bytes:
        return name, value
    if not is_bytes_like(value):
        raise _header_error(topic, index, name, f"got (str, {type(value).__qualname__})")
    try:
        return name, bytes_content(cast(bytes, value))
    except Exception as exc:  # a released memoryview, say
        raise _header_error(
            topic, index, name, f"its value cannot be read: {reason_of(exc)}"
        ) from exc


def _header_error(topic: str, index: int, name: str | None, problem: str) -> SerializationError:
    """``header 'name' (headers[i]) for topic 't' must be ...: problem``."""
    which = f"headers[{index}]" if name is None else f"header {name!r} (headers[{index}])"
    return SerializationError(
        f"{which} for topic {topic!r} must be a (str, bytes | None) pair; {problem}"
    )


def safe_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, shortened to ``limit`` characters, for an error message; what a
    caller's object is when its ``__repr__`` raises (the message must not)."""
    if type(value) in (str, bytes, bytearray) and len(value) > limit:  # type: ignore[arg-type]
        value = value[:limit]  # type: ignore[index]  # not the repr of a huge one
    try:
        text = repr(value)
    except Exception:
        return f"<a {type(value).__qualname__} whose repr() raised>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
