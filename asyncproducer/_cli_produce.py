"""``asyncproducer produce TOPIC [FILE]``: one record per input line, through the Producer.

Input is read in a worker thread, a chunk at a time, so a slow pipe or a terminal never
blocks the event loop (the sender task must keep running while we wait for input). At
most ``MAX_IN_FLIGHT`` records are unacknowledged at once, so memory stays bounded
however large the input is: the loop waits for acknowledgements before reading on.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from asyncproducer._types import Header
from asyncproducer.errors import RecordTooLargeError, SerializationError
from asyncproducer.producer import Producer

MAX_IN_FLIGHT = 10_000
CHUNK_SIZE = 256 * 1024
PROGRESS_INTERVAL_S = 0.2  # at most 5 redraws a second: cheap, and still looks live
ERRORS_SHOWN_PER_TYPE = 3

# Failures of one record only: the next line may well be fine, so keep going. Any other
# exception from send() (no metadata within max_block_ms, a bad --partition, the producer
# failed) would fail every following record the same way, so it ends the command.
_PER_RECORD_ERRORS = (RecordTooLargeError, SerializationError)


def split_line(line: bytes, separator: bytes | None) -> tuple[bytes | None, bytes]:
    """``(key, value)`` of one input line: split at the first ``separator``.

    Without a separator, or when the line does not contain it, the record has no key and
    the whole line is its value.
    """
    if separator is None:
        return None, line
    key, found, value = line.partition(separator)
    if not found:
        return None, line
    return key, value


class LineReader:
    """Lines from a file descriptor, read in a worker thread a chunk at a time.

    Lines end at ``\\n``; a ``\\r`` before it is dropped too, as Java's console producer
    (``BufferedReader.readLine``) does. A last line without a newline is still a line.
    The thread waits for input with ``select`` in short slices (POSIX), so that it ends
    soon after :meth:`stop` even when stdin is an idle terminal; otherwise the process
    could not exit until the user typed another line.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._rest = b""
        self._eof = False
        self._stop = threading.Event()
        self._can_select = os.name == "posix"

    def stop(self) -> None:
        self._stop.set()

    async def next_lines(self) -> list[bytes] | None:
        """The next complete lines (possibly none yet); None at end of input."""
        if self._eof:
            return None
        return await anyio.to_thread.run_sync(self._read_lines, abandon_on_cancel=True)

    def _read_lines(self) -> list[bytes]:  # runs in the worker thread
        chunk = self._read_chunk()
        if not chunk:
            self._eof = True
            lines = [self._rest] if self._rest else []
            self._rest = b""
        else:
            lines = (self._rest + chunk).split(b"\n")
            self._rest = lines.pop()
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]

    def _read_chunk(self) -> bytes:
        while self._can_select and not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.25)
            if ready:
                break
        if self._stop.is_set():
            return b""
        return os.read(self._fd, CHUNK_SIZE)


class InFlightWindow:
    """Counts unacknowledged records; :meth:`enter` waits while ``limit`` are pending.

    Not a semaphore with a checkpoint per record: the common case (room left) must cost
    nothing, and :meth:`leave` runs in future callbacks, outside any task.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Wake waiters only once a quarter of the window is free: waking them on every
        # acknowledgement costs a task switch per record for one record of room each.
        self._low_water = limit - max(limit // 4, 1)
        self.count = 0
        self._room: anyio.Event | None = None
        self._empty: anyio.Event | None = None

    async def enter(self) -> None:
        while self.count >= self.limit:
            # One event shared by every waiting task (the demo sends from several).
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self._room is not None and self.count <= self._low_water:
            self._room.set()
            self._room = None
        if self._empty is not None and self.count == 0:
            self._empty.set()
            self._empty = None

    async def wait_empty(self) -> None:
        while self.count:
            if self._empty is None:
                self._empty = anyio.Event()
            await self._empty.wait()


@dataclass
class ProduceStats:
    started: float = field(default_factory=time.monotonic)
    read: int = 0
    acked: int = 0
    failed: int = 0
    payload_bytes: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)
    error_counts: dict[str, int] = field(default_factory=dict)

    def record_failure(self, error: BaseException) -> None:
        self.failed += 1
        kind = type(error).__name__
        self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
        shown = self.errors.setdefault(kind, [])
        message = str(error) or kind
        if len(shown) < ERRORS_SHOWN_PER_TYPE and message not in shown:
            shown.append(message)

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def progress_line(self) -> str:
        rate = self.acked / self.elapsed()
        return f"{self.read} read, {self.acked} acked, {self.failed} failed, {rate:,.0f} records/s"

    def summary(self, topic: str) -> str:
        elapsed = self.elapsed()
        lines = [
            f"asyncproducer: topic {topic!r}: {self.read} records read, {self.acked} "
            f"acknowledged, {self.failed} failed in {elapsed:.2f} s "
            f"({self.acked / elapsed:,.0f} records/s, "
            f"{self.payload_bytes / elapsed / 1e6:.2f} MB/s)"
        ]
        for kind, count in sorted(self.error_counts.items(), key=lambda item: -item[1]):
            lines.append(f"  {count} failed with {kind}:")
            lines.extend(f"    {message}" for message in self.errors[kind])
        return "\n".join(lines)


class Progress:
    """A one-line ``\\r`` status on stderr, only when stderr is a terminal."""

    def __init__(self, stats: ProduceStats, stream: TextIO) -> None:
        self._stats = stats
        self._stream = stream
        self._width = 0

    async def run(self) -> None:
        while True:
            await anyio.sleep(PROGRESS_INTERVAL_S)
            self._draw(self._stats.progress_line())

    def clear(self) -> None:
        if self._width:
            self._draw("")

    def _draw(self, text: str) -> None:
        padding = " " * max(self._width - len(text), 0)
        self._stream.write(f"\r{text}{padding}\r" if not text else f"\r{text}{padding}")
        self._stream.flush()
        self._width = len(text)


@dataclass(frozen=True)
class ProduceJob:
    topic: str
    fd: int
    key_separator: bytes | None
    headers: Sequence[Header]
    partition: int | None


async def run_produce(job: ProduceJob, properties: Mapping[str, str]) -> int:
    """Produce every input line; print the summary; 0 if all were acknowledged, else 1."""
    stats = ProduceStats()
    window = InFlightWindow(MAX_IN_FLIGHT)
    reader = LineReader(job.fd)
    progress = Progress(stats, sys.stderr) if sys.stderr.isatty() else None
    try:
        async with anyio.create_task_group() as tasks:
            if progress is not None:
                tasks.start_soon(progress.run)
            async with Producer.from_config(properties) as producer:
                await _send_all(producer, job, reader, stats, window)
                await producer.flush()
            # Futures are complete now; on asyncio their callbacks may still be queued.
            with anyio.move_on_after(10):
                await window.wait_empty()
            tasks.cancel_scope.cancel()
    finally:
        reader.stop()
        if progress is not None:
            progress.clear()
        print(stats.summary(job.topic), file=sys.stderr)
    return 0 if stats.failed == 0 and stats.acked == stats.read else 1


async def _send_all(
    producer: Producer,
    job: ProduceJob,
    reader: LineReader,
    stats: ProduceStats,
    window: InFlightWindow,
) -> None:
    def on_done(future: Any) -> None:
        window.leave()
        error = future.exception()
        if error is None:
            stats.acked += 1
        else:
            stats.record_failure(error)

    while (lines := await reader.next_lines()) is not None:
        for line in lines:
            key, value = split_line(line, job.key_separator)
            stats.read += 1
            stats.payload_bytes += len(value) + (len(key) if key is not None else 0)
            await window.enter()
            try:
                future = await producer.send(
                    job.topic, value, key=key, partition=job.partition, headers=job.headers
                )
            except _PER_RECORD_ERRORS as exc:
                window.leave()
                stats.record_failure(exc)
                continue
            except BaseException:
                window.leave()
                stats.failed += 1
                raise
            future.add_done_callback(on_done)
