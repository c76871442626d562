"""The records of a batch being filled: what ``send()`` appends to, ``ProducerBatch``'s base.

:class:`BatchRecords` takes one record at a time, with its future, until it is full: the
first record always fits; a later one fits while the encoded records stay within
``max_records_size`` and the batch holds fewer than ``record_capacity`` records (the
records whose overhead it has reserved of ``buffer_memory``; the owner may raise it).
:meth:`~PyBatchRecords.finish` then gives the encoded records (offset deltas 0, 1, ...);
:meth:`~PyBatchRecords.metadata`, what completing them needs: each record's
``RecordMetadata``, once the broker has given their offsets.

Two implementations, with the same behaviour for every input:

* ``asyncproducer._speedups.BatchRecords``, in C, encodes each record into a growing
  buffer (a bytearray) as it is appended, so a full batch holds its encoded bytes, and
  per record its future, timestamp and sizes, not its key and value; ``finish()`` hands
  a nearly full buffer over as it is, not copied. It is built at install time where a C
  compiler is found (:data:`SPEEDUPS`; see ``asyncproducer._native``);
* :class:`PyBatchRecords`, here, keeps the records and encodes them all at ``finish()``
  (:func:`encoding.encode_records`): the fallback without a compiler, and the reference
  ``tests/unit/test_batch_records.py`` holds the C one to.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, TypeVar

from asyncproducer._native import speedups
from asyncproducer._types import Header
from asyncproducer.protocol._varint import size_of_varint
from asyncproducer.protocol.encoding import SMALL_LIMIT, VARINT_SIZE, encode_records, headers_size

M = TypeVar("M", bound=tuple[Any, ...])
_new_tuple: Any = tuple.__new__


class PyBatchRecords:
    __slots__ = (
        "_headers",
        "_key_sizes",
        "_keys",
        "_timestamps",
        "_value_sizes",
        "_values",
        "base_timestamp",
        "full",
        "futures",
        "max_record_size",
        "max_records_size",
        "max_timestamp",
        "record_capacity",
        "records_size",
        "sinks",
    )

    def __init__(self, max_records_size: int, record_capacity: int) -> None:
        self.max_records_size: int = max_records_size
        """Encoded (uncompressed) record bytes that fit, unless a single record is larger."""
        self.record_capacity: int = record_capacity
        """Records it takes at most (the owner may raise it)."""
        self.records_size: int = 0
        """Bytes of the records appended so far, encoded."""
        self.max_record_size: int = 0
        """The largest record appended so far, encoded (0 before the first)."""
        self.base_timestamp: int = -1
        """The first record's timestamp (-1 before it): the base of the deltas."""
        self.max_timestamp: int = -1
        self.full: bool = False
        """``finish()`` was called: it takes no more records."""
        self.futures: list[Any] = []
        """Per record, the future appended with it (None for a record without one)."""
        self.sinks: list[tuple[int, list[Any], int, int]] | None = None
        """Where ``send_batch()`` records' results go, as ``(first, results, slot, count)``
        (see ProducerBatch.add_sink); beside the futures, since the C appender fills it."""
        self._timestamps: list[int] = []
        self._keys: list[bytes | None] = []
        self._values: list[bytes | None] = []
        self._headers: list[Sequence[Header]] = []
        self._key_sizes: list[int] = []
        self._value_sizes: list[int] = []

    @property
    def record_count(self) -> int:
        return len(self.futures)

    def append(
        self,
        future: Any,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header],
    ) -> bool:
        """Keep the record and its future if it fits; False, keeping nothing, once
        finished, at ``record_capacity`` records, or when the records would outgrow
        ``max_records_size`` (the first record always fits)."""
        count = len(self.futures)
        if self.full or count >= self.record_capacity:
            return False
        if not count:
            self.base_timestamp = self.max_timestamp = timestamp
        delta = timestamp - self.base_timestamp
        key_size = -1 if key is None else len(key)
        value_size = -1 if value is None else len(value)
        # The exact encoded size (encoding.record_size, inlined: this runs per record)
        # attributes, timestamp delta, offset delta, key, value, headers.
        sizes, limit = VARINT_SIZE, SMALL_LIMIT
        body = 1 + (sizes[delta] if 0 <= delta < limit else size_of_varint(delta))
        body += sizes[count] if count < limit else size_of_varint(count)
        if key_size < 0:
            body += 1
        else:
            body += (sizes[key_size] if key_size < limit else size_of_varint(key_size)) + key_size
        if value_size < 0:
            body += 1
        else:
            body += (
                sizes[value_size] if value_size < limit else size_of_varint(value_size)
            ) + value_size
        body += headers_size(headers) if headers else 1
        size = (sizes[body] if body < limit else size_of_varint(body)) + body
        if self.records_size + size > self.max_records_size and count:
            return False
        self.records_size += size
        if size > self.max_record_size:
            self.max_record_size = size
        self.futures.append(future)
        self._timestamps.append(timestamp)
        self._keys.append(key)
        self._values.append(value)
        self._headers.append(headers)
        self._key_sizes.append(key_size)
        self._value_sizes.append(value_size)
        if timestamp > self.max_timestamp:
            self.max_timestamp = timestamp
        return True

    def finish(self) -> bytes | bytearray:
        """The encoded records; takes no more records. Once: a second call raises
        RuntimeError. (Bytes here; the C records hand over their bytearray, uncopied,
        when it is within an eighth of full.)"""
        if self.full:
            raise RuntimeError("finish() was already called")
        self.full = True
        records = encode_records(
            self.base_timestamp, self._timestamps, self._keys, self._values, self._headers
        )
        self._keys, self._values, self._headers = [], [], []
        return records

    def metadata(
        self,
        metadata_type: type[M],
        topic: str,
        partition: int,
        base_offset: int,
        log_append_time: int,
    ) -> list[M]:
        """Per record, ``metadata_type(topic, partition, offset, timestamp, key size,
        value size)`` as ``tuple.__new__`` builds it (no Python ``__new__`` runs): offset
        ``base_offset + i`` (-1 for every record if ``base_offset`` < 0), timestamp the
        record's (``log_append_time`` if >= 0)."""
        count = len(self.futures)
        # C-level loops: map, zip and repeat.
        return list(
            map(
                _new_tuple,
                repeat(metadata_type, count),
                zip(
                    repeat(topic, count),
                    repeat(partition, count),
                    range(base_offset, base_offset + count)
                    if base_offset >= 0
                    else repeat(-1, count),
                    repeat(log_append_time, count) if log_append_time >= 0 else self._timestamps,
                    self._key_sizes,
                    self._value_sizes,
                    strict=True,
                ),
            )
        )


SPEEDUPS: bool = speedups is not None
"""Whether :data:`BatchRecords` is the C one (see ``asyncproducer._native``)."""
if TYPE_CHECKING:  # one interface: type-check against the reference
    BatchRecords = PyBatchRecords
else:
    BatchRecords = PyBatchRecords if speedups is None else speedups.BatchRecords
