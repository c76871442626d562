"""How every async client is driven: the same loops, so only the client differs.

Throughput: ``tasks`` tasks each send their share (task ``t`` sends records ``t, t +
tasks, ...``) and keep at most ``WINDOW / tasks`` records unacknowledged each, so memory
stays bounded whatever the client buffers; then the client flushes and every remaining
future is awaited. Latency: one pacing task offers ``rate`` records per second, and each
record's latency runs from the moment it was *due* to its acknowledgement, so a client
that falls behind the offered rate (or blocks the event loop) pays for it rather than
hiding it (no coordinated omission). Transactions: one task sends the records in
transactions of ``transaction_size`` (begin, the sends, commit) one after another, and
the time includes every commit.
"""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from benchmarks._bench_scenarios import Payloads, RunSpec

WINDOW = 10_000
"""Unacknowledged records per client process, at most."""
CHUNK = 5_000
"""Records per ``send_batch`` call, at most."""
CALLS_IN_FLIGHT = WINDOW // CHUNK
"""``send_batch`` calls a task keeps going at once: while one call's records are being
acknowledged the next one's are sent, as a service streaming records would, and at most
``WINDOW`` records are unacknowledged, as for every client. (Until 2026-12-07: one call of
10,000 at a time, so the records in flight fell to none between calls.)"""

SendBatch = Callable[[list[Any]], Awaitable[Sequence[object]]]
"""``Producer.send_batch``: records in, each one's metadata or exception out, in order."""
MakeRecord = Callable[[int], Any]
"""Record ``i`` as the client's record type (for ``send_batch``, a tuple)."""
Due = list[tuple[int, float]]
"""Records due at one tick: (index, the moment it was due)."""
Transaction = Callable[[], AbstractAsyncContextManager[Any]]
"""``async with transaction():`` begins a transaction and commits it when the block ends
(aborts it if the block raises)."""


class Tally:
    """What came back: acknowledgements, failures, and per-record latency when paced."""

    def __init__(self, records: int, *, latencies: bool = False) -> None:
        self.records = records
        self.acked = 0
        self.failed = 0
        self.first_error: str | None = None
        self.latency = array("d", [math.nan]) * (records if latencies else 0)
        self.on_done: Callable[[], None] | None = None
        """Called once every record is acknowledged or failed."""

    def ok(self) -> None:
        self.acked += 1
        if self.on_done is not None and self.acked + self.failed >= self.records:
            self.on_done()

    def fail(self, error: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"
        if self.on_done is not None and self.acked + self.failed >= self.records:
            self.on_done()

    def result(self, outcome: object) -> None:
        """Count one ``send_batch`` result: metadata, or the record's exception."""
        if isinstance(outcome, BaseException):
            self.fail(outcome)
        else:
            self.ok()

    def latencies(self) -> list[float]:
        return sorted(x for x in self.latency if not math.isnan(x))


@dataclass(frozen=True)
class AsyncClient:
    """One peer behind the same two calls.

    ``send(value, key)`` enqueues a record and returns its future (awaitable, with
    ``add_done_callback``); it is the peer's own bound method (``functools.partial`` of
    it with the topic), so no adapter frame sits between the loop and the client.
    """

    send: Callable[[bytes, bytes | None], Awaitable[Any]]
    flush: Callable[[], Awaitable[Any]]
    transaction: Transaction | None = None
    """A transactional producer's transaction; None when it has no transactional id."""


async def settle(future: Awaitable[object], tally: Tally) -> None:
    try:
        await future
    except Exception as exc:
        tally.fail(exc)
    else:
        tally.ok()


async def throughput(client: AsyncClient, spec: RunSpec, data: Payloads, tally: Tally) -> None:
    tasks, count = spec.scenario.tasks, spec.records
    window = max(1, WINDOW // tasks)
    leftovers: list[Any] = []

    async def sender(first: int) -> None:
        pending: deque[Any] = deque()
        for i in range(first, count, tasks):
            pending.append(await client.send(data.value(i), data.key(i)))
            if len(pending) >= window:
                await settle(pending.popleft(), tally)
        # Awaited after flush(): some clients only send what is left when flushed.
        leftovers.extend(pending)

    async with asyncio.TaskGroup() as group:
        for first in range(tasks):
            group.create_task(sender(first))
    await client.flush()
    for future in leftovers:
        await settle(future, tally)


async def throughput_batch(
    send_batch: SendBatch, make_record: MakeRecord, spec: RunSpec, tally: Tally
) -> None:
    """Each task sends its share in ``send_batch`` calls of at most ``CHUNK`` records,
    ``CALLS_IN_FLIGHT`` of them going at once (call ``k`` starts when call
    ``k - CALLS_IN_FLIGHT`` returned); each call returns when all its records are
    acknowledged (or failed)."""
    tasks, count = spec.scenario.tasks, spec.records

    async def calls(chunks: Sequence[range]) -> None:
        for chunk in chunks:
            for outcome in await send_batch([make_record(i) for i in chunk]):
                tally.result(outcome)

    async with asyncio.TaskGroup() as group:
        for first in range(tasks):
            mine = range(first, count, tasks)
            chunks = [mine[start : start + CHUNK] for start in range(0, len(mine), CHUNK)]
            for lane in range(CALLS_IN_FLIGHT):
                group.create_task(calls(chunks[lane::CALLS_IN_FLIGHT]))


def transactions(count: int, size: int) -> list[range]:
    """The records of each transaction, in order: ``size`` each, the last one perhaps
    fewer."""
    return [range(start, min(count, start + size)) for start in range(0, count, size)]


def _transaction_of(client: AsyncClient) -> Transaction:
    if client.transaction is None:
        raise ValueError("a transactional scenario needs a client opened with a transactional id")
    return client.transaction


async def throughput_transactional(
    client: AsyncClient, spec: RunSpec, data: Payloads, tally: Tally
) -> None:
    """Transaction after transaction: begin, ``send()`` each of its records, commit (a
    commit sends what is left and waits for it), then count its records' outcomes. A
    transaction's records (1,000) stay within ``WINDOW``."""
    transaction = _transaction_of(client)
    for records in transactions(spec.records, spec.scenario.transaction_size):
        futures = []
        async with transaction():
            for i in records:
                futures.append(await client.send(data.value(i), data.key(i)))
        for future in futures:
            await settle(future, tally)


async def throughput_batch_transactional(
    send_batch: SendBatch,
    make_record: MakeRecord,
    transaction: Transaction,
    spec: RunSpec,
    tally: Tally,
) -> None:
    """One ``send_batch`` call per transaction (it returns when the transaction's records
    are acknowledged), then the commit."""
    for records in transactions(spec.records, spec.scenario.transaction_size):
        async with transaction():
            outcomes = await send_batch([make_record(i) for i in records])
        for outcome in outcomes:
            tally.result(outcome)


async def paced(spec: RunSpec, offer: Callable[[Due], Awaitable[None]]) -> None:
    """Offer the records at ``spec.scenario.rate`` per second: at each tick (the event
    loop's timer resolution, about 1 ms) every record due by then."""
    rate, count = spec.scenario.rate, spec.records
    start = time.perf_counter()
    i = 0
    while i < count:
        due = min(count, int((time.perf_counter() - start) * rate) + 1)
        if due > i:
            await offer([(j, start + j / rate) for j in range(i, due)])
            i = due
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))


async def latency(client: AsyncClient, spec: RunSpec, data: Payloads, tally: Tally) -> None:
    all_done = asyncio.Event()
    tally.on_done = all_done.set

    def on_ack(i: int, due: float) -> Callable[[Any], None]:
        def done(future: Any) -> None:
            tally.latency[i] = time.perf_counter() - due
            if future.cancelled():  # exception() would raise
                tally.fail(asyncio.CancelledError())
                return
            error = future.exception()
            if error is not None:
                tally.fail(error)
            else:
                tally.ok()

        return done

    async def offer(batch: Due) -> None:
        for i, due in batch:
            future = await client.send(data.value(i), data.key(i))
            future.add_done_callback(on_ack(i, due))

    await paced(spec, offer)
    await client.flush()
    if tally.acked + tally.failed < tally.records:
        await all_done.wait()


async def latency_batch(
    send_batch: SendBatch, make_record: MakeRecord, spec: RunSpec, tally: Tally
) -> None:
    """Paced like :func:`latency`; the records due at each tick go in one ``send_batch``
    call (in the background, as it waits for the acknowledgements)."""

    async def one_batch(batch: Due) -> None:
        outcomes = await send_batch([make_record(i) for i, _ in batch])
        acked_at = time.perf_counter()
        for (i, due), outcome in zip(batch, outcomes, strict=True):
            tally.latency[i] = acked_at - due
            tally.result(outcome)

    async with asyncio.TaskGroup() as group:

        async def offer(batch: Due) -> None:
            group.create_task(one_batch(batch))

        await paced(spec, offer)
