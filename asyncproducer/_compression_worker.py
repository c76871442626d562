"""Large batches compressed in worker threads, off the event loop.

The producer shares its event loop with the application: a web service's requests wait
while the loop runs producer code. Compressing a batch is the longest step it takes: a
1 MiB batch is ~1.5 ms of lz4, ~4 ms of zstd, ~20 ms of gzip, every task on the loop
stalled meanwhile. The codecs release the GIL while they work, so a thread takes that off
the loop entirely. Below a codec's threshold the batch is compressed where it is sealed,
as before: a thread's hand-off (~50-100 us on asyncio) would cost more than it saves.

Thresholds: the uncompressed record bytes one codec compresses in ~0.2-0.5 ms on these
machines (measured with text-like records: gzip 64 KiB 1.2 ms, 16 KiB 0.22 ms; zstd 64 KiB
0.23 ms; lz4 and snappy 128 KiB ~0.16 ms), so that what stays on the loop is well under
the 1 ms a loop-lag p99 may take (``benchmarks/loop_lag.py``). With the default
``batch_size`` (16 KiB) no batch reaches them: the worker is for large batches.

A batch handed over is QUEUED with ``compressing`` set: the accumulator neither drains it
nor lets it ride along until its records come back; then the sender is woken. A batch
that failed meanwhile (its delivery timeout, the producer closing) ignores them.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio
import anyio.to_thread

from asyncproducer.protocol.compression import CompressionType, compress

if TYPE_CHECKING:
    from asyncproducer._batch import ProducerBatch

OFFLOAD_BYTES: Final[dict[CompressionType, int]] = {
    CompressionType.GZIP: 32 * 1024,
    CompressionType.ZSTD: 64 * 1024,
    CompressionType.LZ4: 128 * 1024,
    CompressionType.SNAPPY: 128 * 1024,
}
"""Per codec, the uncompressed record bytes from which a batch is compressed off the loop."""


def _threads() -> int:
    """Batches compressed at once: one fewer than the cores this process may run on, so
    that the loop's own thread keeps one; at least one, at most four (the loop seals
    batches no faster than a few threads compress them).

    Measured on 2 cores with the broker beside it (``benchmarks/loop_lag.py``, 2 rounds,
    interleaved, ``gc.freeze()``): one thread against two took the requests' lag p99
    from 4.3-6.1 ms to 1.2-3.7 ms with 100 KiB values, from 4.2-7.2 to 2.3-4.0 at full
    speed with 1 KiB lz4, for 0-11 % fewer records at full speed."""
    try:
        cores = len(os.sched_getaffinity(0))  # a container's or taskset's share, not the host's
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    return max(1, min(cores - 1, 4))


THREADS: Final = _threads()


class CompressionWorker:
    """Takes batches to compress (``submit``, synchronous: called where a batch is sealed)
    and compresses them in threads while :meth:`run` runs in the producer's task group."""

    def __init__(self, wake_sender: Callable[[], None]) -> None:
        self._wake_sender = wake_sender
        self._waiting: deque[tuple[ProducerBatch, bytes | bytearray]] = deque()
        self._work = anyio.Event()
        self._limiter = anyio.CapacityLimiter(THREADS)

    def submit(self, batch: ProducerBatch, records: bytes | bytearray) -> None:
        """Compress ``records`` (the batch's, encoded) for ``batch``, which waits for them."""
        self._waiting.append((batch, records))
        self._work.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            while True:
                await self._work.wait()
                self._work = anyio.Event()
                while self._waiting:
                    tasks.start_soon(self._compress, *self._waiting.popleft())

    async def _compress(self, batch: ProducerBatch, records: bytes | bytearray) -> None:
        compressed = await anyio.to_thread.run_sync(
            compress,
            batch.compression,
            records,
            batch.compression_level,
            abandon_on_cancel=True,  # a producer closing does not wait for it
            limiter=self._limiter,  # FIFO: the first sealed is the first compressed
        )
        batch.compressed(compressed)
        self._wake_sender()
