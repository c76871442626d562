"""send()'s per-record work in C (``_speedups.c``); asyncproducer falls back to Python
where it did not build (``protocol.batch_records``, ``_staging``)."""

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from asyncproducer.protocol.batch_records import PyBatchRecords

class BatchRecords(PyBatchRecords):
    """The C twin of ``PyBatchRecords``: the same interface and results."""

class Appender:
    def __init__(
        self,
        *,
        metadata: Any,
        sticky: dict[str, int],
        queues: dict[tuple[str, int], deque[Any]],
        clock: Callable[[], float],
        records_type: type[BatchRecords],
        size_limit: int,
        bare_bound: int,
        hash_keys: bool,
    ) -> None: ...
    def append(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int | None,
        timestamp_ms: int | None,
        headers: Any,
        future: Any,
        /,
    ) -> Any:
        """The batch the record went into, or None, having changed nothing, when the
        record needs send()'s Python path."""
    def append_each(
        self,
        records: Iterator[Any],
        results: list[Any],
        batches: dict[Any, None],
        record_type: type,
        /,
    ) -> tuple[Any] | None:
        """send_batch()'s loop while its records need no Python code: each record (a
        tuple of send()'s first 2 to 6 arguments, or a ``record_type`` instance) is
        appended as by append(), with no future, gets a slot (None) in ``results``, its
        batch a key in ``batches``, and each run of records in one batch a sink
        (``add_sink``). None once ``records`` is exhausted, else ``(record,)``, the first
        record it did not take (given no slot)."""

def murmur2(data: bytes, /) -> int:
    """Java's ``Utils.murmur2`` of ``data``, as an unsigned 32-bit int."""
