"""``asyncproducer produce TOPIC [FILE]``: one record per input line, through the Producer.

Input is read in a worker thread, a chunk at a time, so a slow pipe or a terminal never
blocks the event loop (the sender task must keep running while we wait for input). At
most ``MAX_IN_FLIGHT`` records are unacknowledged at once, so memory stays bounded
however large the input is: the loop waits for acknowledgements before reading on.

With a transactional id the records go in transactions of ``transaction_size`` input
lines (:class:`Transactions`): begun before the first record, committed after the last,
and aborted when anything ends the command early (a record that failed, an error, Ctrl-C),
so a read_committed consumer sees a prefix of the input made of whole transactions, never
part of one.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from asyncproducer._types import Header
from asyncproducer.errors import (
    KafkaError,
    RecordTooLargeError,
    SerializationError,
    TransactionStateError,
)
from asyncproducer.producer import Producer

MAX_IN_FLIGHT = 10_000
CHUNK_SIZE = 256 * 1024
PROGRESS_INTERVAL_S = 0.2  # at most 5 redraws a second: cheap, and still looks live
ERRORS_SHOWN_PER_TYPE = 3

# Failures of one record only: the next line may well be fine, so keep going. Any other
# exception from send() (no metadata within max_block_ms, a bad --partition, the producer
# failed) would fail every following record the same way, so it ends the command.
# With transactions they end the command too (see Transactions).
_PER_RECORD_ERRORS = (RecordTooLargeError, SerializationError)

DEFAULT_TRANSACTION_SIZE = 1_000
"""Input lines per transaction. Each commit costs a round trip to the transaction
coordinator and a marker per partition, and waits for every record of the transaction to
be acknowledged; 1,000 short lines keep that to a few percent of the time while a failed
transaction leaves little input to send again."""


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
    transactions: Transactions | None = None

    def record_failure(self, error: BaseException) -> None:
        self.failed += 1
        kind = type(error).__name__
        self.error_counts[kind] = self.error_counts.get(kind, 0) + 1
        shown = self.errors.setdefault(kind, [])
        message = _one_line(error) or kind
        if len(shown) < ERRORS_SHOWN_PER_TYPE and message not in shown:
            shown.append(message)

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    def progress_line(self) -> str:
        rate = self.acked / self.elapsed()
        committed = (
            "" if self.transactions is None else f"{self.transactions.committed} committed, "
        )
        return (
            f"{self.read} read, {self.acked} acked, {self.failed} failed, {committed}"
            f"{rate:,.0f} records/s"
        )

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
        if self.transactions is not None:
            lines.extend(self.transactions.summary())
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
    transaction_size: int | None = None
    """Records per transaction; None: no transactions (the producer has no
    transactional id)."""


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
                if job.transaction_size is None:
                    await _send_all(producer, job, reader, stats, window)
                    await producer.flush()
                else:
                    transactions = Transactions(producer, job.transaction_size)
                    stats.transactions = transactions
                    await transactions.run(
                        lambda: _send_all(producer, job, reader, stats, window, transactions)
                    )
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


class _RecordFailed(Exception):
    """A record of the open transaction failed (its future holds the error)."""


class Transactions:
    """The command's transactions: one begins before a record when none is open, commits
    after ``size`` records and at the end of input, and is aborted when anything else ends
    the command (:meth:`run`).

    A record that fails ends the command too, even one of the errors the command skips
    without transactions (``_PER_RECORD_ERRORS``). A record the brokers refused makes the
    transaction abortable; one send() refused (too large, say) would leave a line missing
    from a committed transaction, which Java's producer does not allow either (its send()
    moves the transaction to an abortable error). And going on with the next transaction
    would leave a hole in the output. Stopping keeps what read_committed consumers see a
    prefix of the input made of whole transactions, so the error can say where to resume.
    """

    def __init__(self, producer: Producer, size: int) -> None:
        self._producer = producer
        self.size = size
        self.committed = 0
        self.committed_records = 0
        self.aborted = 0
        self.first_line = 0
        """The open transaction's first input line (from 1); 0 while none is open."""
        self.last_line = 0
        self._records = 0
        self._failure: BaseException | None = None
        self._failed_line: int | None = None
        self._ending = False
        self._committing = False
        self._waiting: anyio.CancelScope | None = None
        self._notes: list[str] = []

    # ------------------------------------------------------------------ the send loop's hooks

    def next_lines(self, reader: LineReader) -> Callable[[], Awaitable[list[bytes] | None]]:
        """``reader.next_lines``, cut short when a record of the open transaction fails:
        the command must not wait for more input (which may never come) to end."""

        async def next_lines() -> list[bytes] | None:
            with anyio.CancelScope() as self._waiting:
                try:
                    return await reader.next_lines()
                finally:
                    self._waiting = None
            raise _RecordFailed  # only record_failed() cancels the scope

        return next_lines

    async def before_record(self, line: int) -> None:
        if self._failure is not None:
            raise _RecordFailed
        if not self.first_line:
            await self._producer.begin_transaction()
            self.first_line, self._records = line, 0
        self.last_line = line

    async def after_record(self) -> None:
        self._records += 1
        if self._records >= self.size:
            await self._commit()

    async def finish(self) -> None:
        """The end of input: commit the last transaction (not full, or empty: none)."""
        if self.first_line:
            await self._commit()

    def record_failed(self, error: BaseException, *, line: int | None = None) -> None:
        """A record failed (in a future's callback, or from send()): the first failure in
        the open transaction is the one reported."""
        if not self.first_line or self._ending or self._failure is not None:
            return  # records failed by the abort itself (TransactionAbortedError)
        self._failure, self._failed_line = error, line
        if self._waiting is not None:
            self._waiting.cancel()

    async def _commit(self) -> None:
        # Shielded: Ctrl-C during a commit lets it finish (within max.block.ms) rather
        # than leave it in doubt; the interruption takes effect right after it.
        self._committing = True
        with anyio.CancelScope(shield=True):
            await self._producer.commit_transaction()
        self._committing = False
        self.committed += 1
        self.committed_records += self._records
        self.first_line = 0

    # ------------------------------------------------------------------ ending early

    async def run(self, send_all: Callable[[], Awaitable[None]]) -> None:
        """Run the send loop; if it ends early with a transaction open, abort that
        transaction (shielded, within max.block.ms) before anything else happens. A
        Kafka error or a failed record becomes a TransactionFailedError saying which
        input lines were lost and where to resume; Ctrl-C and bugs propagate as they are."""
        try:
            await send_all()
        except BaseException as exc:
            if not self.first_line:
                raise
            cause = self._failure if self._failure is not None else exc
            expected = isinstance(exc, _RecordFailed | KafkaError | TimeoutError | OSError)
            abort_error = await self._abort()
            if self._committing and isinstance(abort_error, TransactionStateError):
                # The commit timed out (max.block.ms) and is still under way: no abort.
                message = self._in_doubt(cause)
            else:
                message = self._aborted(cause if expected else exc, abort_error)
            if not expected:
                raise  # cancelled (Ctrl-C), or a bug
            raise TransactionFailedError(message) from cause

    async def _abort(self) -> KafkaError | None:
        self._ending = True
        try:
            with anyio.CancelScope(shield=True):
                await self._producer.abort_transaction()  # bounded by max.block.ms
        except KafkaError as exc:
            return exc
        except BaseException:  # a second Ctrl-C: leave at once, say what is left behind
            self._notes.append(
                f"transaction {self.committed + 1} abort interrupted: {self._lines()}: the "
                f"coordinator aborts it after transaction.timeout.ms; resume from line "
                f"{self.first_line}"
            )
            raise
        finally:
            self._ending = False
        self.aborted += 1
        return None

    def _lines(self) -> str:
        first, last = self.first_line, self.last_line
        return f"input line {first}" if first == last else f"input lines {first}-{last}"

    def _committed_before(self) -> str:
        if self.first_line == 1:
            return "nothing was committed before it"
        plural = "" if self.committed == 1 else "s"
        return f"lines 1-{self.first_line - 1} are committed ({self.committed} transaction{plural})"

    def _aborted(self, cause: BaseException, abort_error: KafkaError | None) -> str:
        number, lines, resume = self.committed + 1, self._lines(), self.first_line
        if isinstance(cause, anyio.get_cancelled_exc_class() | KeyboardInterrupt):
            why = "interrupted"
        else:
            failed = "" if self._failed_line is None else f" (line {self._failed_line})"
            why = f"{type(cause).__name__}{failed}: {_one_line(cause)}"
        if abort_error is None:
            self._notes.append(f"transaction {number} aborted: {lines}; resume from line {resume}")
            ended = f"transaction {number} ({lines}) aborted: {why}"
        else:
            self._notes.append(
                f"transaction {number} NOT aborted: {lines}: {_one_line(abort_error)}"
            )
            ended = (
                f"transaction {number} ({lines}) failed: {why}; its abort failed too "
                f"({type(abort_error).__name__}: {_one_line(abort_error)}): the coordinator "
                "aborts it after transaction.timeout.ms"
            )
        before = self._committed_before()
        return (
            f"{ended}. {before[0].upper()}{before[1:]}; nothing from line {resume} on is "
            f"visible to read_committed consumers: resume from line {resume}"
        )

    def _in_doubt(self, cause: BaseException) -> str:
        lines, first, last = self._lines(), self.first_line, self.last_line
        self._notes.append(f"transaction {self.committed + 1} in doubt: {lines}")
        before = self._committed_before()
        return (
            f"the commit of transaction {self.committed + 1} ({lines}) did not complete: "
            f"{type(cause).__name__}: {_one_line(cause)}. It may still commit, or be aborted "
            f"by the coordinator after transaction.timeout.ms. {before[0].upper()}{before[1:]}; "
            f"read the topic (read_committed) before sending lines {first}-{last} again"
        )

    def summary(self) -> list[str]:
        return [
            f"  transactions of up to {self.size} records: {self.committed} committed "
            f"({self.committed_records} records), {self.aborted} aborted",
            *(f"  {note}" for note in self._notes),
        ]


def _one_line(error: BaseException) -> str:
    """The error's message on one line (the CLI's errors are one line; a broker error's
    message holds its class docstring, several lines)."""
    return " ".join(str(error).split())


class TransactionFailedError(Exception):
    """The command ended early with a transaction open (exit code 1): aborted, or left to
    the coordinator if the abort failed too, or in doubt if its commit timed out. The
    message names the error, the transaction's input lines and where to resume."""


async def _send_all(
    producer: Producer,
    job: ProduceJob,
    reader: LineReader,
    stats: ProduceStats,
    window: InFlightWindow,
    transactions: Transactions | None = None,
) -> None:
    def on_done(future: Any) -> None:
        window.leave()
        error = future.exception()
        if error is None:
            stats.acked += 1
        else:
            stats.record_failure(error)
            if transactions is not None:
                transactions.record_failed(error)

    next_lines = reader.next_lines if transactions is None else transactions.next_lines(reader)
    while (lines := await next_lines()) is not None:
        for line in lines:
            if transactions is not None:
                await transactions.before_record(stats.read + 1)
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
                if transactions is not None:
                    transactions.record_failed(exc, line=stats.read)
                    raise
                continue
            except BaseException:
                window.leave()
                stats.failed += 1
                raise
            future.add_done_callback(on_done)
            if transactions is not None:
                await transactions.after_record()
    if transactions is not None:
        await transactions.finish()
