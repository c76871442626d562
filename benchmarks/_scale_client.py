"""One scale case, in a process of its own: prints one JSON line.

    python -m benchmarks._scale_client --spec JSON

A fresh process per run, so the CPU time (``getrusage``) and the peak RSS are that run's
alone. Throughput cases drive the producer as the peer benchmark does
(benchmarks/_bench_drive.py ``throughput``): each task keeps at most ``window / tasks``
records unacknowledged, then the producer is flushed and the rest awaited; records go
round-robin over the case's topics. Stall cases start their tasks (100, or the target's
10,000) and read this process's RSS, then stop the broker process (SIGSTOP), send records
(1 KiB or 100 B) round-robin over the case's topics for the stall's duration while
sampling the RSS every 100 ms, continue the broker (SIGCONT) and check every accepted
record is acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks._bench_client import Meter, peak_rss_mb
from benchmarks._bench_drive import Tally, settle
from benchmarks._bench_scenarios import Payloads
from benchmarks._scale_cases import (
    MIB,
    STALL_DELIVERY_TIMEOUT_MS,
    STALL_MAX_BLOCK_MS,
    RunSpec,
)

if TYPE_CHECKING:
    from asyncproducer import Producer

CLOSE_TIMEOUT_S = 10.0
SAMPLE_EVERY_S = 0.1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
Send = Callable[..., Awaitable[Any]]


def rss_mib() -> float:
    """The process's resident memory now (/proc/self/statm: pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE / MIB


def new_producer(spec: RunSpec, **extra: Any) -> Producer:
    # Imported here, after main() hid hypothesis: see main().
    from asyncproducer import Producer

    return Producer(
        spec.bootstrap_servers,
        acks=1,
        linger_ms=5,
        batch_size=16_384,
        compression_type="none",
        enable_idempotence=False,
        buffer_memory=spec.case.buffer_memory,
        # One window longer than any run: the averages below then cover every batch and
        # request, so that counts can be derived from them exactly.
        metrics_num_samples=1,
        metrics_sample_window_ms=3_600_000,
        **extra,
    )


def batches_and_requests(producer: Producer) -> tuple[int, int]:
    """Batches and Produce requests sent so far, from the Java-named metrics: bytes sent
    over the average batch size, records sent over the average records per request."""
    metrics = producer.metrics()
    sent_bytes = sum(t["byte-total"] for t in producer.topic_metrics().values())
    records = metrics["record-send-total"]
    if not records:
        return 0, 0
    return (
        round(sent_bytes / metrics["batch-size-avg"]),
        round(records / metrics["records-per-request-avg"]),
    )


async def warm_up(producer: Producer, topics: Sequence[str]) -> None:
    """One acknowledged record per topic: connection open, every topic's metadata known.
    The first alone (the connection), the rest concurrently (1,000 topics one after the
    other would take linger_ms each)."""
    await producer.send_and_wait(topics[0], b"warm-up")
    async with asyncio.TaskGroup() as group:
        for topic in topics[1:]:
            group.create_task(producer.send_and_wait(topic, b"warm-up"))


# --------------------------------------------------------------------------- throughput


async def drive(
    send: Send, flush: Callable[[], Awaitable[None]], spec: RunSpec, data: Payloads, tally: Tally
) -> None:
    """_bench_drive.throughput, with the window and the topics as parameters."""
    topics = spec.topic_names
    case, n = spec.case, len(topics)
    tasks, count = case.tasks, case.records
    window = max(1, case.window // tasks)
    leftovers: list[Any] = []

    async def sender(first: int) -> None:
        pending: deque[Any] = deque()
        for i in range(first, count, tasks):
            pending.append(await send(topics[i % n], data.value(i), data.key(i)))
            if len(pending) >= window:
                await settle(pending.popleft(), tally)
        leftovers.extend(pending)

    async with asyncio.TaskGroup() as group:
        for first in range(tasks):
            group.create_task(sender(first))
    await flush()
    for future in leftovers:
        await settle(future, tally)


async def throughput(spec: RunSpec) -> dict[str, Any]:
    case = spec.case
    data = Payloads(case.value_size, case.keyed)
    tally = Tally(case.records)
    meter = Meter()
    producer = new_producer(spec)
    await producer.start()
    try:
        await warm_up(producer, spec.topic_names)
        gc.collect()
        before = rss_mib()
        first = batches_and_requests(producer)
        meter.start()
        await drive(producer.send, producer.flush, spec, data, tally)
        meter.stop()
        last = batches_and_requests(producer)
    finally:
        await producer.close(timeout=CLOSE_TIMEOUT_S)
    batches, requests = last[0] - first[0], last[1] - first[1]
    return {
        "records": case.records,
        "acked": tally.acked,
        "failed": tally.failed,
        "error": tally.first_error,
        "wall_s": round(meter.wall_s, 4),
        "cpu_s": round(meter.cpu_s, 4),
        "msgs_per_s": round(case.records / meter.wall_s, 1),
        "cpu_us_per_record": round(meter.cpu_s / case.records * 1e6, 3),
        "peak_rss_mib": round(peak_rss_mb(), 1),
        # Warmed up, before the first send: the peak's growth beyond it is the run's
        # records, batches and tasks (VmHWM: the warm-up's own peak may exceed it).
        "rss_before_mib": round(before, 1),
        "buffer_memory_mib": case.buffer_memory / MIB,
        # How well the records were batched: what a larger cost per record comes from.
        "batches": batches,
        "requests": requests,
        "records_per_batch": round(case.records / max(batches, 1), 1),
        "records_per_request": round(case.records / max(requests, 1), 1),
        "ok": tally.acked == case.records and tally.failed == 0,
    }


# --------------------------------------------------------------------------- stall


@dataclass
class StallLedger:
    futures: list[Any] = field(default_factory=list)
    """Every accepted record's future: 8 bytes each here (a done callback per record
    would add its own memory to what is measured)."""
    refused: int = 0
    """send() calls that raised KafkaTimeoutError (no buffer memory within max_block_ms)."""
    samples: list[tuple[float, float, int]] = field(default_factory=list)
    """(seconds since the stall began, RSS MiB, buffer_available bytes)."""

    @property
    def accepted(self) -> int:
        return len(self.futures)

    def outcomes(self) -> dict[str, Any]:
        """Acknowledged, failed and unfinished futures, and the first error."""
        acked = failed = pending = 0
        first_error = None
        for future in self.futures:
            if not future.done():
                pending += 1
                continue
            error = asyncio.CancelledError() if future.cancelled() else future.exception()
            if error is None:
                acked += 1
                continue
            failed += 1
            first_error = first_error or f"{type(error).__name__}: {error}"
        return {"acked": acked, "failed": failed, "pending": pending, "error": first_error}


async def stall_senders(
    producer: Producer, spec: RunSpec, ledger: StallLedger, go: asyncio.Event, stop: asyncio.Event
) -> None:
    """``tasks`` tasks that wait for ``go``, then send fresh records (each value its own
    bytes object, so the records the producer holds are real memory) round-robin over
    the topics until ``stop`` is set. Started before the RSS is read: idle tasks' own
    memory (13 MiB for 10,000 over 100 topics) is the application's, not the producer's."""
    from asyncproducer.errors import KafkaTimeoutError

    case, topics = spec.case, spec.topic_names
    filler = b"x" * (case.value_size - 8)

    async def sender(first: int) -> None:
        i = first
        await go.wait()
        while not stop.is_set():
            value = filler + i.to_bytes(8, "big")
            try:
                future = await producer.send(topics[i % len(topics)], value)
            except KafkaTimeoutError:
                ledger.refused += 1
                continue
            ledger.futures.append(future)
            i += case.tasks

    async with asyncio.TaskGroup() as group:
        for first in range(case.tasks):
            group.create_task(sender(first))


async def sample(producer: Producer, ledger: StallLedger, began: float) -> None:
    while True:
        available = producer.metrics()["buffer-available-bytes"]
        ledger.samples.append((time.monotonic() - began, rss_mib(), int(available)))
        await asyncio.sleep(SAMPLE_EVERY_S)


async def stall(spec: RunSpec) -> dict[str, Any]:
    case, pid = spec.case, spec.broker_pid
    ledger = StallLedger()
    producer = new_producer(
        spec, max_block_ms=STALL_MAX_BLOCK_MS, delivery_timeout_ms=STALL_DELIVERY_TIMEOUT_MS
    )
    await producer.start()
    try:
        await warm_up(producer, spec.topic_names)
        go, stop = asyncio.Event(), asyncio.Event()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(stall_senders(producer, spec, ledger, go, stop))
                await asyncio.sleep(0.3)  # every sender started, waiting for go
                gc.collect()
                before = rss_mib()
                began = time.monotonic()
                os.kill(pid, signal.SIGSTOP)
                sampler = group.create_task(sample(producer, ledger, began))
                go.set()
                await asyncio.sleep(case.stall_s)
                during = list(ledger.samples)
                os.kill(pid, signal.SIGCONT)
                healed = time.monotonic() - began
                accepted_at_heal = ledger.accepted
                stop.set()  # senders blocked on memory finish their send() first
                sampler.cancel()
        finally:
            os.kill(pid, signal.SIGCONT)  # never leave the broker stopped
        await producer.flush(timeout=60)
        delivered = time.monotonic() - began - healed
    finally:
        await producer.close(timeout=CLOSE_TIMEOUT_S)
    outcomes = ledger.outcomes()
    gc.collect()
    rss = [s[1] for s in during]
    top = max(rss, default=before)
    return {
        "buffer_memory_mib": case.buffer_memory / MIB,
        "stall_s": case.stall_s,
        "topics": case.topics,
        "partitions": case.partitions,
        "tasks": case.tasks,
        "rss_before_mib": round(before, 1),
        "rss_max_during_mib": round(top, 1),
        "rss_growth_mib": round(top - before, 1),
        "value_size": case.value_size,
        "rss_end_of_stall_mib": round(rss[-1] if rss else before, 1),
        # When RSS came within 1 MiB of its maximum: the growth stops early in the stall.
        "rss_plateau_s": next((round(t, 1) for t, r, _ in during if r >= top - 1), None),
        "rss_after_mib": round(rss_mib(), 1),
        "peak_rss_mib": round(peak_rss_mb(), 1),
        "min_buffer_available": min((s[2] for s in during), default=case.buffer_memory),
        "samples": len(during),
        "accepted": ledger.accepted,
        "accepted_during_stall": accepted_at_heal,
        "accepted_after_heal": ledger.accepted - accepted_at_heal,
        **outcomes,
        "refused": ledger.refused,
        "drain_s": round(delivered, 3),
        "ok": outcomes["acked"] == ledger.accepted > 0,
        "rss_series": [[round(t, 2), round(r, 1), a] for t, r, a in ledger.samples],
    }


# --------------------------------------------------------------------------- process


def run(spec: RunSpec) -> dict[str, Any]:
    result: dict[str, Any] = {"group": spec.case.group, "case": spec.case.name}
    job = stall if spec.case.is_stall else throughput
    try:
        result |= asyncio.run(asyncio.wait_for(job(spec), spec.timeout_s))
    except TimeoutError:
        result |= {"ok": False, "error": f"timed out after {spec.timeout_s:g} s"}
    except Exception as exc:
        traceback.print_exc()
        result |= {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._scale_client")
    parser.add_argument("--spec", required=True, help="a RunSpec as JSON")
    args = parser.parse_args(argv)
    # As a production install runs it: kio imports hypothesis when present (the dev
    # environment has it), which costs ~20 MB of RSS no user pays. None in sys.modules
    # makes that import fail as if the package were absent (benchmarks/_bench_client.py).
    sys.modules.setdefault("hypothesis", None)  # type: ignore[arg-type]
    result = run(RunSpec.from_json(args.spec))
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
