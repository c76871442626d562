"""What the Java-named metrics cost: CPU per record with them, and with their recording
turned into no-ops, in alternating rounds on one broker.

    python -m benchmarks.metrics_cost [--rounds 5] [--records 200000]
                                      [--bootstrap-servers HOST:PORT]

Without ``--bootstrap-servers`` an embedded Tansu broker is started. Two workloads: the
benchmark's ``base`` shape (100-byte values, 16 KiB batches, linger 5 ms, many records in
flight), and one record per request (each send awaited: the most recording per record).
Reported: the median CPU microseconds per record of each, and the ratio on/off.
Recording is per batch and per request, never per record, so the C fast path is the
same code either way.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio

from asyncproducer import Producer
from asyncproducer._producer_metrics import ProducerMetrics
from benchmarks._local_broker import given_or_tansu

_RECORDING = (
    "batch_sent",
    "request_sent",
    "produce_answered",
    "records_retried",
    "records_failed",
    "batch_split",
    "request_written",
    "response_read",
    "bytes_read",
)


@contextmanager
def recording_off() -> Iterator[None]:
    """Every recording method a no-op (the metrics then read their initial values)."""
    saved = {name: getattr(ProducerMetrics, name) for name in _RECORDING}

    def nothing(*_: Any) -> None:
        return None

    try:
        for name in _RECORDING:
            setattr(ProducerMetrics, name, nothing)
        yield
    finally:
        for name, method in saved.items():
            setattr(ProducerMetrics, name, method)


async def streamed(bootstrap: str, records: int) -> float:
    """CPU seconds for ``records`` sends with many in flight (the base shape)."""
    topic = f"cost-{uuid.uuid4().hex[:8]}"
    async with Producer(bootstrap, acks=1, linger_ms=5, enable_idempotence=False) as producer:
        await producer.send_and_wait(topic, b"warm-up")
        value = b"v" * 100
        started = time.process_time()
        for _ in range(records):
            await producer.send(topic, value)
        await producer.flush()
        return time.process_time() - started


async def one_by_one(bootstrap: str, records: int) -> float:
    """CPU seconds for ``records`` sends each awaited: one record per request."""
    topic = f"cost-{uuid.uuid4().hex[:8]}"
    async with Producer(bootstrap, acks=1, linger_ms=0, enable_idempotence=False) as producer:
        await producer.send_and_wait(topic, b"warm-up")
        started = time.process_time()
        for _ in range(records):
            await producer.send_and_wait(topic, b"v" * 100)
        return time.process_time() - started


def measure(
    workload: Callable[[str, int], Any], bootstrap: str, records: int, rounds: int
) -> dict[str, float]:
    on: list[float] = []
    off: list[float] = []
    for _ in range(rounds):
        on.append(anyio.run(workload, bootstrap, records) / records * 1e6)
        with recording_off():
            off.append(anyio.run(workload, bootstrap, records) / records * 1e6)
    return {
        "on_us": statistics.median(on),
        "off_us": statistics.median(off),
        "ratio": statistics.median(a / b for a, b in zip(on, off, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    with given_or_tansu(args.bootstrap_servers) as bootstrap:
        for name, workload, records in (
            ("base (many in flight)", streamed, args.records),
            ("one record per request", one_by_one, max(args.records // 50, 100)),
        ):
            result = measure(workload, bootstrap, records, args.rounds)
            print(
                f"{name}: {result['on_us']:.2f} us/record with metrics, "
                f"{result['off_us']:.2f} without; ratio {result['ratio']:.3f} "
                f"(median of {args.rounds} paired rounds, {records} records each)"
            )


if __name__ == "__main__":
    main()
