"""send()'s per-record work in C (``_speedups_*.c``, a file per concern; ``_speedups.h``
says which); asyncproducer falls back to Python where it did not build
(``protocol.batch_records``, ``_staging``)."""

from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any

from asyncproducer.protocol.batch_records import PyBatchRecords

class BatchRecords(PyBatchRecords):
    """The C twin of ``PyBatchRecords``: the same interface and results."""

class SendCall(Coroutine[Any, Any, Any]):
    """What ``Appender.send`` returns: awaited, it enqueues the record and returns its
    future, as the coroutine ``Producer.send`` would (which it runs for the records the
    shortcut declines)."""

    def __await__(self) -> Generator[Any, Any, Any]: ...  # itself
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ..., /) -> Any: ...
    def close(self) -> None: ...

class Appender:
    new_future: Callable[[], Any] | None
    """send(): the running event loop's future factory."""
    python_send: Callable[..., Coroutine[Any, Any, Any]] | None
    """send(): the coroutine function for the records append() declines."""
    open: bool
    """send(): whether the producer is running (else every record goes to python_send)."""
    untrack_futures: bool
    """send(): new_future's futures are made untracked by the cycle collector (see
    ``_speedups_untracked.c``)."""

    def __init__(
        self,
        *,
        partition_counts: dict[str, int],
        sticky: dict[str, int],
        queues: dict[tuple[str, int], deque[Any]],
        clock: Callable[[], float],
        records_type: type[BatchRecords],
        size_limit: int,
        bare_bound: int,
        hash_keys: bool,
        add_hooks: Callable[[Any, Any, None], object],
        parameters: tuple[str, str, str, str, str, str, str],
        record_type: type,
    ) -> None:
        """Every input is a plain value Python decided (_staging.RecordStager.appender):
        the usable topics' partition counts and the sticky partitions (dicts kept
        current in place), the accumulator's queues, the clock, the batch type, the size
        bound (a batch of one record of key and value bytes k and v takes ``bare_bound +
        k + v``, at most ``size_limit``), whether keys are hashed (murmur2), the hook for
        a record's ``on_delivery``, ``send()``'s parameter names (the record's six
        fields, then on_delivery) and the record type whose fields they name."""
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
        /,
    ) -> tuple[Any] | None:
        """send_batch()'s loop while its records need no Python code: each record (a
        tuple of send()'s first 2 to 6 arguments, or an instance of the Appender's
        ``record_type``) is
        appended as by append(), with no future, gets a slot (None) in ``results``, its
        batch a key in ``batches``, and each run of records in one batch a sink
        (``add_sink``). None once ``records`` is exhausted, else ``(record,)``, the first
        record it did not take (given no slot; a record instance whose fields cannot
        be read too). What ``records`` raises goes through, ``results`` then
        holding exactly the slots of the records appended."""
    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Any = None,
        on_delivery: Callable[[Any, BaseException | None], object] | None = None,
    ) -> SendCall:
        """``Producer.send`` in C: nothing happens until the result is awaited."""

def fill_sinks(sinks: list[tuple[int, list[Any], int, int]], outcomes: list[Any], /) -> int:
    """For each ``(first, results, slot, count)`` of ``sinks``:
    ``results[slot:slot + count] = outcomes[first:first + count]``. Returns how many
    outcomes that reported."""

def crc32c(data: bytes | bytearray | memoryview, value: int = 0, /) -> int:
    """CRC-32C (Castagnoli) of ``data``, carried on from ``value`` (the crc32c package's)."""

def crc32c_tables(data: bytes | bytearray | memoryview, value: int = 0, /) -> int:
    """``crc32c()`` on the portable path (tables) whatever the CPU has: for its tests."""

def track(obj: object, /) -> None:
    """Have the cycle collector walk ``obj`` again (a future send() made untracked)."""

def track_decorated(futures: list[Any], /) -> None:
    """``track()`` each untracked item of ``futures`` that has attributes (None skipped)."""

def murmur2(data: bytes, /) -> int:
    """Java's ``Utils.murmur2`` of ``data``, as an unsigned 32-bit int."""
