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

The threads are the worker's own (not AnyIO's pool, which the application's
``to_thread`` calls share), and on Linux they run at a lower scheduling priority (nice
+10): on a machine whose cores are busy (the broker beside it, or the two threads
themselves at full speed) the loop's thread comes first, and the threads compress with
what it leaves. Measured (``benchmarks/loop_lag.py``, 100 KiB values, 2 cores), the
loop's thread waited for a core ~250-330 ms a second with the threads at its own
priority.

A batch handed over is QUEUED with ``compressing`` set: the accumulator neither drains it
nor lets it ride along until its records come back (the thread hands them to the loop,
``threadsafe_caller``); then the sender is woken. A batch that failed meanwhile (its
delivery timeout, the producer closing) ignores them. A producer closing does not wait
for a batch in a thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import anyio

from asyncproducer._futures import ThreadsafeCall, threadsafe_caller
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

THREADS: Final = 2
"""Batches compressed at once (CI's and many containers' core count): more would only
take CPU from the loop's own thread."""

NICENESS: Final = 10
"""How much lower the threads' priority is than the loop's (Linux only: elsewhere a
thread's priority cannot be set apart from its process's)."""

_Job = tuple["ProducerBatch", bytes]


class CompressionWorker:
    """Takes batches to compress (``submit``, synchronous: called where a batch is sealed)
    and compresses them in its threads while :meth:`run` runs in the producer's task
    group (its end stops them)."""

    def __init__(self, wake_sender: Callable[[], None]) -> None:
        self._wake_sender = wake_sender
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # FIFO
        self._threads: list[threading.Thread] = []
        self._call_loop: ThreadsafeCall | None = None
        self._error: BaseException | None = None
        self._failed: anyio.Event | None = None

    def submit(self, batch: ProducerBatch, records: bytes) -> None:
        """Compress ``records`` (the batch's, encoded) for ``batch``, which waits for them.
        Called on the loop's thread."""
        if self._call_loop is None:
            self._call_loop = threadsafe_caller()
        self._jobs.put((batch, records))
        if len(self._threads) < THREADS:
            thread = threading.Thread(
                target=self._work,
                args=(self._call_loop,),
                name=f"asyncproducer compression {len(self._threads)}",
                daemon=True,  # an interpreter exiting does not wait for a batch
            )
            self._threads.append(thread)
            thread.start()

    async def run(self) -> None:
        """Until cancelled (the producer closing), or a compression failed (raised here,
        as any failure of the producer's background tasks). Then the threads stop."""
        self._failed = anyio.Event()
        try:
            await self._failed.wait()
            raise self._error  # type: ignore[misc]
        finally:
            with contextlib.suppress(queue.Empty):
                while True:  # batches not started are dropped: they fail with the producer
                    self._jobs.get_nowait()
            for _ in self._threads:
                self._jobs.put(None)
            self._threads.clear()

    def _work(self, call_loop: ThreadsafeCall) -> None:
        """A thread's life: compress batches until told to stop or the loop is gone."""
        _lower_priority()
        while (job := self._jobs.get()) is not None:
            batch, records = job
            try:
                try:
                    compressed = compress(batch.compression, records, batch.compression_level)
                except BaseException as exc:  # raised on the loop, as the inline path would
                    call_loop(self._fail, exc)
                else:
                    call_loop(self._done, batch, compressed)
            except RuntimeError:  # the loop has ended: nobody waits for this batch
                return

    def _done(self, batch: ProducerBatch, compressed: bytes) -> None:
        batch.compressed(compressed)
        self._wake_sender()

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
            if self._failed is not None:
                self._failed.set()


def _lower_priority() -> None:
    """Lower the calling thread's priority by ``NICENESS`` (Linux: a thread's nice value
    is its own). Best effort: a sandbox may refuse, and the thread then runs as before."""
    if sys.platform != "linux":
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + NICENESS)
    except OSError:
        pass
